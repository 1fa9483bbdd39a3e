"""Callbacks: estimator steps, image logging, per-rank random state."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from catlight.latent import Estimator

__all__ = ["EstimatorStep", "LogImages", "RandomState", "writes_logs"]


class EstimatorStep(Callback):
    """Advance every estimator of the model once per optimisation step.

    After a training batch that ended with an optimizer step (the global step moved:
    with ``accumulate_grad_batches`` only every n-th batch does), calls
    :meth:`~catlight.latent.Estimator.step` of every estimator in the model once (once
    per batch also under manual optimisation with several optimizer steps a batch):
    the Gumbel-Softmax temperature schedules and the REINFORCE baselines advance
    there. An annealed temperature is logged as ``tau`` (``tau/<module name>`` when
    the model has several). Every catlight task adds this callback itself (see
    :class:`~catlight.tasks.BaseTask`) and the ``catlight`` CLI adds it for any other
    model.
    """

    def __init__(self) -> None:
        self._step_at_batch_start = -1

    @override
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: object, batch_idx: int
    ) -> None:
        self._step_at_batch_start = trainer.global_step

    @override
    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: object,
        batch: object,
        batch_idx: int,
    ) -> None:
        if trainer.global_step == self._step_at_batch_start:
            return  # accumulating gradients: no optimizer step yet
        estimators = {
            name: module
            for name, module in pl_module.named_modules()
            if isinstance(module, Estimator)
        }
        for estimator in estimators.values():
            estimator.step()
        annealed = {
            name: estimator.tau
            for name, estimator in estimators.items()
            if getattr(estimator, "anneal_rate", 0) > 0
        }
        if not writes_logs(trainer, trainer.global_step):
            return
        for name, tau in annealed.items():
            pl_module.log("tau" if len(annealed) == 1 else f"tau/{name}", tau)


def writes_logs(trainer: Trainer, steps_done: int) -> bool:
    """Whether Lightning writes the logs of the step after which ``steps_done`` steps are done.

    It writes every ``trainer.log_every_n_steps`` steps (every step under
    ``fast_dev_run``). A per-step scalar logged on those steps only reaches the logger
    all the same, and saves Lightning's ``self.log`` bookkeeping, ~0.5 ms a call on a
    CPU (3% of a VAE step), on the others.
    """
    return steps_done % trainer.log_every_n_steps == 0 or bool(trainer.fast_dev_run)


class LogImages(Callback):
    """Log the images a task draws from the first batch of each validation and test epoch.

    The task's ``images(batch, stage)`` (see :meth:`catlight.tasks.BaseTask.images`)
    returns TensorBoard tags mapped to ``(C, H, W)`` images in ``[0, 1]``:
    reconstructions and prior samples for the VAEs, the confusion matrix for M2, the
    inferred graphs and roll-outs for NRI. It is called on every rank, since it may
    compute metrics that synchronise across ranks, in eval mode without gradients;
    rank 0 writes the images to each TensorBoard logger (other loggers are skipped).
    Nothing runs during the sanity check, for a model without ``images``, or without
    a TensorBoard logger. Every :class:`~catlight.tasks.BaseTask` adds this callback.
    """

    def __init__(self) -> None:
        self._first_batches: dict[str, Any] = {}

    @override
    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: object,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._keep_first_batch("val", batch, batch_idx, dataloader_idx)

    @override
    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: object,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._keep_first_batch("test", batch, batch_idx, dataloader_idx)

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "val")

    @override
    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "test")

    def _keep_first_batch(
        self, stage: str, batch: Any, batch_idx: int, dataloader_idx: int
    ) -> None:
        if batch_idx == 0 and dataloader_idx == 0:
            self._first_batches[stage] = batch

    def _log(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        batch = self._first_batches.pop(stage, None)
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if batch is None or trainer.sanity_checking or not loggers:
            return
        images_of = getattr(pl_module, "images", None)
        if images_of is None:
            return
        with torch.no_grad():
            images = images_of(batch, stage)
        if not trainer.is_global_zero:
            return
        for tag, image in images.items():
            for logger in loggers:
                logger.experiment.add_image(tag, image.detach().float().cpu(), trainer.global_step)


class RandomState(Callback):
    """Different noise on every rank, and every rank's generators in the checkpoint.

    With the same ``seed_everything`` seed in every process, all DDP ranks would draw
    the same latent noise (Gumbel noise, categorical samples) for their different
    examples. At setup, this callback reseeds torch (CPU and CUDA), numpy and
    ``random`` on each rank ``r > 0`` with ``seed + r``; rank 0 keeps its stream, so it
    draws what a one-process run draws. ``seed`` is the ``seed_everything`` seed
    (``torch.initial_seed()`` when none was set).

    Checkpoints get the state of those generators on every rank (gathered, since
    only rank 0 writes), and a resumed run restores each rank's own: with a
    resumable data loader the continuation draws exactly the random numbers of an
    uninterrupted run. A checkpoint written with another number of ranks, or
    without this callback, restores nothing (with a warning).
    """

    checkpoint_key = "random_states"

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if trainer.global_rank == 0:
            return
        seed = int(os.environ.get("PL_GLOBAL_SEED", torch.initial_seed()))
        _seed_generators(seed + trainer.global_rank)

    @override
    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        state = _generator_states()
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            states: list[dict[str, Any]] = [{} for _ in range(trainer.world_size)]
            dist.all_gather_object(states, state)
        else:
            states = [state]
        checkpoint[self.checkpoint_key] = states

    @override
    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = checkpoint.get(self.checkpoint_key)
        if states is None or len(states) != trainer.world_size:
            saved = "no random state" if states is None else f"{len(states)} ranks"
            rank_zero_warn(
                f"RandomState: the checkpoint holds {saved} and this run has "
                f"{trainer.world_size}; the random generators are not restored, so the "
                "continuation is not the uninterrupted run's"
            )
            return
        _set_generator_states(states[trainer.global_rank])


def _seed_generators(seed: int) -> None:
    """Seed torch (every device), numpy's global generator and ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the generator seed_everything seeds)
    random.seed(seed)


def _generator_states() -> dict[str, Any]:
    """This process's generator states, as types a ``weights_only`` load accepts."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (
            name,
            torch.from_numpy(keys.astype(np.int64)),
            position,
            has_gauss,
            cached_gaussian,
        ),
        "python": random.getstate(),
    }


def _set_generator_states(states: dict[str, Any]) -> None:
    """Restore what :func:`_generator_states` returned."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state(  # noqa: NPY002
        (name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian)
    )
    random.setstate(states["python"])
