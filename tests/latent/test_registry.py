"""The estimator registry ``catlight.latent.ESTIMATORS`` and what must agree with it."""

import inspect
import re
from pathlib import Path

import pytest

import catlight.latent
from catlight.latent import (
    ESTIMATORS,
    Estimator,
    LeaveOneOut,
    MultiSampleEstimator,
    RelaxedEstimator,
    estimator_entry,
)
from tests.latent.registry import EXAMPLES

README = Path(__file__).resolve().parents[2] / "README.md"


def test_registry_covers_every_exported_estimator():
    abstract = {Estimator, MultiSampleEstimator, RelaxedEstimator}
    exported = {
        getattr(catlight.latent, name)
        for name in catlight.latent.__all__
        if inspect.isclass(getattr(catlight.latent, name))
    }
    concrete = {cls for cls in exported if issubclass(cls, Estimator) and cls not in abstract}
    assert concrete, "no estimator exported"
    missing = concrete - {entry.cls for entry in ESTIMATORS.values()}
    assert not missing, f"estimators missing from catlight.latent.ESTIMATORS: {missing}"


def test_registry_keys_names_and_display_names_are_one_per_estimator():
    assert [entry.name for entry in ESTIMATORS.values()] == list(ESTIMATORS)
    assert len({entry.cls for entry in ESTIMATORS.values()}) == len(ESTIMATORS)
    assert len({entry.display_name for entry in ESTIMATORS.values()}) == len(ESTIMATORS)
    assert all(re.fullmatch(r"[a-z_]+", name) for name in ESTIMATORS)


def test_registry_entry_is_an_example_of_the_generic_tests():
    examples = {(example.cls, tuple(example.kwargs.items())) for example in EXAMPLES}
    for entry in ESTIMATORS.values():
        assert (entry.cls, tuple(entry.settings.items())) in examples, entry.name


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_registry_entry_builds_its_class_with_its_settings(name):
    entry = estimator_entry(name)
    estimator = entry.build()
    assert type(estimator) is entry.cls
    assert entry.has_temperature == hasattr(estimator, "tau")
    if entry.has_temperature:
        assert float(estimator.tau) == pytest.approx(entry.settings["tau"])


def test_registry_build_overrides_a_setting_and_init_args_is_a_copy():
    entry = estimator_entry("loo")
    assert entry.build().num_samples == 4
    assert isinstance(entry.build(num_samples=6), LeaveOneOut)
    assert entry.build(num_samples=6).num_samples == 6
    init_args = entry.init_args()
    init_args["num_samples"] = 9
    assert entry.settings["num_samples"] == 4
    with pytest.raises(TypeError):
        entry.settings["num_samples"] = 9


def test_registry_unknown_name_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"estimator must be one of gs, st_gs, .*; got 'gumbel'"):
        estimator_entry("gumbel")


def readme_estimator_table() -> list[tuple[str, str]]:
    """(short name, class) of each row of the README's "Gradient estimators" table."""
    section = README.read_text().split("### Gradient estimators\n", 1)[1]
    table = section[section.index("\n|") :].split("\n\n", 1)[0]
    return re.findall(r"^\| `(\w+)` \| `(\w+)\(", table, re.M)


def test_readme_estimator_table_lists_exactly_the_registry():
    registry = [(name, entry.cls.__name__) for name, entry in ESTIMATORS.items()]
    assert readme_estimator_table() == registry
