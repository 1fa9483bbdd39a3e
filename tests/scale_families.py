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

from tests.conftest import write_binarized_npz

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Family:
    """How to run one model family small and fast on CPU.

    Attributes:
        config: a config of the family under configs/, with a relaxed estimator and
            TemperatureAnnealing (the resume tests anneal it).
        shrink: command-line overrides that make the model tiny.
        write_data: writes tiny data into a folder and returns the ``--data`` overrides
            (batch size 4 per process).
        metrics: scalars a fit must log (training and validation).
        latent: the name of one DiscreteLatent submodule of the model.
        latent_arg: the command-line prefix of that latent's settings.
    """

    config: str
    shrink: tuple[str, ...]
    write_data: Callable[[Path], list[str]]
    metrics: tuple[str, ...]
    latent: str = "latent"
    latent_arg: str = "--model.init_args.latent"

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
}

# the trainer settings of every quick run (one training epoch is 8 batches of 4
# in one process, 4 per rank under 2-process DDP)
QUICK_TRAINER = (
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.limit_val_batches=1",
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
