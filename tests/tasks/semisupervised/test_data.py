"""Semi-supervised data: the balanced labeled draw, the paired batches, resuming."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from catlight.data import FashionMNISTDataModule, TensorLoader
from catlight.tasks.semisupervised import (
    SemiSupervisedFashionMNISTDataModule,
    SemiSupervisedLoader,
    SemiSupervisedMNISTDataModule,
    balanced_subset,
)

# 60 training images (6 of each class), the last 10 for validation: 5 of each class left
TRAIN_SIZE, TEST_SIZE, VALID_SIZE = 60, 20, 10


@pytest.fixture
def data_dir(tmp_path, mnist_writer):
    """Tiny MNIST whose images are all different, labels ``i % 10``."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (TRAIN_SIZE, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(TRAIN_SIZE) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (TEST_SIZE, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(TEST_SIZE) % 10).astype(np.uint8),
    }
    mnist_writer(tmp_path / "mnist", arrays)
    return tmp_path


def data_module(data_dir, **kwargs) -> SemiSupervisedMNISTDataModule:
    settings = {
        "data_dir": str(data_dir),
        "download": False,
        "valid_size": VALID_SIZE,
        "num_labeled": 20,
        "labeled_batch_size": 6,
        "batch_size": 4,
        "binarization": "none",
        **kwargs,
    }
    data = SemiSupervisedMNISTDataModule(**settings)
    data.setup()
    return data


def row_bytes(image: torch.Tensor) -> bytes:
    """A key for an image, stored (uint8) or served without binarization (float / 255)."""
    if image.is_floating_point():
        image = (image * 255).round().to(torch.uint8)
    return image.numpy().tobytes()


def rows(images: torch.Tensor) -> set[bytes]:
    return {row_bytes(image) for image in images}


def test_balanced_subset_takes_the_same_number_of_each_class():
    labels = torch.tensor([0, 1, 2] * 5 + [1, 1])
    chosen = balanced_subset(labels, 6, 3, seed=0)
    assert torch.bincount(labels[chosen], minlength=3).tolist() == [2, 2, 2]
    assert chosen.unique().numel() == 6
    assert torch.equal(chosen, chosen.sort().values)


def test_balanced_subset_depends_only_on_the_seed():
    labels = torch.arange(200) % 10
    first, again = balanced_subset(labels, 30, 10, 3), balanced_subset(labels, 30, 10, 3)
    assert torch.equal(first, again)
    draws = {tuple(balanced_subset(labels, 30, 10, seed).tolist()) for seed in range(5)}
    assert len(draws) == 5


@pytest.mark.parametrize("size", [0, 7, 25])
def test_balanced_subset_needs_a_multiple_of_the_number_of_classes(size):
    with pytest.raises(ValueError, match=f"multiple of num_classes = 10.*got {size}"):
        balanced_subset(torch.arange(100) % 10, size, 10, 0)


def test_balanced_subset_names_the_class_that_is_too_rare():
    labels = torch.tensor([0, 0, 0, 1, 2, 2, 2])
    with pytest.raises(ValueError, match="need 2 of each of the 3 classes, but class 1 has 1"):
        balanced_subset(labels, 6, 3, 0)


def test_labeled_set_is_balanced_and_disjoint_from_the_unlabeled_set(data_dir):
    data = data_module(data_dir)
    labeled_images, labeled_labels = data.splits["labeled"]
    unlabeled_images, _ = data.splits["train"]
    assert torch.bincount(labeled_labels, minlength=10).tolist() == [2] * 10
    assert unlabeled_images.shape[0] == TRAIN_SIZE - VALID_SIZE - 20
    assert not rows(labeled_images) & rows(unlabeled_images)
    assert data.num_train_examples == TRAIN_SIZE - VALID_SIZE
    validation = rows(data.splits["valid"][0])
    assert not validation & (rows(labeled_images) | rows(unlabeled_images))


def test_labeled_set_is_deterministic_per_seed(data_dir):
    first = data_module(data_dir, seed=1).splits["labeled"][0]
    again = data_module(data_dir, seed=1).splits["labeled"][0]
    other = data_module(data_dir, seed=2).splits["labeled"][0]
    assert torch.equal(first, again)
    assert rows(first) != rows(other)


