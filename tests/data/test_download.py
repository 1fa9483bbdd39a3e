"""ensure_file: local copies, checksummed downloads (file:// URLs, no network)."""

from __future__ import annotations

import hashlib
import re

import pytest

from catlight.data import DataFileError, ensure_file
from catlight.data.download import sha256sum

PAYLOAD = b"catlight test payload\n" * 1000


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "server" / "file.bin"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


def test_sha256sum_matches_hashlib(source):
    assert sha256sum(source, chunk_size=7) == hashlib.sha256(PAYLOAD).hexdigest()


def test_ensure_file_downloads_with_a_good_checksum(tmp_path, source):
    target = tmp_path / "data" / "sub" / "file.bin"
    checksum = hashlib.sha256(PAYLOAD).hexdigest()
    assert ensure_file(target, source.as_uri(), checksum, download=True) == target
    assert target.read_bytes() == PAYLOAD
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_ensure_file_without_checksum_downloads(tmp_path, source):
    target = tmp_path / "file.bin"
    ensure_file(target, source.as_uri(), None, download=True)
    assert target.read_bytes() == PAYLOAD


def test_ensure_file_bad_checksum_raises_and_leaves_no_file(tmp_path, source):
    target = tmp_path / "data" / "file.bin"
    wrong = "0" * 64
    actual = hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(
        DataFileError, match=f"checksum mismatch.*expected sha256 {wrong}, got {actual}"
    ):
        ensure_file(target, source.as_uri(), wrong, download=True)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no .part file either


def test_ensure_file_failed_download_raises_and_leaves_no_file(tmp_path):
    target = tmp_path / "data" / "file.bin"
    url = (tmp_path / "server" / "missing.bin").as_uri()
    with pytest.raises(
        DataFileError, match=f"missing data file {re.escape(str(target))} and the download failed"
    ):
        ensure_file(target, url, None, download=True)
    assert not target.parent.exists()  # a failed download creates nothing


def test_ensure_file_offline_names_the_file_and_the_url(tmp_path):
    target = tmp_path / "data" / "file.bin"
    url = "https://example.invalid/file.bin"
    with pytest.raises(DataFileError, match="downloads are off") as raised:
        ensure_file(target, url, None, download=False)
    message = str(raised.value)
    assert str(target) in message and url in message
    assert isinstance(raised.value, FileNotFoundError)
    assert not target.parent.exists()


def test_ensure_file_returns_an_existing_file_untouched(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"local copy")
    # neither the (unreachable) URL nor the checksum is consulted for a local copy
    assert ensure_file(target, "https://example.invalid/x", "0" * 64, download=False) == target
    assert target.read_bytes() == b"local copy"
