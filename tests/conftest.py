"""Shared fixtures: tiny data files written on the fly and an in-process CLI runner.

Nothing here downloads: every data file is written into a temporary folder.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from catlight.cli import CatlightCLI, main

# The test models are tiny and the machine's cores are shared: one intra-op thread is
# 2-3x faster here than the default thread pool, which mostly waits on contention.
torch.set_num_threads(1)

# sizes of the tiny binarized MNIST written for CLI runs
BINARIZED_SIZES = {"train": 32, "valid": 16, "test": 16}
# sizes of the tiny MNIST / Fashion-MNIST IDX files
MNIST_TRAIN_SIZE = 20
MNIST_TEST_SIZE = 10

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: 0, 0, 0x08, ndim, big-endian sizes, data."""
    assert array.dtype == np.uint8
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``."""
    data = idx_bytes(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as file:
            file.write(data)
    else:
        path.write_bytes(data)
    return path


def make_mnist_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Grey-level images (all 256 levels occur) and labels 0-9, like MNIST but tiny."""
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (MNIST_TRAIN_SIZE, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, MNIST_TRAIN_SIZE, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (MNIST_TEST_SIZE, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, MNIST_TEST_SIZE, dtype=np.uint8),
    }


def write_mnist_files(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write the four gzip IDX files of MNIST into ``folder``."""
    for key, name in IDX_NAMES.items():
        write_idx(folder / name, arrays[key])
    return folder


def write_binarized_npz(folder: Path, sizes: dict[str, int], seed: int = 0) -> dict:
    """Write ``binarized_mnist.npz`` with uint8 {0, 1} arrays ``(n, 784)``; return them."""
    rng = np.random.default_rng(seed)
    arrays = {split: (rng.random((n, 784)) < 0.3).astype(np.uint8) for split, n in sizes.items()}
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "binarized_mnist.npz", **arrays)
    return arrays


@pytest.fixture(scope="session")
def binarized_mnist_dir(tmp_path_factory) -> Path:
    """A data_dir holding a tiny ``binarized_mnist.npz`` (32 / 16 / 16 images)."""
    folder = tmp_path_factory.mktemp("binarized_mnist")
    write_binarized_npz(folder, BINARIZED_SIZES)
    return folder


@pytest.fixture
def mnist_arrays() -> dict[str, np.ndarray]:
    """The arrays written by :func:`mnist_dir`."""
    return make_mnist_arrays()


@pytest.fixture
def mnist_dir(tmp_path, mnist_arrays) -> Path:
    """A data_dir with tiny MNIST IDX files in its ``mnist`` sub-folder."""
    write_mnist_files(tmp_path / "data" / "mnist", mnist_arrays)
    return tmp_path / "data"


class CLIRecorder:
    """Runs ``catlight.cli.main`` in-process and keeps the CLI object of every run."""

    def __init__(self, root_dir: Path) -> None:
        self.root_dir = root_dir
        self.runs: list[CatlightCLI] = []

    def common_args(self) -> list[str]:
        return [
            "--trainer.default_root_dir",
            str(self.root_dir),
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.accelerator",
            "cpu",
            "--trainer.enable_model_summary",
            "false",
        ]

    def __call__(self, subcommand: str, *args: str) -> CatlightCLI:
        """``main([subcommand, *common args, *args])``; returns the CLI that ran."""
        before = len(self.runs)
        result = main([subcommand, *self.common_args(), *args])
        assert result is None
        assert len(self.runs) == before + 1, "the subcommand did not finish"
        return self.runs[-1]


def make_cli_runner(monkeypatch: pytest.MonkeyPatch, root_dir: Path) -> CLIRecorder:
    """A :class:`CLIRecorder`; ``monkeypatch`` records every finished subcommand."""
    monkeypatch.setattr(sys, "argv", ["catlight"])
    recorder = CLIRecorder(root_dir)

    def record(cli: CatlightCLI) -> None:
        recorder.runs.append(cli)

    for subcommand in ("fit", "validate", "test", "predict"):
        monkeypatch.setattr(CatlightCLI, f"after_{subcommand}", record, raising=False)
    return recorder


@pytest.fixture
def run_cli(monkeypatch, tmp_path) -> CLIRecorder:
    """Run a CLI subcommand in-process; returns the CLI (``.trainer``, ``.model`` ...)."""
    return make_cli_runner(monkeypatch, tmp_path / "runs")


@pytest.fixture(scope="session")
def cli_runner_factory() -> Callable[[pytest.MonkeyPatch, Path], CLIRecorder]:
    """:func:`make_cli_runner`, for module-scoped fixtures with their own MonkeyPatch."""
    return make_cli_runner


@pytest.fixture
def idx_writer() -> Callable[[Path, np.ndarray], Path]:
    """:func:`write_idx` as a fixture: ``idx_writer(path, uint8_array)``."""
    return write_idx


@pytest.fixture
def mnist_writer() -> Callable[[Path, dict[str, np.ndarray]], Path]:
    """:func:`write_mnist_files` as a fixture: ``mnist_writer(folder, arrays)``."""
    return write_mnist_files


@pytest.fixture
def npz_writer() -> Callable[..., dict]:
    """:func:`write_binarized_npz` as a fixture: ``npz_writer(folder, sizes, seed=0)``."""
    return write_binarized_npz


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
