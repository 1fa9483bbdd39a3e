"""Every estimator replaces the config's with one ``--model.latent.estimator X``, and trains.

For each family with a DiscreteLatent trained through ``objective`` (VAE, SBN, M2, NRI),
its Gumbel-Softmax config (with an annealed temperature) is switched on the command
line to every estimator and trained one step (``fast_dev_run``) on tiny data. Nothing
of the config's estimator settings may carry over: ReinMax must not inherit a
temperature below 1, LeaveOneOut not REINFORCE's single sample, no estimator a
schedule.
"""

from __future__ import annotations

import math

import pytest

from catlight.latent import ESTIMATORS as REGISTRY
from tests.scale_families import FAMILIES, fit_args

# every exported estimator (tests/latent/test_registry.py checks that the registry has them)
ESTIMATORS = [entry.cls.__name__ for entry in REGISTRY.values()]
SWAP_FAMILIES = ["vae", "sbn", "semisupervised", "nri"]
# Exact enumerates K^N configurations: NRI's 20 edges of 2 types are 2^20 > 10^4
TOO_MANY_CONFIGURATIONS = {"nri"}


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory):
    """One tiny data folder per family, written (or simulated) once for all estimators."""
    return {name: tmp_path_factory.mktemp(f"swap_{name}") for name in SWAP_FAMILIES}


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("family_name", SWAP_FAMILIES)
def test_estimator_swap_on_the_command_line_trains(family_name, estimator, run_cli, data_dirs):
    if estimator == "Exact" and family_name in TOO_MANY_CONFIGURATIONS:
        pytest.skip("Exact: 2^20 edge configurations exceed its enumeration budget")
    family = FAMILIES[family_name]
    args = fit_args(family, data_dirs[family_name], "--model.latent.estimator", estimator)
    cli = run_cli("fit", *args, "--trainer.fast_dev_run=1")
    assert cli.trainer.state.finished
    assert cli.trainer.global_step == 1
    latent = cli.model.get_submodule(family.latent)
    swapped = latent.estimator
    assert type(swapped).__name__ == estimator
    # the new estimator's own defaults: nothing of the config's Gumbel-Softmax carried over
    assert repr(swapped) == repr(type(swapped)()), "settings carried over from the config"
    for name in family.metrics[:1]:
        assert math.isfinite(cli.trainer.callback_metrics[name].item()), name
