"""Pieces several benchmarks share: presets, parameterizations, markdown, estimators.

The preset and parameterizations are those of ``estimators.py``'s two tables; kept apart
so that ``estimator_quality`` and ``estimator_speed`` need not import the entry
point (which imports them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from catlight.latent import ESTIMATORS, Catnat, Parameterization, Softmax


@dataclass(frozen=True)
class Preset:
    """How much work each table does."""

    replicates: int  # R gradient estimates per row of table 1
    max_repeats: int  # timed calls per cell of table 2 (after one warm-up call) ...
    min_repeats: int  # ... at least this many, however slow the call ...
    row_budget_s: float  # ... and otherwise about this many seconds per cell


PARAMETERIZATIONS: dict[str, Callable[[], Parameterization]] = {
    "Softmax": Softmax,
    "Catnat": Catnat,
}
# the same, by the lower-case names that configs, command lines and result CSVs use
PARAMETERIZATIONS_BY_NAME: dict[str, Callable[[], Parameterization]] = {
    name.lower(): parameterization for name, parameterization in PARAMETERIZATIONS.items()
}


def configured_estimators(folder: Path) -> list[str]:
    """Short names of the registry's estimators with a config ``<name>_softmax.yaml`` in ``folder``.

    In the registry's order; the benchmarks that train from configs offer these.
    """
    return [name for name in ESTIMATORS if (folder / f"{name}_softmax.yaml").exists()]


def markdown(header: list[str], body: list[list[str]]) -> str:
    """A markdown table: a header row, the separator, one line per row of ``body``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)
