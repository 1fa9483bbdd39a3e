"""Result rows: one CSV row per run under ``docs/results/``, with where it came from.

Every benchmark appends its runs to ``docs/results/<benchmark>.csv`` through
:func:`append_row`, which adds the command line, the commit, the date and the machine,
so a number in the docs can always be traced to the run that produced it.
"""

from __future__ import annotations

import csv
import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
PROVENANCE = ["command", "commit", "date", "machine"]


def machine() -> str:
    """The processor, threads and accelerator a run used."""
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (
        f"{os.cpu_count()} CPU cores ({platform.machine()}), {torch.get_num_threads()} torch "
        f"threads, {gpu}, torch {torch.__version__}"
    )


def commit() -> str:
    """The short hash of the checked-out commit, with ``+dirty`` for local changes."""
    root = RESULTS.parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}+dirty" if dirty else head or "unknown"


def _portable(arguments: list[str]) -> list[str]:
    """The arguments with the machine's own data folder written as ``DIR``."""
    portable = list(arguments)
    for index, argument in enumerate(portable[:-1]):
        if argument == "--data-dir":
            portable[index + 1] = "DIR"
    return [
        "--data-dir=DIR" if argument.startswith("--data-dir=") else argument
        for argument in portable
    ]


def append_row(benchmark: str, row: dict[str, Any], columns: list[str]) -> Path:
    """Append one run to ``docs/results/<benchmark>.csv``, writing the header if new.

    Args:
        benchmark: the file's stem, e.g. ``"vae_table1"``.
        row: the run's values by column; missing columns are left empty.
        columns: the benchmark's own columns, in order (provenance columns follow).

    Returns:
        The CSV file's path.
    """
    path = RESULTS / f"{benchmark}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = columns + PROVENANCE
    provenance = {
        "command": shlex.join(
            ["python", f"benchmarks/{Path(sys.argv[0]).name}", *_portable(sys.argv[1:])]
        ),
        "commit": commit(),
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
    }
    new = not path.exists()
    with path.open("a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=header, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({**row, **provenance})
    return path


def read_rows(benchmark: str) -> list[dict[str, str]]:
    """Every row of ``docs/results/<benchmark>.csv`` (empty when there is none)."""
    path = RESULTS / f"{benchmark}.csv"
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))
