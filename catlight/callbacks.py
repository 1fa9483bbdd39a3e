"""Callbacks: temperature annealing, image logging, per-rank random state."""

from __future__ import annotations

import math
import os
import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn

from catlight.latent import RelaxedEstimator

__all__ = ["ImageSamples", "RandomState", "TemperatureAnnealing"]


class TemperatureAnnealing(Callback):
    r"""Anneal the temperature of every relaxed estimator in the model.

    ``tau = max(tau_min, tau0 * exp(-rate * step))``, updated every ``interval``
    training steps (piecewise constant in between; the Gumbel-Softmax paper's schedule:
    ``tau0 = 1``, ``tau_min = 0.5``, ``rate`` in {1e-5, 1e-4}, ``interval`` in
    {500, 1000}) and logged as ``tau``. The temperature is a function of the global
    step, set before every training batch, so a resumed run continues the schedule.

    Args:
        tau0: the initial temperature.
        tau_min: the floor.
        rate: the exponential decay rate per step.
        interval: steps between updates.

    Raises:
        ValueError: for non-positive temperatures, a negative rate or interval < 1;
            at fit start, if the model has no relaxed estimator or a temperature is
            invalid for one (ReinMax needs tau >= 1).
    """

    def __init__(
        self, tau0: float = 1.0, tau_min: float = 0.5, rate: float = 1e-4, interval: int = 1000
    ) -> None:
        if not (tau0 > 0 and tau_min > 0):
            raise ValueError(
                f"TemperatureAnnealing: tau0 and tau_min must be > 0, got {tau0}, {tau_min}"
            )
        if rate < 0 or interval < 1:
            raise ValueError(
                f"TemperatureAnnealing: rate must be >= 0 and interval >= 1, got {rate}, {interval}"
            )
        self.tau0 = tau0
        self.tau_min = tau_min
        self.rate = rate
        self.interval = interval
        self._estimators: list[RelaxedEstimator] = []  # found at fit start

    def temperature(self, step: int) -> float:
        """The schedule's temperature at a training step."""
        updated_at = step - step % self.interval
        return max(self.tau_min, self.tau0 * math.exp(-self.rate * updated_at))

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: D102
        estimators = [m for m in pl_module.modules() if isinstance(m, RelaxedEstimator)]
        if not estimators:
            raise ValueError(
                "TemperatureAnnealing: the model has no relaxed estimator (GumbelSoftmax, "
                "StraightThrough, ReinMax, ...) whose temperature it could anneal"
            )
        for estimator in estimators:
            estimator.check_tau(self.tau0)
            estimator.check_tau(self.tau_min)
        self._estimators = estimators

    def on_train_batch_start(  # noqa: D102
        self, trainer: Trainer, pl_module: LightningModule, batch: object, batch_idx: int
    ) -> None:
        # set at every step (a scalar fill): right after a resume too, whatever the step
        tau = self.temperature(trainer.global_step)
        for estimator in self._estimators:
            estimator.set_tau(tau)
        pl_module.log("tau", tau)


class ImageSamples(Callback):
    """Log reconstructions of validation images and samples from the prior.

    After each validation epoch, for a model with a ``reconstruct(images)`` method
    (and optionally ``sample(num_images)``) returning pixel means
    ``(B, height * width)``: logs an image grid of inputs beside their
    reconstructions, and one of samples, to TensorBoard (other loggers are skipped).

    Args:
        num_images: images per grid.
        height: image height (width = pixels / height).
    """

    def __init__(self, num_images: int = 32, height: int = 28) -> None:
        self.num_images = num_images
        self.height = height
        self._inputs: torch.Tensor | None = None

    def on_validation_batch_end(  # noqa: D102
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: object,
        batch: tuple[torch.Tensor, ...],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx == 0:
            self._inputs = batch[0][: self.num_images]

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: D102
        logger = trainer.logger
        if (
            self._inputs is None
            or trainer.sanity_checking
            or not isinstance(logger, TensorBoardLogger)
            or not trainer.is_global_zero
        ):
            return
        inputs = self._inputs
        reconstructions = pl_module.reconstruct(inputs)
        pairs = torch.stack([inputs.float(), reconstructions], 1).flatten(0, 1)
        step = trainer.global_step
        logger.experiment.add_images("reconstructions", self._grid(pairs), step)
        if hasattr(pl_module, "sample"):
            samples = pl_module.sample(self.num_images)
            logger.experiment.add_images("prior_samples", self._grid(samples), step)

    def _grid(self, images: torch.Tensor) -> torch.Tensor:
        """Tile ``(B, H * W)`` pixel means into one ``(1, 1, rows * H, 8 * W)`` image."""
        columns = 8
        images = images.detach().float().cpu().view(images.shape[0], self.height, -1)
        rows = -(-images.shape[0] // columns)
        padded = torch.zeros(rows * columns, *images.shape[1:])
        padded[: images.shape[0]] = images
        tiles = padded.view(rows, columns, *images.shape[1:]).permute(0, 2, 1, 3)
        return tiles.reshape(1, 1, rows * images.shape[1], columns * images.shape[2])


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

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:  # noqa: D102
        if trainer.global_rank == 0:
            return
        seed = int(os.environ.get("PL_GLOBAL_SEED", torch.initial_seed()))
        _seed_generators(seed + trainer.global_rank)

    def on_save_checkpoint(  # noqa: D102
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        state = _generator_states()
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            states: list[dict[str, Any]] = [{} for _ in range(trainer.world_size)]
            dist.all_gather_object(states, state)
        else:
            states = [state]
        checkpoint[self.checkpoint_key] = states

    def on_load_checkpoint(  # noqa: D102
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
