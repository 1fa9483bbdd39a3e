import importlib

import pytest

PACKAGES = [
    "catlight",
    "catlight.latent",
    "catlight.latent.estimators",
    "catlight.latent.structured",
    "catlight.tasks",
    "catlight.tasks.vae",
    "catlight.tasks.semisupervised",
    "catlight.tasks.nri",
    "catlight.tasks.rl",
    "catlight.data",
]


@pytest.mark.parametrize("module_name", PACKAGES)
def test_public_api_declares_all(module_name):
    module = importlib.import_module(module_name)
    assert hasattr(module, "__all__")
    assert len(module.__all__) == len(set(module.__all__)), "duplicate names in __all__"


@pytest.mark.parametrize("module_name", PACKAGES)
def test_public_api_every_name_in_all_imports(module_name):
    module = importlib.import_module(module_name)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{module_name}.{name}"
    namespace = {}
    exec(f"from {module_name} import *", namespace)
    assert set(module.__all__) <= set(namespace)


def test_public_api_layer_contract_names():
    import catlight.latent as latent

    contract = {
        "DiscreteLatent",
        "Softmax",
        "Catnat",
        "GumbelSoftmax",
        "StraightThroughGumbelSoftmax",
        "StraightThrough",
        "ReinMax",
        "Reinforce",
        "LeaveOneOut",
        "CARMS",
        "Exact",
    }
    assert contract <= set(latent.__all__)
