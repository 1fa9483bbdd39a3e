"""Image data modules: binarized MNIST (.npz / .amat), MNIST and Fashion-MNIST (IDX)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from catlight.data import (
    BadDataFileError,
    BinarizedMNISTDataModule,
    DataFileError,
    FashionMNISTDataModule,
    MNISTDataModule,
)
from catlight.data.images import _read_amat

SPLITS = ("train", "valid", "test")


def write_amat(path, images: np.ndarray) -> None:
    """The .amat text format: one image a line, 784 space-separated 0/1 digits."""
    lines = "".join(" ".join(str(int(v)) for v in row) + "\n" for row in images)
    path.write_text(lines)


def binary_images(count: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((count, 784)) < 0.4).astype(np.uint8)


def all_batches(loader) -> list[tuple[torch.Tensor, ...]]:
    return list(loader)


# -- binarized MNIST -------------------------------------------------------------------


def test_read_amat_round_trips_binary_images(tmp_path):
    images = binary_images(3, seed=0)
    path = tmp_path / "x.amat"
    write_amat(path, images)
    text = path.read_text().splitlines()
    assert len(text) == 3 and len(text[0].split(" ")) == 784
    parsed = _read_amat(path)
    assert parsed.shape == (3, 784)
    np.testing.assert_array_equal(parsed, images)


def test_read_amat_rejects_a_file_that_is_not_amat(tmp_path):
    path = tmp_path / "bad.amat"
    write_amat(path, binary_images(2, seed=0))
    path.write_text(path.read_text().replace("1", "2", 1))
    with pytest.raises(ValueError, match=r"not a binarized MNIST \.amat file"):
        _read_amat(path)
    path.write_text("0 1 0\n")
    with pytest.raises(ValueError, match=r"not a binarized MNIST \.amat file"):
        _read_amat(path)


def test_binarized_mnist_reads_the_npz(tmp_path, npz_writer):
    arrays = npz_writer(tmp_path, {"train": 12, "valid": 5, "test": 7}, seed=3)
    data = BinarizedMNISTDataModule(
        data_dir=str(tmp_path), batch_size=4, eval_batch_size=3, download=False
    )
    data.prepare_data()
    data.setup("fit")
    for split in SPLITS:
        (stored,) = data.splits[split]
        np.testing.assert_array_equal(stored.numpy(), arrays[split])
    assert data.image_size == 784

    train = all_batches(data.train_dataloader())
    assert len(train) == 3  # 12 // 4, drop_last
    for (images,) in train:
        assert images.dtype == torch.float32 and images.shape == (4, 784)
        assert set(images.unique().tolist()) <= {0.0, 1.0}
    valid = torch.cat([batch[0] for batch in data.val_dataloader()])
    np.testing.assert_array_equal(valid.numpy(), arrays["valid"].astype(np.float32))
    test = torch.cat([batch[0] for batch in data.test_dataloader()])
    np.testing.assert_array_equal(test.numpy(), arrays["test"].astype(np.float32))


def test_binarized_mnist_parses_amat_files_and_caches_an_npz(tmp_path):
    sizes = {"train": 6, "valid": 3, "test": 4}
    images = {split: binary_images(n, seed) for seed, (split, n) in enumerate(sizes.items())}
    for split, array in images.items():
        write_amat(tmp_path / f"binarized_mnist_{split}.amat", array)
    data = BinarizedMNISTDataModule(data_dir=str(tmp_path), download=False)
    data.setup()  # without prepare_data (another rank's view): reads the text files
    for split in SPLITS:
        np.testing.assert_array_equal(data.splits[split][0].numpy(), images[split])
    assert not (tmp_path / "binarized_mnist.npz").exists()

    data = BinarizedMNISTDataModule(data_dir=str(tmp_path), download=False)
    data.prepare_data()  # rank 0 writes the cache
    data.setup()
    for split in SPLITS:
        np.testing.assert_array_equal(data.splits[split][0].numpy(), images[split])

    npz = tmp_path / "binarized_mnist.npz"
    assert npz.is_file()
    with np.load(npz) as archive:
        for split in SPLITS:
            np.testing.assert_array_equal(archive[split], images[split])
    # the cache is used from now on: the text files are no longer needed
    for split in SPLITS:
        (tmp_path / f"binarized_mnist_{split}.amat").unlink()
    again = BinarizedMNISTDataModule(data_dir=str(tmp_path), download=False)
    again.prepare_data()
    again.setup()
    np.testing.assert_array_equal(again.splits["train"][0].numpy(), images["train"])


def test_binarized_mnist_missing_data_offline_names_the_file(tmp_path):
    data = BinarizedMNISTDataModule(data_dir=str(tmp_path / "nothing"), download=False)
    expected = re.escape(str(tmp_path / "nothing" / "binarized_mnist_train.amat"))
    with pytest.raises(DataFileError, match=f"missing data file {expected}"):
        data.prepare_data()
    with pytest.raises(DataFileError, match=f"missing data file {expected}"):
        data.setup()


def test_binarized_mnist_npz_without_a_split_is_an_error(tmp_path):
    np.savez(tmp_path / "binarized_mnist.npz", train=binary_images(2, 0), test=binary_images(2, 1))
    data = BinarizedMNISTDataModule(data_dir=str(tmp_path), download=False)
    with pytest.raises(BadDataFileError, match=r"lacks the arrays \['valid'\]"):
        data.setup()


def test_binarized_mnist_train_size_keeps_the_first_examples(tmp_path, npz_writer):
    arrays = npz_writer(tmp_path, {"train": 12, "valid": 5, "test": 7})
    data = BinarizedMNISTDataModule(data_dir=str(tmp_path), download=False, train_size=5)
    data.setup()
    np.testing.assert_array_equal(data.splits["train"][0].numpy(), arrays["train"][:5])
    assert data.splits["valid"][0].shape[0] == 5
    assert data.splits["test"][0].shape[0] == 7


@pytest.mark.parametrize(("batch_size", "eval_batch_size"), [(0, 10), (10, 0)])
def test_image_data_module_rejects_batch_sizes_below_one(batch_size, eval_batch_size):
    with pytest.raises(ValueError, match="batch_size and eval_batch_size must be >= 1"):
        BinarizedMNISTDataModule(batch_size=batch_size, eval_batch_size=eval_batch_size)


# -- MNIST and Fashion-MNIST -----------------------------------------------------------


def mnist(data_dir, **kwargs) -> MNISTDataModule:
    kwargs = {"valid_size": 5, "batch_size": 4, "eval_batch_size": 4, **kwargs}
    data = MNISTDataModule(data_dir=str(data_dir), download=False, **kwargs)
    data.setup()
    return data


def float_images(data, split: str) -> torch.Tensor:
    loader = {"train": data.train_dataloader, "valid": data.val_dataloader}.get(
        split, data.test_dataloader
    )()
    return torch.cat([images for images, _ in loader])


def test_mnist_splits_sizes_and_labels(mnist_dir, mnist_arrays):
    data = mnist(mnist_dir, valid_size=6)
    train_images, train_labels = data.splits["train"]
    valid_images, valid_labels = data.splits["valid"]
    test_images, test_labels = data.splits["test"]
    assert train_images.shape == (14, 784) and valid_images.shape == (6, 784)
    assert test_images.shape == (10, 784)
    for labels in (train_labels, valid_labels, test_labels):
        assert labels.dtype == torch.int64
    # the validation images are the last training images, in order
    all_train = mnist_arrays["train_images"].reshape(-1, 784)
    np.testing.assert_array_equal(train_images.numpy(), all_train[:14])
    np.testing.assert_array_equal(valid_images.numpy(), all_train[14:])
    np.testing.assert_array_equal(valid_labels.numpy(), mnist_arrays["train_labels"][14:])
    np.testing.assert_array_equal(test_labels.numpy(), mnist_arrays["test_labels"])

    images, labels = next(iter(data.train_dataloader()))
    assert images.dtype == torch.float32 and images.shape == (4, 784)
    assert labels.dtype == torch.int64 and labels.shape == (4,)


def test_mnist_train_size_truncates_the_training_split(mnist_dir):
    data = mnist(mnist_dir, train_size=7)
    assert data.splits["train"][0].shape[0] == 7
    assert data.splits["train"][1].shape[0] == 7
    assert data.splits["valid"][0].shape[0] == 5
    assert len(data.train_dataloader()) == 1  # 7 // 4 with drop_last


@pytest.mark.parametrize("binarization", ["dynamic", "fixed", "threshold"])
def test_mnist_binarizations_give_binary_images(mnist_dir, binarization):
    data = mnist(mnist_dir, binarization=binarization)
    for split in SPLITS:
        values = set(float_images(data, split).unique().tolist())
        assert values == {0.0, 1.0}, split


def test_mnist_without_binarization_gives_grey_levels(mnist_dir, mnist_arrays):
    data = mnist(mnist_dir, binarization="none")
    test = float_images(data, "test")
    assert test.min() >= 0 and test.max() <= 1
    expected = mnist_arrays["test_images"].reshape(-1, 784) / 255
    np.testing.assert_allclose(test.numpy(), expected, rtol=0, atol=1e-6)


def test_mnist_threshold_binarization_is_pixel_above_127(mnist_dir, mnist_arrays):
    test = float_images(mnist(mnist_dir, binarization="threshold"), "test")
    expected = mnist_arrays["test_images"].reshape(-1, 784) > 127
    np.testing.assert_array_equal(test.numpy(), expected.astype(np.float32))


def test_mnist_fixed_binarization_depends_only_on_the_seed(mnist_dir, mnist_arrays):
    first = float_images(mnist(mnist_dir, binarization="fixed", seed=1), "test")
    # the same module served twice, and a new module with the same seed: identical
    data = mnist(mnist_dir, binarization="fixed", seed=1)
    assert torch.equal(float_images(data, "test"), float_images(data, "test"))
    assert torch.equal(first, float_images(data, "test"))
    other = float_images(mnist(mnist_dir, binarization="fixed", seed=2), "test")
    assert not torch.equal(first, other)
    # a Bernoulli draw of the grey levels: black pixels stay 0, white pixels stay 1
    grey = torch.from_numpy(mnist_arrays["test_images"].reshape(-1, 784).astype(np.int64))
    assert (first[grey == 0] == 0).all() and (first[grey == 255] == 1).all()
    # and its mean follows the grey level (7840 pixels: the standard error is ~0.005)
    assert first.mean().item() == pytest.approx((grey.float() / 255).mean().item(), abs=0.03)


def test_mnist_dynamic_binarization_redraws_every_pass(mnist_dir):
    data = mnist(mnist_dir, binarization="dynamic")
    first, second = float_images(data, "test"), float_images(data, "test")
    assert not torch.equal(first, second)
    # both passes serve the same images: labels agree
    labels = [torch.cat([y for _, y in data.test_dataloader()]) for _ in range(2)]
    assert torch.equal(labels[0], labels[1])


def test_mnist_rejects_an_unknown_binarization(mnist_dir):
    with pytest.raises(ValueError, match=r"binarization must be .*, got 'soft'"):
        MNISTDataModule(data_dir=str(mnist_dir), binarization="soft")


def test_mnist_finds_the_files_directly_in_data_dir(tmp_path, mnist_arrays, mnist_writer):
    mnist_writer(tmp_path, mnist_arrays)
    data = mnist(tmp_path)
    assert data.splits["test"][0].shape == (10, 784)


def test_mnist_missing_data_offline_names_the_file(tmp_path):
    data = MNISTDataModule(data_dir=str(tmp_path), download=False)
    expected = re.escape(str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz"))
    with pytest.raises(DataFileError, match=f"missing data file {expected}"):
        data.prepare_data()


def test_fashion_mnist_reads_its_own_folder(tmp_path, mnist_arrays, mnist_writer):
    mnist_writer(tmp_path / "fashion-mnist", mnist_arrays)
    data = FashionMNISTDataModule(data_dir=str(tmp_path), valid_size=5, download=False)
    data.setup()
    np.testing.assert_array_equal(data.splits["test"][1].numpy(), mnist_arrays["test_labels"])
    with pytest.raises(DataFileError, match=re.escape(str(tmp_path / "mnist"))):
        MNISTDataModule(data_dir=str(tmp_path), download=False).prepare_data()


def test_fashion_mnist_finds_files_in_a_system_dir(
    tmp_path, monkeypatch, mnist_arrays, mnist_writer
):
    system_dir = mnist_writer(tmp_path / "usr_share", mnist_arrays)
    monkeypatch.setattr(FashionMNISTDataModule, "system_dirs", (str(system_dir),))
    empty = tmp_path / "empty"
    data = FashionMNISTDataModule(data_dir=str(empty), valid_size=5, download=False)
    data.prepare_data()
    data.setup()
    assert data.splits["train"][0].shape == (15, 784)
    np.testing.assert_array_equal(data.splits["test"][1].numpy(), mnist_arrays["test_labels"])
    assert not empty.exists()  # nothing was downloaded or written


def test_fashion_mnist_system_dirs_name_the_debian_package_folder():
    assert "/usr/share/datasets/fashion-mnist" in FashionMNISTDataModule.system_dirs
    assert MNISTDataModule.system_dirs == ()


def test_mnist_valid_size_larger_than_the_training_set_is_rejected(mnist_dir):
    # 20 training images; valid_size=25 silently gives train = first 15, valid = last 5
    with pytest.raises(ValueError, match="valid_size"):
        mnist(mnist_dir, valid_size=25)
