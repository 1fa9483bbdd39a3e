"""Pieces that both tables of ``estimators.py`` use: the preset, the parameterizations, markdown.

Kept apart so that ``estimator_quality`` and ``estimator_speed`` need not import the entry
point (which imports them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from catlight.latent import Catnat, Parameterization, Softmax


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


def markdown(header: list[str], body: list[list[str]]) -> str:
    """A markdown table: a header row, the separator, one line per row of ``body``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)
