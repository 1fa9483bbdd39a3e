"""Long benchmark runs that survive being killed: logged to TensorBoard, resumed from last.ckpt.

A paper-budget run keeps everything in its own folder: ``<run_dir>/`` holds the
TensorBoard event files (the learning curves the figures are drawn from) and
``<run_dir>/checkpoints/last.ckpt``, written after every epoch. Started again with the
same command, the run resumes from that checkpoint instead of starting over.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint

from catlight.cli import CatlightCLI


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
    """Fit with a ``last.ckpt`` saved every epoch, resuming from it when it is there."""
    checkpoints = ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True)
    cli.trainer.callbacks.append(checkpoints)
    last = run_dir / "checkpoints" / "last.ckpt"
    resume = str(last) if last.exists() else None
    if resume:
        print(f"resuming from {resume}", file=sys.stderr)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=resume)
