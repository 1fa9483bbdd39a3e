"""read_idx: the IDX format of MNIST, raw or gzip-compressed."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from catlight.data import read_idx


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("shape", [(5, 4, 3), (7,)], ids=["3d", "1d"])
def test_read_idx_round_trips_uint8_arrays(tmp_path, idx_writer, suffix, shape):
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = idx_writer(tmp_path / f"array-idx{len(shape)}-ubyte{suffix}", array)
    if suffix:
        assert path.read_bytes()[:2] == b"\x1f\x8b"  # really gzip-compressed
    read = read_idx(path)
    assert read.dtype == np.uint8
    assert read.shape == shape
    np.testing.assert_array_equal(read, array)


def test_read_idx_accepts_a_str_path(tmp_path, idx_writer):
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    path = idx_writer(tmp_path / "a.idx", array)
    np.testing.assert_array_equal(read_idx(str(path)), array)


def test_read_idx_reads_big_endian_int32(tmp_path):
    values = np.array([[1, -2], [70000, 3]], dtype=">i4")
    header = bytes([0, 0, 0x0C, 2]) + (2).to_bytes(4, "big") + (2).to_bytes(4, "big")
    path = tmp_path / "ints.idx"
    path.write_bytes(header + values.tobytes())
    np.testing.assert_array_equal(read_idx(path), values.astype(np.int64))


@pytest.mark.parametrize(
    "header",
    [
        bytes([1, 0, 0x08, 1]),  # first magic byte not zero
        bytes([0, 1, 0x08, 1]),  # second magic byte not zero
        bytes([0, 0, 0x07, 1]),  # unknown dtype code
        bytes([0, 0]),  # shorter than a magic number
    ],
    ids=["byte0", "byte1", "dtype", "short"],
)
def test_read_idx_rejects_a_corrupt_header(tmp_path, header):
    path = tmp_path / "bad.idx"
    path.write_bytes(header + (3).to_bytes(4, "big") + bytes(3))
    with pytest.raises(ValueError, match="is not an IDX file"):
        read_idx(path)


@pytest.mark.parametrize("extra", [-1, 1], ids=["truncated", "trailing"])
def test_read_idx_rejects_data_of_the_wrong_length(tmp_path, idx_writer, extra):
    good = idx_writer(tmp_path / "good.idx", np.zeros((4, 3), dtype=np.uint8)).read_bytes()
    bad = good[:extra] if extra < 0 else good + bytes(extra)
    path = tmp_path / "bad.idx.gz"
    with gzip.open(path, "wb") as file:
        file.write(bad)
    with pytest.raises(ValueError, match=r"announces shape \(4, 3\) \(12 bytes of data\)"):
        read_idx(path)


def test_read_idx_rejects_a_header_announcing_more_dimensions_than_written(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + (2).to_bytes(4, "big"))
    with pytest.raises(ValueError, match="header announces shape"):
        read_idx(path)
