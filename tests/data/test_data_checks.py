"""Bad data files fail before training, naming the file and what is wrong."""

from __future__ import annotations

import gzip
import re
import threading

import numpy as np
import pytest

from catlight.data import BadDataFileError, BinarizedMNISTDataModule, MNISTDataModule
from tests.conftest import make_mnist_arrays, write_binarized_npz, write_mnist_files
from tests.tasks.nri.test_data import tiny_data

SIZES = {"train": 4, "valid": 2, "test": 2}


def binarized(folder) -> BinarizedMNISTDataModule:
    return BinarizedMNISTDataModule(data_dir=str(folder), download=False)


def write_npz(folder, **overrides) -> None:
    arrays = write_binarized_npz(folder, SIZES)
    np.savez(folder / "binarized_mnist.npz", **{**arrays, **overrides})


@pytest.mark.parametrize(
    ("train", "match"),
    [
        (np.full((4, 784), 0.7), r"array 'train' has 3136 values not whole numbers .* 0\.7"),
        (np.full((4, 784), -1), r"array 'train' has 3136 values outside \[0, 1\] .* -1, at"),
        (np.full((4, 784), 300), r"array 'train' has 3136 values outside \[0, 1\] .* 300"),
        (np.full((4, 784), np.nan), "array 'train' has 3136 values NaN or infinite"),
        (np.zeros((4, 100), np.uint8), r"array 'train' has shape \(4, 100\), expected \(n, 784\)"),
        (np.zeros((0, 784), np.uint8), "array 'train' is empty"),
        (np.array([["a"] * 784] * 4), "array 'train' has dtype <U1, expected numbers"),
    ],
)
def test_binarized_mnist_rejects_a_bad_npz_array(tmp_path, train, match):
    write_npz(tmp_path, train=train)
    path = re.escape(str(tmp_path / "binarized_mnist.npz"))
    with pytest.raises(BadDataFileError, match=f"{path}: {match}"):
        binarized(tmp_path).setup()


def test_binarized_mnist_names_a_truncated_npz(tmp_path):
    write_npz(tmp_path)
    path = tmp_path / "binarized_mnist.npz"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(BadDataFileError, match=f"{re.escape(str(path))} is not a readable .npz"):
        binarized(tmp_path).setup()


def test_binarized_mnist_rejects_an_empty_amat_split(tmp_path):
    for split in SIZES:
        (tmp_path / f"binarized_mnist_{split}.amat").write_text("")
    with pytest.raises(
        BadDataFileError, match=r"binarized_mnist_train\.amat: split 'train' is empty"
    ):
        binarized(tmp_path).setup()


def test_binarized_mnist_missing_data_names_the_npz_and_creates_no_folder(tmp_path):
    folder = tmp_path / "nothing"
    with pytest.raises(FileNotFoundError, match=r"or put binarized_mnist\.npz"):
        binarized(folder).prepare_data()
    assert not folder.exists()


def test_image_data_module_rejects_train_size_below_one(tmp_path):
    with pytest.raises(ValueError, match="train_size must be >= 1 or None"):
        BinarizedMNISTDataModule(data_dir=str(tmp_path), train_size=0)


@pytest.mark.parametrize(
    ("key", "array", "match"),
    [
        ("train_labels", np.full(20, 10, np.uint8), r"labels has 20 values outside \[0, 9\]"),
        ("test_images", np.zeros((10, 28, 27), np.uint8), r"shape \(10, 28, 27\)"),
        ("test_labels", np.zeros(9, np.uint8), "holds 10 images but .* holds 9 labels"),
        ("train_images", np.zeros((0, 28, 28), np.uint8), "images is empty"),
    ],
)
def test_mnist_rejects_bad_idx_content(tmp_path, key, array, match):
    arrays = {**make_mnist_arrays(), key: array}
    write_mnist_files(tmp_path / "mnist", arrays)
    data = MNISTDataModule(data_dir=str(tmp_path), download=False, valid_size=0)
    with pytest.raises(BadDataFileError, match=match):
        data.setup()


