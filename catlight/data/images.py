"""Image data: binarized MNIST (fixed binarization), MNIST and Fashion-MNIST.

Every data module keeps its splits as byte tensors, moves them to the training device
once, and serves batches with :class:`~catlight.data.tensor_loader.TensorLoader`.
A batch is a tuple: ``(images,)`` for binarized MNIST, ``(images, labels)`` for the
labelled sets; ``images`` is float32 ``(B, 784)`` with values in ``{0, 1}`` (or in
``[0, 1]`` without binarization), ``labels`` int64 ``(B,)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from catlight.data.cache import can_write_to, write_atomically
from catlight.data.checks import BadDataFileError, check_array, load_npz
from catlight.data.download import DataFileError, ensure_file
from catlight.data.idx import read_idx
from catlight.data.tensor_data_module import Split, TensorDataModule

__all__ = [
    "BinarizedMNISTDataModule",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "MNISTDataModule",
]


class ImageDataModule(TensorDataModule):
    """Base class: splits held as tensors, served from the training device.

    Subclasses implement :meth:`prepare_data` (download, once per node) and
    :meth:`load_splits` (read the files into ``train``/``valid``/``test`` tuples of
    byte tensors) and may override :meth:`to_float` to binarize.

    Args:
        data_dir: where the files are read from (and downloaded to).
        batch_size: training batch size per process.
        eval_batch_size: batch size for validation and test.
        download: fetch missing files; when False a missing file is an error that
            names it.
        on_device: keep the data on the training device (no DataLoader workers).
        train_size: use only the first ``train_size`` training examples (quick runs).
        seed: seed of the shuffling.

    Raises:
        ValueError: for a batch size or ``train_size`` below 1; at setup, a
            :class:`~catlight.data.checks.BadDataFileError` naming the file if what
            it holds has the wrong shape, dtype or values, or a split is empty.
    """

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        download: bool = True,
        on_device: bool = True,
        train_size: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, on_device, seed)
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError(
                f"{type(self).__name__}: batch_size and eval_batch_size must be >= 1, "
                f"got {batch_size} and {eval_batch_size}"
            )
        if train_size is not None and train_size < 1:
            raise ValueError(
                f"{type(self).__name__}: train_size must be >= 1 or None (all), got {train_size}"
            )
        self.data_dir = Path(data_dir)
        self.download = download
        self.train_size = train_size

    def load_splits(self) -> dict[str, Split]:
        """Read ``train``, ``valid`` and ``test`` as tuples of CPU tensors."""
        raise NotImplementedError

    def batch_transform(self) -> Callable[[Split], Split]:
        """Batches are turned into model inputs by :meth:`to_float`."""
        return self.to_float

    def to_float(self, batch: Split) -> Split:
        """Turn a batch of stored bytes into model inputs (float images)."""
        images, *rest = batch
        return (images.float(), *rest)

    def setup(self, stage: str | None = None) -> None:
        """Load the splits once (every process)."""
        if self.splits:
            return
        splits = self.load_splits()
        if self.train_size is not None:
            splits["train"] = tuple(t[: self.train_size] for t in splits["train"])
        self.splits = splits

    @property
    def image_size(self) -> int:
        """Pixels per image (784 for the MNIST family)."""
        return 784


_AMAT_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
_AMAT_SHA256 = {
    "train": "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
    "valid": "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
    "test": "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
}


class BinarizedMNISTDataModule(ImageDataModule):
    """Binarized MNIST with the standard fixed binarization (Larochelle & Murray 2011).

    50,000 / 10,000 / 10,000 images, no labels. Reads ``binarized_mnist.npz`` (arrays
    ``train``, ``valid``, ``test`` of shape ``(n, 784)``) from ``data_dir`` when present,
    else the three ``binarized_mnist_{train,valid,test}.amat`` text files, downloading
    them (checksummed) when missing. The parsed arrays are cached as the ``.npz``
    (written under a unique temporary name, then renamed); when ``data_dir`` cannot
    be written, the ``.amat`` files are read at every start, with a warning. Every
    array is checked: shape ``(n, 784)`` with ``n >= 1``, values exactly 0 or 1.

    Batches: ``(images,)`` with images float32 ``(B, 784)`` in ``{0, 1}``.
    """

    npz_name = "binarized_mnist.npz"

    def prepare_data(self) -> None:
        """Download the ``.amat`` files and cache them as ``.npz`` (local rank 0)."""
        npz_path = self.data_dir / self.npz_name
        if npz_path.exists():
            return
        if self.data_dir.is_dir() and not can_write_to(self.data_dir):
            warnings.warn(
                f"{self.data_dir} is not writable: the .amat files will be read without "
                f"caching them as {self.npz_name}, at every start",
                stacklevel=2,
            )
            return
        arrays = {split: array for split, (_, array) in self._read_amat_files().items()}
        write_atomically(npz_path, lambda file: np.savez(file, **arrays))

    def _read_amat_files(self) -> dict[str, tuple[Path, np.ndarray]]:
        """Each split's ``.amat`` path and its checked images, downloading when missing."""
        arrays = {}
        for split, checksum in _AMAT_SHA256.items():
            name = f"binarized_mnist_{split}.amat"
            try:
                path = ensure_file(self.data_dir / name, _AMAT_URL + name, checksum, self.download)
            except DataFileError as error:
                raise DataFileError(
                    f"{error}; or put {self.npz_name} (arrays train, valid, test of 0/1 "
                    f"values, shape (n, 784)) in {self.data_dir}"
                ) from error
            arrays[split] = (path, _read_amat(path))
            _check_binary_images(path, f"split {split!r}", arrays[split][1])
        return arrays

    def load_splits(self) -> dict[str, Split]:
        """Read the ``.npz`` cache, or the ``.amat`` files when there is no cache."""
        npz_path = self.data_dir / self.npz_name
        if not npz_path.exists():
            arrays = self._read_amat_files()
            return {split: (torch.from_numpy(array),) for split, (_, array) in arrays.items()}
        how_to_fix = "delete it to rebuild it from the .amat files"
        arrays = load_npz(npz_path, list(_AMAT_SHA256), how_to_fix)
        for split, array in arrays.items():
            _check_binary_images(npz_path, f"array {split!r}", array)
        return {
            split: (torch.from_numpy(array.astype(np.uint8)),) for split, array in arrays.items()
        }


