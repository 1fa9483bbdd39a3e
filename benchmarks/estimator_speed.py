"""Table 2 of ``estimators.py``: forward + backward time of the layer, and the targets.

Each estimator (defaults, n = 4 for the score-function ones) under both parameterizations
is timed on a batch of scores with a fixed random linear cost, against the raw
``F.gumbel_softmax`` call with the same cost. The calls of all cells of one K are
interleaved so that a change in machine load hits them alike. The entry point's docstring
describes the setup in full.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from _common import PARAMETERIZATIONS, Preset, markdown
from torch import Tensor

from catlight.latent import (
    ESTIMATORS,
    DiscreteLatent,
    Estimator,
    Exact,
    GumbelSoftmax,
    IndeCateR,
)

# IndeCateR cells with more cost evaluations per example than this are not timed
_MAX_INDECATER_ROWS = 1000


@dataclass(frozen=True)
class Timing:
    """Median seconds per call and the number of timed calls it is the median of."""

    seconds: float
    repeats: int


def timed(step: Callable[[], None], device: torch.device) -> float:
    """Wall time of one call, synchronised on CUDA."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def time_interleaved(
    steps: dict[str, Callable[[], None]], device: torch.device, preset: Preset
) -> dict[str, Timing]:
    """Median wall time of each step after one warm-up call each.

    The timed calls go round-robin over the steps, so a change in machine load hits
    all of them alike and their ratios stay meaningful. A step whose warm-up call is
    slow gets fewer repeats (about ``preset.row_budget_s`` seconds in all).
    """
    warm_up = {key: timed(step, device) for key, step in steps.items()}
    repeats = {
        key: max(preset.min_repeats, min(preset.max_repeats, int(preset.row_budget_s / seconds)))
        for key, seconds in warm_up.items()
    }
    samples: dict[str, list[float]] = {key: [] for key in steps}
    for round_index in range(max(repeats.values())):
        for key, step in steps.items():
            if round_index < repeats[key]:
                samples[key].append(timed(step, device))
    return {key: Timing(statistics.median(samples[key]), repeats[key]) for key in steps}


def speed_estimators() -> list[tuple[str, Callable[[], Estimator]]]:
    """Table 2's estimators: the registry's, class defaults but n = 4 for score functions.

    IndeCateR keeps one sample: each costs N K evaluations.
    """
    rows: list[tuple[str, Callable[[], Estimator]]] = []
    for entry in ESTIMATORS.values():
        if entry.pathwise or entry.cls in (Exact, IndeCateR):
            rows.append((entry.cls.__name__, entry.cls))
        else:
            rows.append((f"{entry.cls.__name__}(4)", functools.partial(entry.cls, num_samples=4)))
    return rows


def layer_step(layer: DiscreteLatent, scores: Tensor, weights: Tensor) -> Callable[[], None]:
    """One forward + backward of the layer with a linear cost of shape (S, B)."""

    def step() -> None:
        out = layer(scores)
        out.objective((out.z * weights).sum((-2, -1))).sum().backward()
        scores.grad = None

    return step


def baseline_step(scores: Tensor, weights: Tensor, tau: float) -> Callable[[], None]:
    """The same with ``F.gumbel_softmax`` on K logits, no layer around it."""

    def step() -> None:
        z = F.gumbel_softmax(scores, tau=tau)
        (z * weights).sum((-2, -1)).sum().backward()
        scores.grad = None

    return step


@dataclass(frozen=True)
class SpeedRow:
    """One row of table 2: one estimator at one K, both parameterizations."""

    num_categories: int
    label: str
    num_samples: int
    timings: dict[str, Timing]  # by parameterization; empty when skipped
    skipped: str = ""


