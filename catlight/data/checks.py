"""Checks of what a data module reads, so that a bad file fails before training.

Every error names the file and says what is wrong with it: a file that cannot be
read (truncated, not an archive), a missing array, a wrong shape or dtype, values out
of range or not whole numbers, NaN or infinite values, or an empty split.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

__all__ = ["BadDataFileError", "check_array", "load_npz"]


class BadDataFileError(ValueError):
    """A data file exists but its content is not what the data module expects."""


def load_npz(path: Path, names: list[str], how_to_fix: str) -> dict[str, np.ndarray]:
    """Read the arrays ``names`` of an ``.npz`` file into memory.

    Args:
        path: the ``.npz`` file.
        names: arrays that must be in it.
        how_to_fix: appended to the errors, e.g. "delete it to rebuild it".

    Raises:
        BadDataFileError: if the file cannot be read (truncated, not a zip archive)
            or lacks one of ``names``; the message names the file.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = sorted(set(names) - set(archive.files))
            if missing:
                raise BadDataFileError(
                    f"{path} lacks the arrays {missing} (it has {sorted(archive.files)}); "
                    f"{how_to_fix}"
                )
            return {name: archive[name] for name in names}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as error:
        if isinstance(error, BadDataFileError):
            raise
        raise BadDataFileError(
            f"{path} is not a readable .npz file ({type(error).__name__}: {error}); {how_to_fix}"
        ) from error


def check_array(
    path: Path,
    name: str,
    array: np.ndarray,
    shape: tuple[int | None, ...],
    value_range: tuple[float, float] | None = None,
    whole_numbers: bool = False,
) -> None:
    """Raise a :class:`BadDataFileError` unless ``array`` is what the file should hold.

    Args:
        path: the file ``array`` was read from (named in the error).
        name: what ``array`` is, e.g. ``"array 'train'"`` or ``"labels"``.
        array: the data.
        shape: the expected shape, ``None`` for a dimension of any length; the first
            dimension (the examples) must not be empty.
        value_range: inclusive ``(low, high)`` bounds of every value.
        whole_numbers: the values must be integers (of an integer or float dtype).

    Raises:
        BadDataFileError: for a non-numeric dtype, a shape mismatch, an empty first
            dimension, NaN or infinite values, values that are not whole numbers or
            out of ``value_range``.

    Shapes:
        - array: ``shape``
    """
    where = f"{path}: {name}"
    if array.dtype.kind not in "biuf":
        raise BadDataFileError(f"{where} has dtype {array.dtype}, expected numbers")
    expected = "(" + ", ".join("n" if size is None else str(size) for size in shape) + ")"
    fits = array.ndim == len(shape) and all(
        size is None or size == actual for size, actual in zip(shape, array.shape, strict=False)
    )
    if not fits:
        raise BadDataFileError(f"{where} has shape {array.shape}, expected {expected}")
    if array.shape[0] == 0:
        raise BadDataFileError(f"{where} is empty (shape {array.shape}): no examples")
    if array.dtype.kind == "f":
        _check_entries(where, array, ~np.isfinite(array), "NaN or infinite")
        if whole_numbers:
            _check_entries(where, array, array != np.round(array), "not whole numbers")
    if value_range is not None:
        low, high = value_range
        outside = (array < low) | (array > high)
        _check_entries(where, array, outside, f"outside [{low:g}, {high:g}]")


def _check_entries(where: str, array: np.ndarray, bad: np.ndarray, what: str) -> None:
    """Raise naming how many entries are bad, the first one and its index."""
    if not bad.any():
        return
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise BadDataFileError(
        f"{where} has {int(bad.sum())} values {what} (dtype {array.dtype}; the first, "
        f"{array[first].item()!r}, at index {first})"
    )
