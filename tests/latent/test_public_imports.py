"""Code outside the latent package imports the layer's public API only."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "catlight"
PUBLIC_MODULES = {"catlight.latent", "catlight.latent.structured"}


def private_latent_imports(source: str) -> list[str]:
    """Each import of a latent submodule, or of a name starting with ``_``, in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("catlight.latent"):
            if node.module not in PUBLIC_MODULES:
                found.append(f"line {node.lineno}: from {node.module} import ...")
            found += [
                f"line {node.lineno}: private name {alias.name} from {node.module}"
                for alias in node.names
                if alias.name.startswith("_")
            ]
        elif isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: import {alias.name}"
                for alias in node.names
                if alias.name.startswith("catlight.latent.") and alias.name not in PUBLIC_MODULES
            ]
    return found


def test_scan_catches_submodule_and_private_imports():
    source = (
        "from catlight.latent.sample import categorical_kl\n"
        "from catlight.latent.structured.base import unit_exponentials\n"
        "from catlight.latent import _finite, DiscreteLatent\n"
        "import catlight.latent.estimators.base\n"
        "from catlight.latent import categorical_kl\n"
        "from catlight.latent.structured import TopK\n"
        "import catlight.latent.structured\n"
    )
    assert private_latent_imports(source) == [
        "line 1: from catlight.latent.sample import ...",
        "line 2: from catlight.latent.structured.base import ...",
        "line 3: private name _finite from catlight.latent",
        "line 4: import catlight.latent.estimators.base",
    ]


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py") if "latent" not in p.relative_to(PACKAGE).parts[:1]),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_modules_outside_the_latent_package_import_its_public_api_only(path):
    found = private_latent_imports(path.read_text())
    assert not found, (
        f"{path.relative_to(PACKAGE.parent)} imports latent internals: {found}; import the "
        "names from catlight.latent or catlight.latent.structured (export them there)"
    )
