"""What every catlight LightningModule shares: estimator steps and module hyperparameters."""

from __future__ import annotations

import inspect
import warnings
from types import FrameType
from typing import Any

from lightning.pytorch import Callback

from catlight.callbacks import EstimatorStep

__all__ = ["LatentModelMixin"]

_MODULE_ARGUMENT_ADVICE = "Attribute '.*' is an instance of `nn.Module`"


class LatentModelMixin:
    """Mixin for a LightningModule built on DiscreteLatent; list it before LightningModule.

    ``class MyModel(LatentModelMixin, LightningModule)`` gets:

    - :class:`~catlight.callbacks.EstimatorStep` from ``configure_callbacks``, so that
      estimator state (a temperature schedule, a REINFORCE baseline) advances once per
      optimizer step under any ``Trainer``, not only the ``catlight`` CLI;
    - ``self.save_hyperparameters()`` without Lightning's advice to ignore module
      arguments. The latent layer is one: built by the CLI, the hyperparameters hold its
      config (class path and init args); built in Python, the module itself, which the
      checkpoint pickles. Either way ``load_from_checkpoint`` rebuilds it, which
      ignoring it would break. Called in a base class's ``__init__``, it also saves the
      arguments of every subclass ``__init__`` that led there.
    """

    def configure_callbacks(self) -> list[Callback]:
        """The model's own callbacks: :class:`~catlight.callbacks.EstimatorStep`."""
        return [EstimatorStep()]

    def save_hyperparameters(
        self, *args: Any, frame: FrameType | None = None, **kwargs: Any
    ) -> None:
        """``LightningModule.save_hyperparameters``, quiet about module arguments."""
        if frame is None:
            frame = inspect.currentframe().f_back
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Attribute '.*' is an instance of `nn.Module`"
            )
            super().save_hyperparameters(*args, frame=frame, **kwargs)
