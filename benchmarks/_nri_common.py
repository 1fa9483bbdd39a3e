"""What ``nri.py`` and ``nri_tree.py`` share: preset, command line, header, data, training.

Both train NRI on simulated particles without validation, test the last model and
print markdown tables on stdout (Lightning's own output goes to stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch import Trainer
from nri_simulation import cpu_model

from catlight.tasks.nri import NRI, ParticlesDataModule


@dataclass(frozen=True)
class Preset:
    """How much each accuracy row trains."""

    num_train: int
    num_valid: int
    num_test: int
    epochs: int
    hidden_size: int
    batch_size: int
    learning_rate: float
    skip_first: bool  # edge type 0 sends no message


def make_parser(
    description: str, presets: Sequence[str] = ("quick", "full")
) -> argparse.ArgumentParser:
    """The options of both scripts.

    One flag per preset (``--quick``, the default, ``--full``, ...), ``--data-dir``,
    ``--accelerator``, ``--threads`` and ``--seed``.
    """
    parser = argparse.ArgumentParser(description=description)
    preset_group = parser.add_mutually_exclusive_group()
    for name in presets:
        preset_group.add_argument(f"--{name}", action="store_const", const=name, dest="preset")
    parser.add_argument("--data-dir", type=Path, default=Path("data/particles"))
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def print_header(title: str, args: argparse.Namespace, description: str) -> None:
    """The title, the command that ran, the device, versions and the preset in words."""
    print(f"# {title}\n")
    print(f"`{shlex.join(['python', *sys.argv])}`\n")
    print(
        f"{args.accelerator} ({cpu_model()}, {torch.get_num_threads()} torch threads), "
        f"torch {torch.__version__}, Python {platform.python_version()}; {description}\n"
    )


def make_data(
    args: argparse.Namespace, preset: Preset, system: str, particles: int, **settings
) -> ParticlesDataModule:
    """The preset's data set (simulated once, then read from ``args.data_dir``)."""
    return ParticlesDataModule(
        str(args.data_dir),
        system=system,
        num_particles=particles,
        **settings,
        num_train=preset.num_train,
        num_valid=preset.num_valid,
        num_test=preset.num_test,
        batch_size=preset.batch_size,
    )


def train_and_test(
    args: argparse.Namespace, preset: Preset, model: NRI, data: ParticlesDataModule
) -> tuple[dict[str, float], float]:
    """Train for the preset's epochs without validation, test the last model.

    Returns the test metrics and the training time in seconds.
    """
    trainer = Trainer(
        accelerator=args.accelerator,
        max_epochs=preset.epochs,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the tables
        data.prepare_data()
        start = time.perf_counter()
        trainer.fit(model, datamodule=data)
        seconds = time.perf_counter() - start
        metrics = trainer.test(model, datamodule=data, verbose=False)[0]
    return metrics, seconds


def mse_cells(metrics: dict[str, float]) -> list[str]:
    """The test MSE 1, 10 and 20 steps ahead, as table cells."""
    return [f"{metrics[f'test/mse_{horizon}step']:.2e}" for horizon in (1, 10, 20)]
