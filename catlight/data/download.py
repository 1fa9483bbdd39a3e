"""Fetch a data file once, verify its checksum, and explain what to do when offline."""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
from pathlib import Path

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

    The download goes to a temporary name and is renamed only after its checksum
    matches, so an interrupted download never leaves a corrupt file behind.

    Raises:
        DataFileError: if the file is missing and ``download`` is False, the download
            fails (e.g. offline), or the checksum does not match. The message names the
            file that was looked for and how to get it.
    """
    path = Path(path)
    if path.exists():
        return path
    how_to_get = (
        f"download {url} and put it at {path} (or pass data_dir pointing to a folder that has it)"
    )
    if not download:
        raise DataFileError(f"missing data file {path}; downloads are off: {how_to_get}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError) as error:
        partial.unlink(missing_ok=True)
        raise DataFileError(
            f"missing data file {path} and the download failed ({error}): {how_to_get}"
        ) from error
    if sha256 is not None and (actual := sha256sum(partial)) != sha256:
        partial.unlink(missing_ok=True)
        raise DataFileError(
            f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; {how_to_get}"
        )
    partial.rename(path)
    return path
