"""LastCheckpoint: ``last.ckpt`` where ``--ckpt_path last`` finds it, run after run.

Lightning resolves ``ckpt_path="last"`` by asking every ModelCheckpoint for the
``last*.ckpt`` files of its folder. A ModelCheckpoint without a ``dirpath`` writes
into the logger's version folder, and a new run gets a new version folder, so its
``last`` is never the killed run's: Lightning then warns and trains from step 0.
LastCheckpoint writes into a folder that does not depend on the version, and a
``last`` that is not there is an error rather than a fresh start.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from typing_extensions import override

__all__ = ["LastCheckpoint"]


class LastCheckpoint(ModelCheckpoint):
    """Keeps one checkpoint, ``last.ckpt``, in a folder shared by successive runs.

    Resume a killed run with ``catlight fit --config ... --ckpt_path last`` (or
    ``trainer.fit(..., ckpt_path="last")``): it continues from this file.

    Args:
        dirpath: the folder; ``None``: ``<trainer.default_root_dir>/checkpoints``
            (give each run of a different config its own ``default_root_dir``, or
            runs overwrite each other's ``last.ckpt``).
        every_n_train_steps: also save every this many optimizer steps (``None``:
            at the end of every training epoch, or of every validation).
        every_n_epochs: save every this many epochs.
        train_time_interval: save at this wall-clock interval instead.

    Raises:
        FileNotFoundError: when asked for ``ckpt_path="last"`` and there is no
            ``last.ckpt`` in the folder.
    """

    def __init__(
        self,
        dirpath: str | None = None,
        every_n_train_steps: int | None = None,
        every_n_epochs: int | None = None,
        train_time_interval: timedelta | None = None,
    ) -> None:
        # the one "top" checkpoint of no metric is the latest; named "last", overwritten
        # (ModelCheckpoint's own save_last only follows a top-k save, never alone)
        super().__init__(
            dirpath=dirpath,
            filename=self.CHECKPOINT_NAME_LAST,
            save_top_k=1,
            every_n_train_steps=every_n_train_steps,
            every_n_epochs=every_n_epochs,
            train_time_interval=train_time_interval,
            enable_version_counter=False,
        )

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._fix_dirpath(trainer)
        super().setup(trainer, pl_module, stage)

    def _find_last_checkpoints(self, trainer: Trainer) -> set[str]:
        """What Lightning resolves ``ckpt_path="last"`` with; an error when empty."""
        folder = self._fix_dirpath(trainer)
        found = super()._find_last_checkpoints(trainer)
        if not found:
            raise FileNotFoundError(
                f'ckpt_path="last": there is no last.ckpt in {folder}, so there is nothing '
                "to resume; run without --ckpt_path to start from scratch, or point "
                "--trainer.default_root_dir at the folder of the run to resume"
            )
        return found

    def _fix_dirpath(self, trainer: Trainer) -> Path:
        """Set the folder before Lightning looks at it. Returns it."""
        if self.dirpath is None:
            self.dirpath = str(Path(trainer.default_root_dir) / "checkpoints")
        return Path(self.dirpath)
