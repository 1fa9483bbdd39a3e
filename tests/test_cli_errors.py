"""The command line's errors: a few lines naming the key, the value and what is allowed."""

from __future__ import annotations

import sys
from argparse import ArgumentError
from pathlib import Path

import pytest

from catlight.cli import main
from catlight.cli_errors import ConfigError
from catlight.latent import ESTIMATORS

REPO = Path(__file__).resolve().parents[1]
GS_CONFIG = REPO / "configs" / "vae" / "categorical" / "gs_softmax.yaml"
HINT = "(CATLIGHT_DEBUG=1 or --debug shows the full error)"
# the example: ReinMax with the temperature of a Gumbel-Softmax schedule's floor
REINMAX_TAU_HALF = [
    "--model.latent.estimator",
    "ReinMax",
    "--model.latent.estimator.tau",
    "0.5",
    "--trainer.fast_dev_run",
    "1",
]


def error_lines(capsys, *args: str) -> list[str]:
    """stderr of ``catlight fit --config GS_CONFIG *args``, which must exit with 2."""
    with pytest.raises(SystemExit) as raised:
        main(["fit", "--config", str(GS_CONFIG), *args])
    assert raised.value.code == 2
    return capsys.readouterr().err.splitlines()


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["catlight"])
    monkeypatch.delenv("CATLIGHT_DEBUG", raising=False)


def test_misspelled_estimator_class_names_the_closest_and_the_allowed_ones(capsys):
    assert error_lines(capsys, "--model.latent.estimator", "GumbelSoftMax", "--print_config") == [
        "error: model.latent.estimator: unknown class 'GumbelSoftMax'; "
        "did you mean GumbelSoftmax or GumbelRao or StraightThroughGumbelSoftmax?",
        "  allowed: " + ", ".join(sorted(entry.cls.__name__ for entry in ESTIMATORS.values())),
        HINT,
    ]


def test_reinmax_tau_below_one_names_the_key_and_value(capsys):
    lines = error_lines(capsys, "--model.latent.parameterization", "Catnat", *REINMAX_TAU_HALF)
    assert lines == [
        "error: model.latent.estimator.tau = 0.5: ReinMax: tau must be >= 1.0, got 0.5",
        HINT,
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--model.latent.estimator.tau", "abc"],
            "error: model.latent.estimator.tau: Expected a <class 'float'>. Got value: abc",
        ),
        (
            ["--model.latent.estimator.tua", "1"],
            "error: model.latent.estimator: Option 'tua' is not accepted",
        ),
        (
            ["--model.latent.estimator", "Reinforce", "--model.latent.estimator.baseline", "mean"],
            "error: model.latent.estimator.baseline: Expected a "
            "typing.Literal['none', 'moving_average']. Got value: mean",
        ),
    ],
    ids=["type", "unknown_option", "literal"],
)
def test_parse_errors_take_one_line(capsys, args, expected):
    assert error_lines(capsys, *args, "--print_config") == [expected, HINT]


def test_debug_flag_and_variable_raise_the_full_error(monkeypatch):
    with pytest.raises(ArgumentError, match="Does not validate against any of the Union"):
        main(["fit", "--config", str(GS_CONFIG), "--model.latent.estimator", "Nope", "--debug"])
    monkeypatch.setenv("CATLIGHT_DEBUG", "1")
    with pytest.raises(ConfigError, match=r"ReinMax: tau must be >= 1\.0") as raised:
        main(["fit", "--config", str(GS_CONFIG), *REINMAX_TAU_HALF])
    assert isinstance(raised.value.__cause__, ValueError)
    assert raised.value.key == "model.latent.estimator.tau"
