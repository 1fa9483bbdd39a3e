"""TensorLoader: batches sliced from tensors, seeded shuffling, rank sharding."""

from __future__ import annotations

import pytest
import torch

from catlight.data import TensorLoader


def data(count: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.arange(count)
    return index, index * 10


def order_of(loader: TensorLoader) -> list[int]:
    """The example indices of one pass, in order."""
    return torch.cat([batch[0] for batch in loader]).tolist()


@pytest.mark.parametrize(
    ("drop_last", "sizes"), [(False, [4, 4, 2]), (True, [4, 4])], ids=["keep_last", "drop_last"]
)
def test_tensor_loader_batch_count_and_sizes(drop_last, sizes):
    loader = TensorLoader(data(10), batch_size=4, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(sizes) == len(batches)
    assert [batch[0].shape[0] for batch in batches] == sizes
    for index, times_ten in batches:
        assert torch.equal(times_ten, index * 10)  # tensors are sliced together


def test_tensor_loader_without_shuffle_serves_in_order():
    assert order_of(TensorLoader(data(10), batch_size=3)) == list(range(10))


def test_tensor_loader_batch_size_larger_than_the_data():
    assert [b[0].shape[0] for b in TensorLoader(data(3), batch_size=8)] == [3]
    assert list(TensorLoader(data(3), batch_size=8, drop_last=True)) == []


def test_tensor_loader_shuffle_is_a_permutation_fixed_by_seed_and_epoch():
    first = TensorLoader(data(50), batch_size=7, shuffle=True, seed=3)
    again = TensorLoader(data(50), batch_size=7, shuffle=True, seed=3)
    epochs = [order_of(first) for _ in range(3)]
    assert [order_of(again) for _ in range(3)] == epochs
    for order in epochs:
        assert sorted(order) == list(range(50))
    assert epochs[0] != list(range(50))
    assert epochs[0] != epochs[1] != epochs[2]
    other_seed = TensorLoader(data(50), batch_size=7, shuffle=True, seed=4)
    assert order_of(other_seed) != epochs[0]


def test_tensor_loader_shuffle_with_drop_last_draws_from_all_examples():
    loader = TensorLoader(data(10), batch_size=4, shuffle=True, drop_last=True)
    seen = set()
    for _ in range(20):
        order = order_of(loader)
        assert len(order) == 8 and len(set(order)) == 8
        seen.update(order)
    assert seen == set(range(10))


@pytest.mark.parametrize("shuffle", [False, True])
def test_tensor_loader_ranks_get_disjoint_shards_covering_the_data(shuffle):
    loaders = [
        TensorLoader(data(12), batch_size=4, shuffle=shuffle, seed=1, rank=rank, world_size=2)
        for rank in range(2)
    ]
    for _ in range(2):  # two epochs: the ranks stay in step
        shards = [order_of(loader) for loader in loaders]
        assert [len(shard) for shard in shards] == [6, 6]
        assert set(shards[0]).isdisjoint(shards[1])
        assert sorted(shards[0] + shards[1]) == list(range(12))
    assert all(len(loader) == 2 for loader in loaders)


def test_tensor_loader_ranks_drop_the_remainder_to_stay_equal():
    loaders = [TensorLoader(data(11), batch_size=2, rank=r, world_size=2) for r in range(2)]
    shards = [order_of(loader) for loader in loaders]
    assert [len(shard) for shard in shards] == [5, 5]
    assert set(shards[0]).isdisjoint(shards[1])
    assert loaders[0].num_examples == 5


def test_tensor_loader_applies_the_transform_to_each_batch():
    calls = []

    def transform(batch):
        calls.append(batch[0].shape[0])
        index, times_ten = batch
        return index.float() / 2, times_ten + 1

    batches = list(TensorLoader(data(5), batch_size=2, transform=transform))
    assert calls == [2, 2, 1]
    assert torch.equal(torch.cat([b[0] for b in batches]), torch.arange(5) / 2)
    assert torch.equal(torch.cat([b[1] for b in batches]), torch.arange(5) * 10 + 1)


def test_tensor_loader_rejects_tensors_of_different_lengths():
    with pytest.raises(ValueError, match=r"tensors must have one length, got \[3, 4\]"):
        TensorLoader((torch.zeros(3), torch.zeros(4)), batch_size=2)


def test_tensor_loader_rejects_batch_size_below_one():
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        TensorLoader(data(3), batch_size=0)
