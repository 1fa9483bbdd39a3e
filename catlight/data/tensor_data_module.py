"""TensorDataModule: a DataModule whose splits are tensors served by TensorLoader."""

from __future__ import annotations

from collections.abc import Callable

from lightning.pytorch import LightningDataModule
from torch import Tensor
from typing_extensions import override

from catlight.data.tensor_loader import TensorLoader

__all__ = ["TensorDataModule"]

Split = tuple[Tensor, ...]


class TensorDataModule(LightningDataModule):
    """Base class: ``train`` / ``valid`` / ``test`` splits held as tensors.

    Subclasses fill :attr:`splits` in :meth:`setup` (tuples of tensors sharing their
    first dimension); this base serves them with :class:`TensorLoader`: on the
    training device when ``on_device``, sharded by rank, and for training shuffled by
    ``seed`` and epoch and resumable mid-epoch. ``predict`` reads the test split.

    Args:
        batch_size: training batch size per process.
        eval_batch_size: batch size for validation, test and predict.
        on_device: keep the data on the training device (no DataLoader workers).
        seed: seed of the shuffling.
    """

    def __init__(self, batch_size: int, eval_batch_size: int, on_device: bool, seed: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.on_device = on_device
        self.seed = seed
        self.splits: dict[str, Split] = {}

    def batch_transform(self) -> Callable[[Split], Split] | None:
        """What the loaders apply to each batch (None: nothing)."""
        return None

    def _loader(self, split: str, train: bool) -> TensorLoader:
        if not self.splits:
            self.setup()
        loader = TensorLoader.for_trainer(
            self.trainer,
            self.splits[split],
            batch_size=self.batch_size if train else self.eval_batch_size,
            train=train,
            on_device=self.on_device,
            transform=self.batch_transform(),
            seed=self.seed,
        )
        self.splits[split] = loader.tensors  # moved to the device once
        return loader

    def _training_loader(self, split: str) -> TensorLoader:
        """Shuffled batches of ``split`` for training; an error if there is none.

        Raises:
            ValueError: if the split gives no batch (fewer examples per process than
                ``batch_size``, the last incomplete batch being dropped): the run would
                otherwise end at once, untrained.
        """
        loader = self._loader(split, train=True)
        if len(loader) == 0:
            raise ValueError(
                f"{type(self).__name__}: the training split gives no batch: "
                f"{loader.num_examples} examples per process (of {loader.world_size}) "
                f"and batch_size = {loader.batch_size}; lower batch_size or use more data"
            )
        return loader

    @override
    def train_dataloader(self) -> TensorLoader:
        return self._training_loader("train")

    @override
    def val_dataloader(self) -> TensorLoader:
        return self._loader("valid", train=False)

    @override
    def test_dataloader(self) -> TensorLoader:
        return self._loader("test", train=False)

    @override
    def predict_dataloader(self) -> TensorLoader:
        return self._loader("test", train=False)
