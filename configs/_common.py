"""Pieces shared by the config tables of every family (see generate.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from catlight.latent import estimator_entry

CONFIGS = Path(__file__).resolve().parent
PARAMETERIZATIONS = {"softmax": "Softmax", "catnat": "Catnat"}


def latent(
    num_categories: int,
    parameterization: str,
    estimator: str,
    init_args: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``latent`` block of a model: a DiscreteLatent with an estimator of the registry.

    Args:
        num_categories: K.
        parameterization: class name of the parameterization (``Catnat``).
        estimator: short name in ``catlight.latent.ESTIMATORS`` (``st_gs``).
        init_args: the estimator's settings; ``None``: the registry's.
    """
    entry = estimator_entry(estimator)
    return {
        "class_path": "DiscreteLatent",
        "init_args": {
            "num_categories": num_categories,
            "parameterization": parameterization,
            "estimator": {
                "class_path": entry.cls.__name__,
                "init_args": entry.init_args() if init_args is None else init_args,
            },
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
