"""Long benchmark runs that survive being killed: logged to TensorBoard, resumed from last.ckpt.

A paper-budget run keeps everything in its own folder: ``<run_dir>/`` holds the
TensorBoard event files (the learning curves the figures are drawn from) and, as
``--trainer.default_root_dir``, the configs' ``LastCheckpoint`` writes
``<run_dir>/checkpoints/last.ckpt`` after every epoch. Started again with the same
command, the run resumes from that checkpoint instead of starting over.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from catlight.cli import CatlightCLI


def batch_count(text: str) -> int:
    """``--limit-train-batches``: at least 2, since Lightning reads 1 as 100 % of an epoch."""
    count = int(text)
    if count < 2:
        raise argparse.ArgumentTypeError(
            f"must be >= 2 (Lightning reads 1 as the whole epoch), got {count}"
        )
    return count


def run_folder(root: Path, name: str, limit_train_batches: int | None) -> Path:
    """``root / name``; a timing run (``limit_train_batches`` set) gets a folder of its own."""
    if limit_train_batches is None:
        return root / name
    return root / f"{name}_timing{limit_train_batches}"


def trainer_overrides(
    run_dir: Path,
    max_epochs: int,
    accelerator: str,
    valid_fraction: float,
    limit_train_batches: int | None = None,
) -> list[str]:
    """A paper run's trainer on the command line: epochs, device, quiet, logged to run_dir.

    Validation reads ``valid_fraction`` of its set every epoch; a timing run trains
    ``limit_train_batches`` batches an epoch.
    """
    overrides = [
        "--trainer.max_epochs",
        str(max_epochs),
        "--trainer.accelerator",
        accelerator,
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.limit_val_batches",
        str(valid_fraction),
        "--trainer.default_root_dir",  # the configs' LastCheckpoint: <run_dir>/checkpoints
        str(run_dir),
        *logger_overrides(run_dir),
    ]
    if limit_train_batches is not None:
        overrides += ["--trainer.limit_train_batches", str(limit_train_batches)]
    return overrides


def logger_overrides(run_dir: Path) -> list[str]:
    """Command-line overrides that log a config's run to TensorBoard in ``run_dir`` itself."""
    return [
        "--trainer.logger.class_path",
        "TensorBoardLogger",
        "--trainer.logger.init_args.save_dir",
        str(run_dir),
        "--trainer.logger.init_args.name",
        "",
        "--trainer.logger.init_args.version",
        "",
    ]


def resumable_fit(cli: CatlightCLI, run_dir: Path) -> None:
    """Fit, resuming from ``<run_dir>/checkpoints/last.ckpt`` when it is there.

    The config's ``LastCheckpoint`` writes that file; ``trainer_overrides`` points
    ``default_root_dir`` at ``run_dir`` so that each run has its own.
    """
    last = run_dir / "checkpoints" / "last.ckpt"
    resume = "last" if last.exists() else None
    if resume:
        print(f"resuming from {last}", file=sys.stderr)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=resume)
