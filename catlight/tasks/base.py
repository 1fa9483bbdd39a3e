"""BaseTask: what every catlight LightningModule shares."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings
from types import FrameType
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.plugins.precision import MixedPrecision
from lightning.pytorch.utilities.types import LRSchedulerTypeUnion, OptimizerLRScheduler
from torch import Tensor
from typing_extensions import override

import catlight.latent
from catlight.callbacks import EstimatorStep, LogImages

__all__ = ["BaseTask"]


def _allow_latent_modules_in_checkpoints() -> None:
    """Let weights-only loads read the latent modules a task keeps as hyperparameters.

    A task built in Python holds its latent layer itself among its hyperparameters, so
    the checkpoint pickles the module; Lightning resumes with ``weights_only=True``,
    which refuses classes it does not know. The classes of ``catlight.latent`` (and
    the torch layers inside them) only hold tensors and settings, so they are allowed.
    """
    classes = []
    for module_info in pkgutil.walk_packages(catlight.latent.__path__, "catlight.latent."):
        module = importlib.import_module(module_info.name)
        classes += [
            value
            for value in vars(module).values()
            if isinstance(value, type) and value.__module__ == module.__name__
        ]
    torch.serialization.add_safe_globals(
        [*classes, torch.nn.Linear, torch.nn.Sequential, torch.nn.ReLU, torch.nn.Tanh]
    )


_allow_latent_modules_in_checkpoints()


class BaseTask(LightningModule):
    """The base of every catlight task: optimizer injection, hyperparameters, callbacks, images.

    A task subclasses it, passes ``optimizer`` and ``lr_scheduler`` up in its first
    line, ``super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler)``, and
    gets:

    - **its hyperparameters saved once**, here: the arguments of every subclass
      ``__init__`` that led to this one, quietly about module arguments (the latent
      layer is one: built by the CLI, the hyperparameters hold its config; built in
      Python, the module itself, which the checkpoint pickles; either way
      ``load_from_checkpoint`` rebuilds it);
    - **the optimizer and LR scheduler injected the LightningCLI way**: in YAML
      ``model.init_args.optimizer: {class_path: torch.optim.SGD, init_args: {lr: 0.1}}``,
      or on the command line ``--optimizer AdamW --lr_scheduler CosineAnnealingLR``
      (the ``catlight`` CLI hands those to :meth:`optimizer_config`, so the task keeps
      its scheduler settings). Left unset, the task's own choice:
      :meth:`default_optimizer` and :meth:`default_lr_scheduler`;
    - :class:`~catlight.callbacks.EstimatorStep` (estimator state such as a temperature
      schedule or a REINFORCE baseline advances once per optimizer step under any
      ``Trainer``) and :class:`~catlight.callbacks.LogImages`, which logs what
      :meth:`images` returns.

    Args:
        optimizer: builds the optimizer from the parameters. None: :meth:`default_optimizer`.
        lr_scheduler: builds an LR scheduler from the optimizer. None:
            :meth:`default_lr_scheduler`.

    Attributes:
        monitor: the metric a ``ReduceLROnPlateau`` scheduler watches by default (a
            loss: lower is better).
        lr_scheduler_interval: ``"epoch"`` or ``"step"``, how often Lightning steps the
            scheduler under automatic optimization.
    """

    monitor: str = "val/loss"
    lr_scheduler_interval: str = "epoch"

    def __init__(
        self,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(frame=inspect.currentframe().f_back)
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler

    @override
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

    @override
    def configure_callbacks(self) -> list[Callback]:
        """:class:`~catlight.callbacks.EstimatorStep` and :class:`~catlight.callbacks.LogImages`."""
        return [EstimatorStep(), LogImages()]

    def default_optimizer(self) -> torch.optim.Optimizer:
        """The optimizer when none is injected: :meth:`adam` with the task's ``learning_rate``."""
        return self.adam(lr=self.hparams.learning_rate)

    def adam(self, **kwargs: Any) -> torch.optim.Adam:
        """Adam over the task's parameters, with torch's fused kernel wherever it can run.

        The fused kernel updates every parameter tensor in one call where the default
        loops over them with several operations each: for the VAE's 1.2 M parameters
        on one CPU thread, a step takes 1.2 ms instead of 5 ms (a third of a training
        step at batch 100). The same update up to rounding, the same state dict. It is
        not used where it cannot run: parameters off CPU and CUDA (or on a CPU before
        torch 2.4), and gradients clipped under mixed precision, which Lightning
        refuses for an optimizer that unscales its own gradients.

        Args:
            kwargs: Adam's arguments (``lr``, ``eps``, ...).
        """
        parameters = list(self.parameters())
        devices = {"cuda", "cpu"} if torch.__version__ >= (2, 4) else {"cuda"}
        fusable = all(p.device.type in devices and p.is_floating_point() for p in parameters)
        fused = fusable and not self._clips_in_mixed_precision()
        # None, not False, where unfused: torch then picks its multi-tensor loop on CUDA
        return torch.optim.Adam(parameters, fused=fused or None, **kwargs)

    def clips_gradients(self) -> bool:
        """Whether training clips gradients: the trainer's ``gradient_clip_val``, or the task."""
        trainer = self._trainer
        return trainer is not None and bool(trainer.gradient_clip_val)

    def _clips_in_mixed_precision(self) -> bool:
        trainer = self._trainer
        mixed = trainer is not None and isinstance(trainer.precision_plugin, MixedPrecision)
        return mixed and self.clips_gradients()

    def default_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> LRSchedulerTypeUnion | None:
        """The LR scheduler when none is injected: none (a constant learning rate)."""
        return None

    @override
    def configure_optimizers(self) -> OptimizerLRScheduler:
        """The injected optimizer and scheduler, or the task's defaults."""
        if self.optimizer_factory is not None:
            optimizer = self.optimizer_factory(self.parameters())
        else:
            optimizer = self.default_optimizer()
        scheduler = None
        if self.lr_scheduler_factory is not None:
            scheduler = self.lr_scheduler_factory(optimizer)
        return self.optimizer_config(optimizer, scheduler)

    def optimizer_config(
        self, optimizer: torch.optim.Optimizer, lr_scheduler: LRSchedulerTypeUnion | None = None
    ) -> OptimizerLRScheduler:
        """What ``configure_optimizers`` returns for this optimizer and scheduler.

        A missing scheduler is the task's :meth:`default_lr_scheduler`; a
        ``ReduceLROnPlateau`` watches its own ``monitor`` if it has one (LightningCLI's
        ``--lr_scheduler ReduceLROnPlateau --lr_scheduler.monitor ...``), else the
        task's :attr:`monitor`.
        """
        if lr_scheduler is None:
            lr_scheduler = self.default_lr_scheduler(optimizer)
        if lr_scheduler is None:
            return optimizer
        config: dict[str, Any] = {"scheduler": lr_scheduler, "interval": self.lr_scheduler_interval}
        if isinstance(lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = getattr(lr_scheduler, "monitor", None) or self.monitor
        return {"optimizer": optimizer, "lr_scheduler": config}

    def training_loss(self, batch: Any) -> Tensor:
        """The scalar loss that ``training_step`` minimises on ``batch``, logging nothing.

        ``training_step`` returns it (and logs its parts);
        :class:`~catlight.diagnostics.GradientDiagnostics` differentiates it many times on
        one batch to measure the gradient estimators. A task whose loss is not a
        function of one batch through its latent layers' estimators (the actor-critic,
        which samples without an estimator) does not implement it.

        Raises:
            NotImplementedError: if the task does not implement it.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement training_loss(batch)")

    def images(self, batch: Any, stage: str) -> dict[str, Tensor]:
        """Images worth a look for this batch, logged by :class:`~catlight.callbacks.LogImages`.

        Called on rank 0 with the first batch of each validation (``stage="val"``) and
        test (``stage="test"``) epoch, in eval mode without gradients. Returns
        TensorBoard tags mapped to images with values in ``[0, 1]``; none by default.

        Shapes:
            - output values: ``(C, H, W)``, C in {1, 3}
        """
        return {}
