"""TensorLoader: batches sliced from tensors, seeded shuffling, rank sharding, resuming."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from catlight.data import TensorLoader


def data(count: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.arange(count)
    return index, index * 10


def order_of(loader: TensorLoader) -> list[int]:
    """The example indices of one pass, in order."""
    return torch.cat([batch[0] for batch in loader]).tolist()


def test_tensor_loader_for_trainer_takes_rank_world_size_and_epoch():
    trainer = SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
        global_rank=1,
        world_size=2,
        current_epoch=3,
    )
    loader = TensorLoader.for_trainer(trainer, data(11), batch_size=2, train=True, seed=5)
    assert (loader.rank, loader.world_size, loader.epoch) == (1, 2, 3)
    assert loader.shuffle and loader.drop_last and loader.seed == 5
    assert len(loader) == 2  # 5 of the 11 examples for rank 1, whole batches only


def test_tensor_loader_for_trainer_without_trainer_serves_everything_in_order():
    loader = TensorLoader.for_trainer(None, data(5), batch_size=2, train=False)
    assert (loader.rank, loader.world_size, loader.epoch) == (0, 1, 0)
    assert order_of(loader) == [0, 1, 2, 3, 4]


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


def test_tensor_loader_state_dict_counts_the_batches_of_the_pass_in_progress():
    loader = TensorLoader(data(10), batch_size=3, shuffle=True, seed=2)
    assert loader.state_dict() == {"epoch": 0, "batches_served": 0}
    batches = iter(loader)
    next(batches)
    next(batches)
    assert loader.state_dict() == {"epoch": 0, "batches_served": 2}
    next(batches)
    next(batches)  # the last of 4 batches: the next one is the start of epoch 1
    assert loader.state_dict() == {"epoch": 1, "batches_served": 0}
    assert order_of(loader) and loader.state_dict() == {"epoch": 2, "batches_served": 0}


@pytest.mark.parametrize("world_size", [1, 2])
@pytest.mark.parametrize("served", [0, 1, 3])
def test_tensor_loader_loaded_state_serves_the_rest_of_the_pass(served, world_size):
    def loader(rank: int) -> TensorLoader:
        return TensorLoader(
            data(24), batch_size=3, shuffle=True, seed=5, rank=rank, world_size=world_size
        )

    for rank in range(world_size):
        uninterrupted = loader(rank)
        passes = [order_of(uninterrupted) for _ in range(3)]
        resumed = loader(rank)
        resumed.load_state_dict({"epoch": 1, "batches_served": served})
        assert order_of(resumed) == passes[1][3 * served :]
        assert order_of(resumed) == passes[2]  # then whole passes again


def test_tensor_loader_rejects_a_state_beyond_the_pass():
    loader = TensorLoader(data(10), batch_size=3)
    with pytest.raises(ValueError, match=r"batches_served must be in \[0, 4\].*got 5"):
        loader.load_state_dict({"epoch": 0, "batches_served": 5})


class BatchRecorder(LightningModule):
    """Records the examples of every training batch; 16 examples, 4 batches an epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[list[int]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append(batch[0].tolist())
        return self.weight * batch[0].float().sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return TensorLoader((torch.arange(16),), batch_size=4, shuffle=True, drop_last=True)


class CrashAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("crash")


def quiet_fit(root, model, callbacks=(), ckpt_path=None, **limits):
    trainer = Trainer(
        default_root_dir=root,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        **limits,
    )
    trainer.fit(model, ckpt_path=ckpt_path)


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")
@pytest.mark.filterwarnings("error:You're resuming from a checkpoint that ended before")
@pytest.mark.parametrize("limits", [{"max_epochs": 3}, {"max_steps": 12}], ids=["epochs", "steps"])
@pytest.mark.parametrize("step", [2, 4, 6], ids=["mid_epoch", "epoch_end", "second_epoch"])
def test_tensor_loader_resumed_fit_sees_the_uninterrupted_batches(step, limits, tmp_path):
    straight = BatchRecorder()
    quiet_fit(tmp_path, straight, **limits)
    assert len(straight.seen) == 12

    first = BatchRecorder()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=step)
    with pytest.raises(RuntimeError, match="crash"):
        quiet_fit(tmp_path, first, [checkpoint, CrashAtStep(step)], **limits)
    resumed = BatchRecorder()
    quiet_fit(tmp_path, resumed, ckpt_path=checkpoint.best_model_path, **limits)
    assert first.seen + resumed.seen == straight.seen
