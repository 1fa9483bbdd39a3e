"""Batches straight from tensors held on the training device: no DataLoader workers.

Small data sets (MNIST is 40 MB as bytes) fit on any GPU; slicing them there is far
cheaper than collating Python objects every step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

__all__ = ["TensorLoader"]


class TensorLoader:
    """An iterable of batches drawn from equally long tensors.

    Under data parallelism each rank takes every ``world_size``-th example of a
    permutation shared by all ranks (the permutation is seeded by ``seed`` and the
    epoch), so ranks see disjoint shards of equal length.

    The loader is resumable mid-epoch: :meth:`state_dict` says which pass is in
    progress and how many of its batches were served, and after
    :meth:`load_state_dict` the next pass serves the rest of that pass, in its
    order. Lightning saves and restores this state with the checkpoint (the
    stateful data loader protocol), so a run resumed from a mid-epoch checkpoint
    sees the batches an uninterrupted run would.

    Args:
        tensors: tensors with the same first dimension, ideally on the target device.
        batch_size: examples per batch (per rank).
        shuffle: draw a new permutation every epoch.
        drop_last: drop the last incomplete batch.
        transform: applied to each batch tuple (e.g. byte images to float, dynamic
            binarization); runs on the batch's device.
        seed: base seed of the permutation.
        rank: this process's rank; world_size: number of ranks.

    Shapes:
        - tensors: each ``(num_examples, ...)``
        - a batch: a tuple of ``(batch_size, ...)`` slices
    """

    def __init__(
        self,
        tensors: tuple[Tensor, ...],
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        transform: Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]] | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        sizes = {tensor.shape[0] for tensor in tensors}
        if len(sizes) != 1:
            raise ValueError(f"TensorLoader: tensors must have one length, got {sorted(sizes)}")
        if batch_size < 1:
            raise ValueError(f"TensorLoader: batch_size must be >= 1, got {batch_size}")
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.transform = transform
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0  # the epoch of the next pass
        self._pass_epoch: int | None = None  # the epoch of the pass in progress
        self._batches_served = 0  # by the pass in progress
        self._resume_at = 0  # the first batch of the next pass (after load_state_dict)

    @classmethod
    def for_trainer(
        cls,
        trainer: Trainer | None,
        tensors: tuple[Tensor, ...],
        batch_size: int,
        train: bool,
        on_device: bool = True,
        transform: Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]] | None = None,
        seed: int = 0,
    ) -> TensorLoader:
        """The loader a data module hands ``trainer``: its device, its rank's shard.

        The tensors move to the trainer's root device (with ``on_device``; the CPU
        otherwise or without a trainer) and the loader takes this process's rank and the
        world size; training loaders shuffle and drop the last incomplete batch. The
        loader starts at the trainer's current epoch, so a resumed run continues the
        shuffling. The moved tensors are the loader's ``tensors``: a data module may keep
        them to move them only once.

        Args:
            trainer: the data module's trainer, or ``None`` outside a Lightning run
                (CPU, rank 0 of 1, epoch 0).
            tensors: tensors with the same first dimension.
            batch_size: examples per batch (per rank).
            train: shuffle and drop the last incomplete batch.
            on_device: put the tensors on the trainer's device.
            transform: applied to each batch tuple, see :class:`TensorLoader`.
            seed: base seed of the permutation.

        Returns:
            The loader.

        Shapes:
            - tensors: each ``(num_examples, ...)``
            - a batch: a tuple of ``(batch_size, ...)`` slices
        """
        device = trainer.strategy.root_device if (trainer and on_device) else "cpu"
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        loader = cls(
            tuple(tensor.to(device) for tensor in tensors),
            batch_size=batch_size,
            shuffle=train,
            drop_last=train,
            transform=transform,
            seed=seed,
            rank=rank,
            world_size=world_size,
        )
        if trainer is not None:
            loader.epoch = trainer.current_epoch
        return loader

    @property
    def num_examples(self) -> int:
        """Examples this rank sees per epoch."""
        return self.tensors[0].shape[0] // self.world_size

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_examples // self.batch_size
        return -(-self.num_examples // self.batch_size)

    def state_dict(self) -> dict[str, int]:
        """Where the next batch comes from: the ``epoch`` of its pass and the batches before it.

        A pass that has served all its batches is reported as the start of the next
        one (``batches_served = 0``), so a checkpoint written at the end of an epoch
        resumes with the next epoch's permutation.
        """
        if self._pass_epoch is None:
            return {"epoch": self.epoch, "batches_served": self._resume_at}
        if self._batches_served == len(self):
            return {"epoch": self._pass_epoch + 1, "batches_served": 0}
        return {"epoch": self._pass_epoch, "batches_served": self._batches_served}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Make the next pass continue the one described by :meth:`state_dict`.

        Raises:
            ValueError: if ``batches_served`` is negative or more than a pass holds.
        """
        served = state_dict["batches_served"]
        if not 0 <= served <= len(self):
            raise ValueError(
                f"TensorLoader: batches_served must be in [0, {len(self)}] (batches per "
                f"pass), got {served}"
            )
        self.epoch = state_dict["epoch"]
        self._pass_epoch = None
        self._resume_at = served

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        epoch, first_batch = self.epoch, self._resume_at
        self.epoch += 1
        self._resume_at = 0
        self._pass_epoch = epoch
        self._batches_served = first_batch
        order = self._order(epoch)
        for batch_index in range(first_batch, len(self)):
            start = batch_index * self.batch_size
            index = order[start : start + self.batch_size]
            batch = tuple(tensor[index] for tensor in self.tensors)
            self._batches_served = batch_index + 1
            yield self.transform(batch) if self.transform is not None else batch

    def _order(self, epoch: int) -> Tensor:
        """This rank's example indices for a pass, on the tensors' device."""
        total = self.num_examples * self.world_size
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.tensors[0].shape[0], generator=generator)[:total]
        else:
            order = torch.arange(total)
        return order[self.rank :: self.world_size].to(self.tensors[0].device)
