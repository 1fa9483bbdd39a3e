"""Cache files written safely: a unique temporary name, then an atomic rename.

Two runs that build the same cache at once (two first runs on one ``data_dir``) each
write their own temporary file and rename it into place; the rename is atomic, so a
reader sees either no file or a complete one, and neither writer trips over the
other's partial file. A folder that cannot be written is detected before the
expensive work, so that the data can be read without caching it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["can_write_to", "write_atomically"]


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Create ``path`` by ``write`` into a unique temporary file in its folder, renamed.

    Args:
        path: the file to create (replaced if it exists).
        write: writes the content into the binary file object it is given.

    Raises:
        OSError: if the folder cannot be written; no temporary file is left behind.
    """
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".part"
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def can_write_to(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (created first when missing).

    Tries it, because permission bits do not tell (a read-only mount, or root).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False