def test_train_batches_pair_unlabeled_with_cycled_labeled_batches(data_dir):
    data = data_module(data_dir)
    loader = data.train_dataloader()
    batches = list(loader)
    # 30 unlabeled images in batches of 4 (last dropped); labeled batches of 6 of 20
    assert len(loader) == len(batches) == 7
    labeled_rows = rows(data.splits["labeled"][0])
    labeled_by_row = {
        row_bytes(image): label for image, label in zip(*data.splits["labeled"], strict=True)
    }
    seen = set()
    for unlabeled, labeled, labels in batches:
        assert unlabeled.shape == (4, 784) and labeled.shape == (6, 784)
        assert not rows(unlabeled) & labeled_rows
        for row, label in zip(labeled, labels, strict=True):
            assert labeled_by_row[row_bytes(row)] == label
        seen |= rows(labeled)
    assert seen == labeled_rows  # 7 batches of 6 go through the 20 labeled images twice


def test_labeled_stream_carries_on_across_epochs(data_dir):
    data = data_module(data_dir, num_labeled=10, labeled_batch_size=3)
    loader = data.train_dataloader()
    epochs = [[rows(labeled) for _, labeled, _ in loader] for _ in range(2)]
    # 10 labeled images in batches of 3: passes of 3 batches, 7 batches an epoch
    stream = epochs[0] + epochs[1]
    passes = [stream[i : i + 3] for i in range(0, 12, 3)]
    for batches in passes:
        assert len(set.union(*batches)) == 9  # one pass: 9 different images
    assert passes[0] != passes[1]  # each pass reshuffled


def test_train_loader_resumes_both_streams_mid_epoch(data_dir):
    data = data_module(data_dir, num_labeled=10, labeled_batch_size=3)
    loader = data.train_dataloader()
    iterator = iter(loader)
    for _ in range(4):
        next(iterator)
    state = loader.state_dict()
    remaining = list(iterator)

    resumed = data_module(data_dir, num_labeled=10, labeled_batch_size=3).train_dataloader()
    resumed.load_state_dict(state)
    for (u, lab, y), (u_again, lab_again, y_again) in zip(remaining, resumed, strict=True):
        assert torch.equal(u, u_again) and torch.equal(lab, lab_again)
        assert torch.equal(y, y_again)


def test_semi_supervised_loader_needs_a_labeled_batch():
    unlabeled = TensorLoader((torch.zeros(8, 2), torch.zeros(8)), batch_size=4)
    labeled = TensorLoader((torch.zeros(2, 2), torch.zeros(2)), batch_size=3, drop_last=True)
    with pytest.raises(ValueError, match="labeled loader gives no batch"):
        SemiSupervisedLoader(unlabeled, labeled)


def test_too_few_images_of_a_class_is_a_clear_error(data_dir):
    with pytest.raises(ValueError, match="need 6 of each of the 10 classes, but class 0 has 5"):
        data_module(data_dir, num_labeled=60, labeled_batch_size=6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_labeled": 5}, "num_labeled must be a positive multiple of 10"),
        ({"num_labeled": 15}, "num_labeled must be a positive multiple of 10"),
        ({"labeled_batch_size": 0}, r"labeled_batch_size must be in \[1, num_labeled = 20\]"),
        ({"labeled_batch_size": 21}, r"labeled_batch_size must be in \[1, num_labeled = 20\]"),
    ],
)
def test_invalid_settings_are_rejected(kwargs, message):
    settings = {"num_labeled": 20, **kwargs}
    with pytest.raises(ValueError, match=message):
        SemiSupervisedMNISTDataModule(**settings)


def test_validation_and_test_batches_carry_labels(data_dir):
    data = data_module(data_dir, eval_batch_size=7)
    images, labels = next(iter(data.val_dataloader()))
    assert images.shape == (7, 784) and labels.dtype == torch.int64
    assert sum(batch[0].shape[0] for batch in data.test_dataloader()) == TEST_SIZE


def test_dynamic_binarization_is_the_default(data_dir):
    data = SemiSupervisedMNISTDataModule(
        str(data_dir), num_labeled=20, labeled_batch_size=10, valid_size=VALID_SIZE, batch_size=4
    )
    assert data.binarization == "dynamic"
    data.setup()
    _, labeled, _ = next(iter(data.train_dataloader()))
    assert set(labeled.unique().tolist()) <= {0.0, 1.0}


def test_fashion_variant_reads_the_fashion_mnist_files():
    for name in ("url", "checksums", "folder", "system_dirs"):
        assert getattr(SemiSupervisedFashionMNISTDataModule, name) == getattr(
            FashionMNISTDataModule, name
        )


@pytest.mark.parametrize("world_size", [1, 2])
def test_unset_labeled_batch_size_takes_every_labeled_image_of_the_process(data_dir, world_size):
    data = data_module(data_dir, num_labeled=20, labeled_batch_size=None)
    data.trainer = SimpleNamespace(
        global_rank=world_size - 1,
        world_size=world_size,
        current_epoch=0,
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
    )
    _, labeled, labels = next(iter(data.train_dataloader()))
    assert labeled.shape[0] == labels.shape[0] == 20 // world_size
