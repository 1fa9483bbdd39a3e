"""Fetch a data file once, verify its checksum, and explain what to do when offline."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from catlight.data.cache import can_write_to, write_atomically

__all__ = ["DataFileError", "ensure_file", "sha256sum"]


class DataFileError(FileNotFoundError):
    """A data file is missing and could not be downloaded (or failed its checksum)."""


def sha256sum(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_file(path: Path, url: str, sha256: str | None, download: bool) -> Path:
    """Return ``path``, downloading it from ``url`` first if it is missing.

    The download goes to a unique temporary name and is renamed only after its
    checksum matches, so an interrupted download never leaves a corrupt file behind
    and two processes downloading the same file at once do not collide. Nothing is
    created (not even the folder) unless the download starts.

    Raises:
        DataFileError: if the file is missing and ``download`` is False, the download
            fails (e.g. offline), the folder is not writable, or the checksum does
            not match. The message names the file that was looked for and how to get
            it.
    """
    path = Path(path)
    if path.exists():
        return path
    how_to_get = (
        f"download {url} and put it at {path} (or pass data_dir pointing to a folder that has it)"
    )
    if not download:
        raise DataFileError(f"missing data file {path}; downloads are off: {how_to_get}")
    try:
        response = urllib.request.urlopen(url, timeout=60)
    except (urllib.error.URLError, OSError) as error:
        raise DataFileError(
            f"missing data file {path} and the download failed ({error}): {how_to_get}"
        ) from error
    with response:
        if not can_write_to(path.parent):
            raise DataFileError(
                f"missing data file {path}, and {path.parent} is not writable, so it "
                f"cannot be downloaded there: {how_to_get}"
            )
        try:
            write_atomically(path, lambda file: _copy_verified(response, file, url, sha256))
        except (urllib.error.URLError, OSError) as error:
            raise DataFileError(
                f"missing data file {path} and the download failed ({error}): {how_to_get}"
            ) from error
        except _ChecksumMismatch as error:
            raise DataFileError(f"{error}; {how_to_get}") from error
    return path


class _ChecksumMismatch(ValueError):
    """The downloaded bytes do not have the expected SHA-256."""


def _copy_verified(source: BinaryIO, target: BinaryIO, url: str, sha256: str | None) -> None:
    """Copy ``source`` into ``target``, raising :class:`_ChecksumMismatch` on a bad hash."""
    digest = hashlib.sha256()
    while chunk := source.read(1 << 20):
        digest.update(chunk)
        target.write(chunk)
    if sha256 is not None and (actual := digest.hexdigest()) != sha256:
        raise _ChecksumMismatch(
            f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}"
        )
