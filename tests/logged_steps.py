"""The training steps on which a task calls ``self.log`` for one per-step scalar."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader


def logged_steps(
    model: LightningModule, name: str, batches: Iterable, root_dir: Path, every: int = 3
) -> tuple[list[int], Trainer]:
    """Train on ``batches`` (one step each), Lightning writing every ``every`` steps.

    Returns the global steps at which ``name`` was logged, and the trainer. A task that
    logs only the steps Lightning writes (``catlight.callbacks.writes_logs``) logs at
    ``every - 1``, ``2 every - 1``, ...
    """
    steps: list[int] = []
    log = model.log

    def counting_log(metric: str, *args, **kwargs) -> None:
        if metric == name:
            steps.append(model.global_step)
        log(metric, *args, **kwargs)

    model.log = counting_log
    trainer = Trainer(
        max_epochs=1, log_every_n_steps=every, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=root_dir,
    )  # fmt: skip
    trainer.fit(model, train_dataloaders=DataLoader(list(batches), batch_size=None))
    return steps, trainer
