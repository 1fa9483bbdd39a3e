"""The model families that the DDP, mixed-precision and resume tests run.

One entry per family: a config of it, the overrides that make it tiny, the tiny data
it trains on, the metrics a fit must log and where its latent layer is. Adding a
family to ``FAMILIES`` adds it to tests/test_ddp.py, tests/test_mixed_precision.py
and tests/test_resume.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from catlight.data import ParticlesDataModule
from tests.conftest import write_binarized_npz, write_mnist_files

REPO = Path(__file__).resolve().parents[1]


def tuple_example_rows(batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The streams of examples in a tuple batch, one example per row.

    Every tensor of two or more dimensions (images, labeled images, trajectories) is
    a stream; labels are not.
    """
    return tuple(tensor.flatten(1) for tensor in batch if tensor.dim() >= 2)


@dataclass(frozen=True)
class Family:
    """How to run one model family small and fast on CPU.

    Attributes:
        config: a config of the family under configs/, with a relaxed estimator (the
            resume tests anneal its temperature with TemperatureAnnealing).
        shrink: command-line overrides that make the model tiny.
        write_data: writes tiny data into a folder (or leaves it to the data module,
            which simulates into it) and returns the overrides that point the config
            at it; batches of 4 per process, 8 training batches an epoch in one process.
        metrics: scalars a fit must log (training and validation).
        latent: the name of one DiscreteLatent submodule of the model.
        latent_arg: the command-line prefix of that latent's settings.
        example_rows: the streams of examples in a training batch, each a
            ``(examples, features)`` tensor; 2-process DDP must give the ranks
            different examples in every stream.
        deterministic_val_metrics: validation metrics that depend only on the weights
            and the data (no sampling); a 2-process validation must log the value of a
            1-process validation over the same examples.
        ddp_overrides: extra overrides of the 2-process runs (e.g. a binarization
            without noise, so that an example is the same rows on every rank).
        check_ddp_data: checks, after a 2-process fit, what the data module left in
            the data folder (e.g. that only rank 0 simulated).
    """

    config: str
    shrink: tuple[str, ...]
    write_data: Callable[[Path], list[str]]
    metrics: tuple[str, ...]
    latent: str = "latent"
    latent_arg: str = "--model.init_args.latent"
    example_rows: Callable[[Any], tuple[Tensor, ...]] = tuple_example_rows
    deterministic_val_metrics: tuple[str, ...] = ()
    ddp_overrides: tuple[str, ...] = ()
    check_ddp_data: Callable[[Path], None] | None = None

    @property
    def config_path(self) -> Path:
        """The config file."""
        return REPO / "configs" / self.config


def binarized_mnist(folder: Path) -> list[str]:
    """32 / 16 / 16 binary images; batches of 4 (4 per epoch on each of 2 ranks)."""
    write_binarized_npz(folder, {"train": 32, "valid": 16, "test": 16})
    return [
        "--data.init_args.data_dir",
        str(folder),
        "--data.init_args.batch_size",
        "4",
        "--data.init_args.eval_batch_size",
        "8",
    ]


def labeled_mnist(folder: Path) -> list[str]:
    """MNIST IDX files: 32 unlabeled and 20 labeled training images, 16 for validation.

    Labels are ``i % 10`` (two labeled images of each class). Batches pair 4 unlabeled
    images with 3 labeled ones: 8 batches an epoch in one process, and under 2-process
    DDP each rank gets 16 unlabeled and 10 labeled images (3 labeled batches a pass).
    """
    train_size, valid_size, test_size = 68, 16, 16
    rng = np.random.default_rng(0)
    write_mnist_files(
        folder / "mnist",
        {
            "train_images": rng.integers(0, 256, (train_size, 28, 28), dtype=np.uint8),
            "train_labels": (np.arange(train_size) % 10).astype(np.uint8),
            "test_images": rng.integers(0, 256, (test_size, 28, 28), dtype=np.uint8),
            "test_labels": (np.arange(test_size) % 10).astype(np.uint8),
        },
    )
    settings = {
        "data_dir": folder,
        "download": "false",
        "valid_size": valid_size,
        "num_labeled": 20,
        "labeled_batch_size": 3,
        "batch_size": 4,
        "eval_batch_size": 8,
    }
    return [f"--data.init_args.{key}={value}" for key, value in settings.items()]