def speed_table(args: argparse.Namespace, preset: Preset, device: torch.device) -> str:
    """Table 2 with the targets, as markdown."""
    generator = torch.Generator().manual_seed(args.seed)
    batch, num_variables = args.batch, args.variables
    baselines: dict[int, Timing] = {}
    rows: list[SpeedRow] = []
    for num_categories in args.speed_categories:
        weights = torch.randn(num_variables, num_categories, generator=generator).to(device)
        logits = torch.randn(batch, num_variables, num_categories, generator=generator)
        tau = float(GumbelSoftmax().tau)
        baseline_logits = logits.clone().to(device).requires_grad_(True)
        steps = {"baseline": baseline_step(baseline_logits, weights, tau)}
        for label, build in speed_estimators():
            if _skip_reason(build(), num_variables, num_categories):
                continue
            for name, parameterization in PARAMETERIZATIONS.items():
                layer = DiscreteLatent(num_categories, parameterization(), build()).to(device)
                scores = logits[..., : layer.num_scores].clone().to(device).requires_grad_(True)
                steps[f"{label}/{name}"] = layer_step(layer, scores, weights)
        torch.manual_seed(args.seed)
        timings = time_interleaved(steps, device, preset)
        baselines[num_categories] = timings["baseline"]
        for label, build in speed_estimators():
            estimator = build()
            skipped = _skip_reason(estimator, num_variables, num_categories)
            by_name = {} if skipped else {n: timings[f"{label}/{n}"] for n in PARAMETERIZATIONS}
            num_samples = _rows_per_example(estimator, num_variables, num_categories)
            rows.append(SpeedRow(num_categories, label, num_samples, by_name, skipped))

    header = [
        "K",
        "estimator",
        "S",
        "Softmax (ms)",
        "Catnat (ms)",
        "Softmax / F.gumbel_softmax",
        "Catnat / F.gumbel_softmax",
        "Catnat / Softmax",
        "repeats (Softmax, Catnat)",
    ]
    body = []
    for num_categories, baseline in baselines.items():
        body.append(
            [str(num_categories), "F.gumbel_softmax (baseline)", "1",
             f"{_ms(baseline)} (K logits)", "—", "1", "—", "—",
             str(baseline.repeats)]
        )  # fmt: skip
        for row in rows:
            if row.num_categories != num_categories:
                continue
            if row.skipped:
                body.append([str(num_categories), row.label, "—", row.skipped, *["—"] * 5])
                continue
            softmax, catnat = row.timings["Softmax"], row.timings["Catnat"]
            body.append(
                [str(num_categories), row.label, str(row.num_samples),
                 _ms(softmax), _ms(catnat),
                 f"{softmax.seconds / baseline.seconds:.2f}",
                 f"{catnat.seconds / baseline.seconds:.2f}",
                 f"{catnat.seconds / softmax.seconds:.2f}",
                 f"{softmax.repeats}, {catnat.repeats}"]
            )  # fmt: skip

    notes = [
        f"Batch {batch}, N = {num_variables}, scores of shape [{batch}, {num_variables}, "
        "num_scores] requiring grad; cost = (z * w).sum((-2, -1)) with a fixed random w; "
        "time of `out = layer(scores); out.objective(cost).sum().backward()`.",
        "Wall time, median over `repeats` timed calls after one warm-up call per cell; the "
        "timed calls go round-robin over all cells of one K, so a change in machine load "
        "hits them alike. A cell whose warm-up call took long gets fewer repeats (about "
        f"{preset.row_budget_s:g} s per cell, at least {preset.min_repeats}, at most "
        f"{preset.max_repeats}): cells with fewer than {preset.max_repeats} are slow ones "
        "measured with fewer repeats.",
        "S = samples per example (cost evaluations). Default estimator settings (tau = 1, "
        "one sample) except n = 4 for Reinforce, LeaveOneOut, CARMS (with its default 8 "
        "orderings) and UnorderedSet (k = 4); IndeCateR's one sample is N K rows. The "
        "baseline draws one sample from K logits at tau = 1.",
    ]
    if device.type == "cpu":
        notes.append(
            "On CPU the baseline's noise (`-empty_like(x).exponential_().log()`) is about "
            "twice as slow as catlight's `-log(-log u)`, so the layer can beat the raw call."
        )
    return (
        markdown(header, body)
        + "\n\n"
        + "\n".join(f"- {note}" for note in notes)
        + "\n\nTargets:\n\n"
        + "\n".join(f"- {target}" for target in _targets(rows, baselines))
    )


def _ms(timing: Timing) -> str:
    milliseconds = 1e3 * timing.seconds
    return f"{milliseconds:.0f}" if milliseconds >= 100 else f"{milliseconds:.3g}"


def _rows_per_example(estimator: Estimator, num_variables: int, num_categories: int) -> int:
    """S, the cost evaluations per example: K^N for Exact, n N K for IndeCateR."""
    if isinstance(estimator, Exact):
        return num_categories**num_variables
    if isinstance(estimator, IndeCateR):
        return estimator.num_samples * num_variables * num_categories
    return estimator.num_samples


def _skip_reason(estimator: Estimator, num_variables: int, num_categories: int) -> str:
    """Why a cell is not timed ("" when it is): Exact or IndeCateR with too many rows."""
    if isinstance(estimator, IndeCateR):
        rows = _rows_per_example(estimator, num_variables, num_categories)
        if rows <= _MAX_INDECATER_ROWS:
            return ""
        return f"skipped: n N K = {rows} cost evaluations per example > {_MAX_INDECATER_ROWS}"
    if not isinstance(estimator, Exact):
        return ""
    if num_categories**num_variables <= estimator.max_configurations:
        return ""
    exponent = num_variables * math.log10(num_categories)
    return (
        f"skipped: K^N = 10^{exponent:.3g} configurations "
        f"> max_configurations = {estimator.max_configurations}"
    )


def _targets(rows: list[SpeedRow], baselines: dict[int, Timing]) -> list[str]:
    """The issue's targets: measured ratios, met or missed."""

    def verdict(ratio: float, limit: float) -> str:
        return f"{ratio:.2f}x ({'met' if ratio <= limit else 'missed'})"

    lines = []
    for row in rows:
        if row.label == "GumbelSoftmax" and row.timings:
            ratio = row.timings["Softmax"].seconds / baselines[row.num_categories].seconds
            lines.append(
                f"Softmax + GumbelSoftmax within 1.2x of F.gumbel_softmax, K = "
                f"{row.num_categories}: {verdict(ratio, 1.2)}"
            )
    large = [row for row in rows if row.num_categories == 1024 and row.timings]
    if large:
        ratios = ", ".join(
            f"{row.label} "
            + verdict(row.timings["Catnat"].seconds / row.timings["Softmax"].seconds, 1.5)
            for row in large
        )
        lines.append(f"Catnat within 1.5x of Softmax at K = 1024: {ratios}")
    else:
        lines.append("Catnat within 1.5x of Softmax at K = 1024: not measured (K = 1024 not run)")
    return lines
