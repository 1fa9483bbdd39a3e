"""Saving hyperparameters of models that take modules as arguments."""

from __future__ import annotations

import inspect
import warnings

from lightning.pytorch import LightningModule

__all__ = ["save_hyperparameters"]


def save_hyperparameters(module: LightningModule) -> None:
    """``module.save_hyperparameters()`` for models whose arguments include modules.

    The latent layer is a module argument. Built by the CLI, the model's hparams hold
    its config (class path and init args); built in Python, they hold the module
    itself, which Lightning pickles into the checkpoint. Either way
    ``load_from_checkpoint`` rebuilds it, so Lightning's advice to ignore module
    arguments (which would break that) is silenced here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Attribute '.*' is an instance of `nn.Module`")
        module.save_hyperparameters(frame=inspect.currentframe().f_back)
