"""Pieces shared by the config tables of every family (see generate.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CONFIGS = Path(__file__).resolve().parent
PARAMETERIZATIONS = {"softmax": "Softmax", "catnat": "Catnat"}
# the Gumbel-Softmax paper's schedule, tau = max(0.5, exp(-3e-5 step)) updated every
# 500 steps: init args of GumbelSoftmax / StraightThroughGumbelSoftmax, so it goes
# with the estimator when the command line swaps it
ANNEALED_TAU = {"tau": 1.0, "tau_min": 0.5, "anneal_rate": 3e-5, "anneal_interval": 500}


def latent(
    num_categories: int, parameterization: str, estimator: str, init_args: dict[str, Any]
) -> dict[str, Any]:
    """The ``latent`` block of a model: a DiscreteLatent with the estimator by short name."""
    return {
        "class_path": "DiscreteLatent",
        "init_args": {
            "num_categories": num_categories,
            "parameterization": parameterization,
            "estimator": {"class_path": estimator, "init_args": init_args},
        },
    }


def with_last_checkpoint(config: dict[str, Any]) -> dict[str, Any]:
    """Add a LastCheckpoint to a model config's callbacks, so ``--ckpt_path last`` resumes.

    A config without a ModelCheckpoint also gets a plain one: it keeps Lightning's
    default (a checkpoint in the version folder), which any checkpoint callback in
    the list turns off.
    """
    if "model" not in config:
        return config
    callbacks = config["trainer"].setdefault("callbacks", [])
    if not any(callback["class_path"] == "ModelCheckpoint" for callback in callbacks):
        callbacks.append({"class_path": "ModelCheckpoint"})
    callbacks.append({"class_path": "LastCheckpoint"})
    return config