class RecordedSimulation(ParticlesDataModule):
    """ParticlesDataModule that appends the rank of every simulation it runs to a file."""

    record_name = "simulated_on_ranks.txt"

    def simulate(self, quiet: bool = False) -> dict[str, np.ndarray]:
        """Record this process's rank, then simulate."""
        rank = self.trainer.global_rank if self.trainer is not None else 0
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / self.record_name).open("a") as record:
            record.write(f"{rank}\n")
        return super().simulate(quiet)


def simulated_particles(folder: Path) -> list[str]:
    """32 / 16 / 8 springs simulations of 6 states (test: 12), simulated on first use.

    Nothing is written here: the data module simulates into ``folder`` (in
    ``prepare_data``, rank 0 only) and caches the result for the next runs.
    """
    settings = {
        "data_dir": folder,
        "num_train": 32,
        "num_valid": 16,
        "num_test": 8,
        "train_steps": 6,
        "test_steps": 12,
        "sample_interval": 10,
        "batch_size": 4,
        "eval_batch_size": 8,
    }
    return [
        "--data.class_path=tests.scale_families.RecordedSimulation",
        *(f"--data.init_args.{key}={value}" for key, value in settings.items()),
        "--model.init_args.num_timesteps=6",
    ]


def assert_simulated_once_on_rank_zero(folder: Path) -> None:
    """The data folder holds one cached data set, simulated by rank 0 alone."""
    assert (folder / RecordedSimulation.record_name).read_text().split() == ["0"]
    assert len(list(folder.glob("particles_*.npz"))) == 1
    assert not list(folder.glob("*.part.npz"))


FAMILIES: dict[str, Family] = {
    "vae": Family(
        config="vae/categorical/gs_softmax.yaml",
        shrink=(
            "--model.init_args.num_latents=2",
            "--model.init_args.encoder_sizes=[16]",
            "--model.init_args.decoder_sizes=[16]",
            "--model.init_args.eval_num_samples=4",
        ),
        write_data=binarized_mnist,
        metrics=("train/neg_elbo", "val/neg_elbo"),
    ),
    "sbn": Family(
        config="sbn/categorical/gs_softmax.yaml",
        shrink=(
            "--model.init_args.num_latents=2",
            "--model.init_args.val_num_samples=4",
            "--model.init_args.eval_num_samples=4",
        ),
        write_data=binarized_mnist,
        metrics=("train/loss", "val/nll"),
        latent="latents.0",
    ),
    "semisupervised": Family(
        config="semisupervised/mnist/gs_softmax.yaml",
        shrink=("--model.init_args.hidden_size=16", "--model.init_args.latent_size=2"),
        write_data=labeled_mnist,
        metrics=("train/loss", "val/accuracy", "val/unlabeled_neg_elbo"),
        deterministic_val_metrics=("val/accuracy", "hp_metric"),
        ddp_overrides=("--data.init_args.binarization=threshold",),
    ),
    "nri": Family(
        config="nri/springs5.yaml",
        shrink=(
            "--model.init_args.encoder_hidden_size=16",
            "--model.init_args.decoder_hidden_size=16",
            "--model.init_args.prediction_steps=2",
            "--model.init_args.lr_decay_epochs=1",  # the learning rate decays in 10 steps
        ),
        write_data=simulated_particles,
        metrics=("train/loss", "val/nll", "val/edge_acc_best"),
        deterministic_val_metrics=(
            "val/nll",
            "val/kl",
            "val/mse",
            "val/mse_1step",
            "val/edge_acc",
            "val/edge_acc_best",
        ),
        check_ddp_data=assert_simulated_once_on_rank_zero,
    ),
}

# the trainer settings of every quick run (one training epoch is 8 batches of 4
# in one process, 4 per rank under 2-process DDP; validation covers the 16 examples)
QUICK_TRAINER = (
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.limit_val_batches=1.0",
    "--trainer.num_sanity_val_steps=0",
    "--trainer.log_every_n_steps=1",
)


def fit_args(family: Family, data_dir: Path, *overrides: str) -> list[str]:
    """``catlight fit`` arguments: the family's config, tiny model and data, overrides."""
    return [
        "--config",
        str(family.config_path),
        *family.shrink,
        *family.write_data(data_dir),
        *QUICK_TRAINER,
        *overrides,
    ]