def test_mnist_names_a_truncated_gzip_file(tmp_path):
    write_mnist_files(tmp_path / "mnist", make_mnist_arrays())
    path = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    data = MNISTDataModule(data_dir=str(tmp_path), download=False)
    with pytest.raises(BadDataFileError, match=f"{re.escape(str(path))} cannot be decompressed"):
        data.setup()
    with gzip.open(path, "wb") as file:
        file.write(b"not idx")
    with pytest.raises(BadDataFileError, match="is not an IDX file"):
        MNISTDataModule(data_dir=str(tmp_path), download=False).setup()


@pytest.mark.parametrize(
    ("name", "change", "match"),
    [
        ("valid_trajectories", lambda a: a * np.nan, "NaN or infinite"),
        ("test_edges", lambda a: a + 2, r"outside \[0, 1\]"),
        (
            "train_trajectories",
            lambda a: a[:, :, :3],
            r"shape \(8, 5, 3, 4\), expected \(8, 5, 6, 4\)",
        ),
    ],
)
def test_particles_rejects_a_bad_cache(tmp_path, name, change, match):
    data = tiny_data(tmp_path)
    data.prepare_data()
    with np.load(data.cache_path) as archive:
        arrays = dict(archive)
    arrays[name] = change(arrays[name])
    np.savez(data.cache_path, **arrays)
    path = re.escape(str(data.cache_path))
    with pytest.raises(BadDataFileError, match=f"{path}: array '{name}' .*{match}"):
        tiny_data(tmp_path).setup()


def test_particles_names_a_truncated_cache(tmp_path):
    data = tiny_data(tmp_path)
    data.prepare_data()
    data.cache_path.write_bytes(data.cache_path.read_bytes()[:100])
    with pytest.raises(BadDataFileError, match=r"is not a readable \.npz file.*simulate it again"):
        tiny_data(tmp_path).setup()


# -- concurrent writers and read-only folders ------------------------------------------


def amat_folder(folder) -> None:
    arrays = write_binarized_npz(folder, SIZES)
    (folder / "binarized_mnist.npz").unlink()
    for split, images in arrays.items():
        lines = "".join(" ".join(map(str, row)) + "\n" for row in images)
        (folder / f"binarized_mnist_{split}.amat").write_text(lines)


def run_together(targets) -> list[BaseException]:
    """Run the callables in threads; return what they raised."""
    errors: list[BaseException] = []

    def run(target):
        try:
            target()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.parametrize("family", ["binarized_mnist", "particles"])
def test_two_first_runs_write_the_same_cache_at_once(tmp_path, monkeypatch, family):
    if family == "binarized_mnist":
        amat_folder(tmp_path)
        modules = [binarized(tmp_path), binarized(tmp_path)]
    else:
        modules = [tiny_data(tmp_path), tiny_data(tmp_path)]
    both_writing = threading.Barrier(2, timeout=10)
    savez = np.savez

    def savez_together(*args, **kwargs):
        savez(*args, **kwargs)
        both_writing.wait()  # neither renames before the other has written

    monkeypatch.setattr(np, "savez", savez_together)
    assert run_together([module.prepare_data for module in modules]) == []
    monkeypatch.setattr(np, "savez", savez)
    for module in modules:
        module.setup()
    assert [path.name for path in tmp_path.iterdir() if path.suffix == ".part"] == []


def test_binarized_mnist_reads_a_read_only_folder_without_caching(tmp_path, monkeypatch):
    amat_folder(tmp_path)
    monkeypatch.setattr("catlight.data.images.can_write_to", lambda folder: False)
    data = binarized(tmp_path)
    with pytest.warns(UserWarning, match="is not writable: the .amat files will be read"):
        data.prepare_data()
    data.setup()
    assert data.splits["train"][0].shape == (4, 784)
    assert not (tmp_path / "binarized_mnist.npz").exists()


def test_particles_in_a_read_only_folder_simulate_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr("catlight.tasks.nri.data.can_write_to", lambda folder: False)
    data = tiny_data(tmp_path)
    with pytest.warns(UserWarning, match="is not writable: .* simulated in memory"):
        data.setup()
    assert data.splits["train"][0].shape == (8, 5, 6, 4)
    assert list(tmp_path.iterdir()) == []


def test_training_split_smaller_than_a_batch_is_an_error(tmp_path):
    write_binarized_npz(tmp_path, SIZES)
    data = BinarizedMNISTDataModule(data_dir=str(tmp_path), download=False, batch_size=5)
    with pytest.raises(ValueError, match=r"training split gives no batch: 4 examples .* = 5"):
        data.train_dataloader()
