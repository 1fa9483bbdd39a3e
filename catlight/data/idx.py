"""Reader for the IDX format of MNIST and Fashion-MNIST (optionally gzip-compressed)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from catlight.data.checks import BadDataFileError

__all__ = ["read_idx"]

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into an array of its stored shape.

    Raises:
        BadDataFileError: (a ValueError) naming the file if it is not a well-formed
            IDX file or its gzip stream is truncated or corrupt.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            data = file.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise BadDataFileError(
            f"{path} cannot be decompressed ({type(error).__name__}: {error}); delete it "
            "and download it again"
        ) from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise BadDataFileError(f"{path} is not an IDX file (bad magic number {data[:4]!r})")
    num_dims = data[3]
    header_end = 4 + 4 * num_dims
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(num_dims))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header_end != expected:
        raise BadDataFileError(
            f"{path}: header announces shape {shape} ({expected} bytes of data), "
            f"found {len(data) - header_end} bytes"
        )
    return np.frombuffer(data, dtype=dtype, offset=header_end).reshape(shape)
