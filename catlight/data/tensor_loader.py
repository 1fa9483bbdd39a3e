"""Batches straight from tensors held on the training device: no DataLoader workers.

Small data sets (MNIST is 40 MB as bytes) fit on any GPU; slicing them there is far
cheaper than collating Python objects every step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

__all__ = ["TensorLoader"]


class TensorLoader:
    """An iterable of batches drawn from equally long tensors.

    Under data parallelism each rank takes every ``world_size``-th example of a
    permutation shared by all ranks (the permutation is seeded by ``seed`` and the
    epoch), so ranks see disjoint shards of equal length.

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
        self.epoch = 0

    @property
    def num_examples(self) -> int:
        """Examples this rank sees per epoch."""
        return self.tensors[0].shape[0] // self.world_size

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_examples // self.batch_size
        return -(-self.num_examples // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        device = self.tensors[0].device
        total = self.num_examples * self.world_size
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.tensors[0].shape[0], generator=generator)[:total]
        else:
            order = torch.arange(total)
        order = order[self.rank :: self.world_size].to(device)
        self.epoch += 1
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            batch = tuple(tensor[index] for tensor in self.tensors)
            yield self.transform(batch) if self.transform is not None else batch