def _check_binary_images(path: Path, name: str, images: np.ndarray) -> None:
    """Binarized MNIST images: shape ``(n, 784)``, ``n >= 1``, every value 0 or 1."""
    check_array(path, name, images, (None, 784), value_range=(0, 1), whole_numbers=True)


def _read_amat(path: Path) -> np.ndarray:
    """Parse an ``.amat`` file: one image a line, 784 space-separated 0/1 digits."""
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    line_length = 2 * 784  # digit + separator (space, or the newline at the end)
    if raw.size % line_length or not set(np.unique(raw[0::2])) <= {ord("0"), ord("1")}:
        raise BadDataFileError(f"{path} is not a binarized MNIST .amat file")
    return (raw[0::2] - ord("0")).reshape(-1, 784)


_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_MNIST_SHA256 = {
    "train_images": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train_labels": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "test_images": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "test_labels": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
_FASHION_SHA256 = {
    "train_images": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train_labels": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "test_images": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "test_labels": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}

Binarization = Literal["dynamic", "fixed", "threshold", "none"]


class MNISTDataModule(ImageDataModule):
    """MNIST from its IDX files, with labels: 50,000 / 10,000 (last of train) / 10,000.

    Args:
        binarization: ``"dynamic"`` (a new Bernoulli draw of every pixel each time an
            image is served), ``"fixed"`` (one Bernoulli draw with ``seed``, kept),
            ``"threshold"`` (pixel > 127) or ``"none"`` (grey levels in [0, 1]).
        valid_size: training images held out for validation (the last ones).
        **kwargs: see :class:`ImageDataModule`.

    Batches: ``(images, labels)``, images float32 ``(B, 784)``, labels int64 ``(B,)``.
    """

    url = _MNIST_URL
    checksums = _MNIST_SHA256
    folder = "mnist"
    system_dirs: tuple[str, ...] = ()

    def __init__(
        self,
        data_dir: str = "data",
        binarization: Binarization = "dynamic",
        valid_size: int = 10000,
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        download: bool = True,
        on_device: bool = True,
        train_size: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            data_dir, batch_size, eval_batch_size, download, on_device, train_size, seed
        )
        if binarization not in ("dynamic", "fixed", "threshold", "none"):
            raise ValueError(
                f"{type(self).__name__}: binarization must be 'dynamic', 'fixed', "
                f"'threshold' or 'none', got {binarization!r}"
            )
        self.binarization = binarization
        self.valid_size = valid_size

    def _path(self, key: str) -> Path:
        name = _IDX_FILES[key]
        for folder in (self.data_dir / self.folder, self.data_dir, *map(Path, self.system_dirs)):
            if (folder / name).exists():
                return folder / name
        return self.data_dir / self.folder / name

    def prepare_data(self) -> None:
        """Download whichever of the four IDX files is missing."""
        for key, name in _IDX_FILES.items():
            ensure_file(self._path(key), self.url + name, self.checksums[key], self.download)

    def load_splits(self) -> dict[str, Split]:
        """Read and check the IDX files; binarize once when the binarization is fixed."""
        self.prepare_data()
        arrays = {key: self._read_checked(key) for key in _IDX_FILES}
        for split in ("train", "test"):
            num_images, num_labels = (
                len(arrays[f"{split}_{kind}"]) for kind in ("images", "labels")
            )
            if num_images != num_labels:
                raise BadDataFileError(
                    f"{self._path(split + '_images')} holds {num_images} images but "
                    f"{self._path(split + '_labels')} holds {num_labels} labels"
                )
        images = {
            "train": torch.from_numpy(arrays["train_images"].reshape(-1, 784).astype(np.uint8)),
            "test": torch.from_numpy(arrays["test_images"].reshape(-1, 784).astype(np.uint8)),
        }
        labels = {
            "train": torch.from_numpy(arrays["train_labels"].astype(np.int64)),
            "test": torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        }
        if self.binarization == "fixed":
            generator = torch.Generator().manual_seed(self.seed)
            for split, pixels in images.items():
                draw = torch.rand(pixels.shape, generator=generator) < pixels.float() / 255
                images[split] = draw.to(torch.uint8) * 255
        cut = images["train"].shape[0] - self.valid_size
        if not 0 <= cut < images["train"].shape[0] or self.valid_size < 0:
            raise ValueError(
                f"{type(self).__name__}: valid_size must be in [0, "
                f"{images['train'].shape[0]}) for {images['train'].shape[0]} training "
                f"images, got {self.valid_size}"
            )
        return {
            "train": (images["train"][:cut], labels["train"][:cut]),
            "valid": (images["train"][cut:], labels["train"][cut:]),
            "test": (images["test"], labels["test"]),
        }

    def _read_checked(self, key: str) -> np.ndarray:
        """One IDX file: images ``(n, 28, 28)`` in [0, 255], or labels ``(n,)`` in [0, 9]."""
        path = self._path(key)
        array = read_idx(path)
        if key.endswith("images"):
            check_array(path, "images", array, (None, 28, 28), (0, 255), whole_numbers=True)
        else:
            check_array(path, "labels", array, (None,), (0, 9), whole_numbers=True)
        return array

    def to_float(self, batch: Split) -> Split:
        """Bytes to float images, binarized as configured."""
        pixels, labels = batch
        grey = pixels.float() / 255
        if self.binarization == "dynamic":
            return torch.bernoulli(grey), labels
        if self.binarization == "none":
            return grey, labels
        return (pixels > 127).float(), labels


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST from its IDX files; same interface as :class:`MNISTDataModule`.

    Also finds the files that Debian's ``dataset-fashion-mnist`` package installs in
    ``/usr/share/datasets/fashion-mnist/``.
    """

    url = _FASHION_URL
    checksums = _FASHION_SHA256
    folder = "fashion-mnist"
    system_dirs = ("/usr/share/datasets/fashion-mnist",)
