"""Gradient quality and speed of catlight's estimators, as two markdown tables.

Table 1, gradient quality on a toy problem (REFERENCE.md, the CARMS toy). N categorical
variables with K categories have probabilities drawn once from Dirichlet(1, ..., 1)
(fixed seed) and a random cost vector ``c_n`` each. Two costs:

- ``linear``: ``f(z) = sum_n z_n . c_n`` with N = 1;
- ``squared``: ``f(z) = (sum_n z_n . c_n)^2`` with N = 3 (couples the variables).

Softmax scores are ``log p``. Catnat scores are fixed N(0, 1) draws, so the two
parameterizations describe *different* distributions and their gradients live in
different coordinates: compare estimators within one parameterization only. Every
sampling estimator gets the same budget of n cost evaluations per gradient estimate
(``--evaluations``, default 4); Exact evaluates all K^N configurations and is listed for
reference. R replicate estimates are drawn in one forward pass by expanding the scores
along a batch dimension of size R; their gradient comes from
``out.objective(cost).sum().backward()``. The exact gradient of ``E[f]`` is computed
independently by enumerating the K^N configurations (``itertools.product``, float64
on top of the float32 parameterization, autograd). Per row:

- bias (SE): ``max_d |mean_d - exact_d| / SE_d`` over the gradient's D coordinates, in
  standard errors of the mean (SE floored at 1e-6 max|exact| so float32 rounding does
  not count as bias);
- unbiased?: whether that maximum stays below the level that D independent standard
  normals exceed with probability 0.1% (relaxed estimators are biased by design);
- relative bias: ``||mean - exact|| / ||exact||``;
- total variance: the trace of the covariance of the R estimates, and its ratio to
  LeaveOneOut's on the same toy, K and parameterization.

Table 2, speed: forward + backward of the layer for a batch of 1024 examples with N = 20
variables, for K in {10, 1024}: ``out = layer(scores)``, a fixed random linear cost
``(z * w).sum((-2, -1))`` of shape [S, B], ``out.objective(cost).sum().backward()``.
Estimators use their default settings except n = 4 samples for Reinforce, LeaveOneOut
and CARMS; Exact is skipped (K^N configurations). The baseline is the raw
``torch.nn.functional.gumbel_softmax(scores, tau)`` call with the same cost. The time
is the median over repeats after one warm-up call (synchronised on CUDA), with the
calls of all cells interleaved; cells whose warm-up call is slow get fewer repeats,
and the table says how many.

Usage::

    python benchmarks/estimators.py --quick             # ~2 minutes on 2 idle CPU cores
    python benchmarks/estimators.py                     # full preset, ~5 minutes
    python benchmarks/estimators.py --device cuda --categories 3 10 --evaluations 8

Peak memory is about 7.5 GB on CPU (CARMS at K = 1024 builds ``[B * N, 8, K]`` tensors).
The last line reports how much CPU other processes used during the run: timings taken
on a busy machine are inflated and noisy.

Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from catlight.latent import (
    CARMS,
    Catnat,
    DiscreteLatent,
    Estimator,
    Exact,
    GumbelSoftmax,
    LeaveOneOut,
    Parameterization,
    Reinforce,
    ReinMax,
    Softmax,
    StraightThrough,
    StraightThroughGumbelSoftmax,
)

# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Preset:
    """How much work each table does."""

    replicates: int  # R gradient estimates per row of table 1
    max_repeats: int  # timed calls per cell of table 2 (after one warm-up call) ...
    min_repeats: int  # ... at least this many, however slow the call ...
    row_budget_s: float  # ... and otherwise about this many seconds per cell


PRESETS = {
    "quick": Preset(replicates=20_000, max_repeats=5, min_repeats=1, row_budget_s=2.0),
    "full": Preset(replicates=100_000, max_repeats=15, min_repeats=3, row_budget_s=10.0),
}

PARAMETERIZATIONS: dict[str, Callable[[], Parameterization]] = {
    "Softmax": Softmax,
    "Catnat": Catnat,
}

UNBIASED_LEVEL = 0.001  # false-alarm rate of the "unbiased?" column, per row


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller preset (~3 min on CPU)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--seed", type=int, default=0, help="seed of the toy and the noise")
    parser.add_argument(
        "--categories", type=int, nargs="+", default=[3, 10], help="K values of table 1"
    )
    parser.add_argument(
        "--evaluations", type=int, default=4, help="cost evaluations n per gradient (table 1)"
    )
    parser.add_argument(
        "--replicates", type=int, default=None, help="R estimates per row (default: preset)"
    )
    parser.add_argument(
        "--speed-categories", type=int, nargs="+", default=[10, 1024], help="K values of table 2"
    )
    parser.add_argument("--batch", type=int, default=1024, help="batch size of table 2")
    parser.add_argument("--variables", type=int, default=20, help="N of table 2")
    parser.add_argument(
        "--tables", type=int, nargs="+", choices=[1, 2], default=[1, 2], help="tables to print"
    )
    args = parser.parse_args(argv)
    if args.evaluations < 2:
        parser.error("--evaluations must be >= 2 (LeaveOneOut and CARMS need two samples)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    return args


# ------------------------------------------------------------------ table 1: the toy


@dataclass(frozen=True)
class Toy:
    """A cost of N one-hot (or relaxed) variables, as in the CARMS toy experiment."""

    name: str
    num_variables: int
    squared: bool

    def cost(self, z: Tensor, weights: Tensor) -> Tensor:
        """``sum_n z_n . c_n`` (or its square). Shapes: ``(*S, N, K), (N, K) -> (*S)``."""
        linear = (z * weights).sum((-2, -1))
        return linear.square() if self.squared else linear


TOYS = [
    Toy("linear", num_variables=1, squared=False),
    Toy("squared", num_variables=3, squared=True),
]


@dataclass(frozen=True)
class Problem:
    """One toy at one K under one parameterization: fixed scores and cost weights."""

    toy: Toy
    num_categories: int
    parameterization: str
    scores: Tensor  # (N, num_scores)
    weights: Tensor  # (N, K)


def make_problem(toy: Toy, num_categories: int, parameterization: str, seed: int) -> Problem:
    """The toy's fixed probabilities (or Catnat scores) and costs, from ``seed`` alone."""
    generator = torch.Generator().manual_seed(seed * 1000 + 10 * num_categories + toy.num_variables)
    shape = (toy.num_variables, num_categories)
    # Dirichlet(1, ..., 1) = normalized Exp(1) draws
    exponentials = -torch.rand(shape, generator=generator, dtype=torch.float64).log()
    probs = exponentials / exponentials.sum(-1, keepdim=True)
    weights = torch.randn(shape, generator=generator)
    catnat_scores = torch.randn(toy.num_variables, num_categories - 1, generator=generator)
    scores = probs.log().float() if parameterization == "Softmax" else catnat_scores
    return Problem(toy, num_categories, parameterization, scores, weights)


def exact_gradient(problem: Problem) -> Tensor:
    """Gradient of ``E[f]`` w.r.t. the scores by enumerating all K^N configurations.

    Shapes:
        - output: ``(N * num_scores,)`` float64
    """
    num_variables, num_categories = problem.weights.shape
    configurations = torch.tensor(
        list(itertools.product(range(num_categories), repeat=num_variables))
    )  # (K^N, N)
    scores = problem.scores.clone().requires_grad_(True)
    log_probs = PARAMETERIZATIONS[problem.parameterization]()(scores).double()  # (N, K)
    joint_log_probs = log_probs[torch.arange(num_variables), configurations].sum(-1)
    z = F.one_hot(configurations, num_categories).double()  # (K^N, N, K)
    expectation = (joint_log_probs.exp() * problem.toy.cost(z, problem.weights.double())).sum()
    (gradient,) = torch.autograd.grad(expectation, scores)
    return gradient.double().flatten()


@dataclass(frozen=True)
class EstimatorSpec:
    """An estimator of table 1 and the number of cost evaluations it makes."""

    label: str
    build: Callable[[], Estimator]


def gradient_estimators(evaluations: int) -> list[EstimatorSpec]:
    """The estimators of table 1, each with ``evaluations`` samples."""
    n = evaluations
    return [
        EstimatorSpec("GumbelSoftmax(0.5)", lambda: GumbelSoftmax(tau=0.5, num_samples=n)),
        EstimatorSpec(
            "StraightThroughGumbelSoftmax(0.5)",
            lambda: StraightThroughGumbelSoftmax(0.5, num_samples=n),
        ),
        EstimatorSpec("StraightThrough(1.0)", lambda: StraightThrough(1.0, num_samples=n)),
        EstimatorSpec("ReinMax(1.3)", lambda: ReinMax(1.3, num_samples=n)),
        EstimatorSpec("Reinforce", lambda: Reinforce(num_samples=n)),
        EstimatorSpec("LeaveOneOut", lambda: LeaveOneOut(n)),
        EstimatorSpec("CARMS", lambda: CARMS(n)),
        EstimatorSpec("Exact", Exact),
    ]


def replicate_gradients(
    problem: Problem, estimator: Estimator, replicates: int, device: torch.device
) -> Tensor:
    """R independent gradient estimates from one forward and backward pass.

    Shapes:
        - output: ``(R, N * num_scores)`` float64
    """
    layer = DiscreteLatent(
        problem.num_categories, PARAMETERIZATIONS[problem.parameterization](), estimator
    ).to(device)
    scores = problem.scores.to(device).expand(replicates, *problem.scores.shape)
    scores = scores.clone().requires_grad_(True)  # (R, N, num_scores), one leaf per replicate
    out = layer(scores)
    cost = problem.toy.cost(out.z, problem.weights.to(device))  # (S, R)
    out.objective(cost).sum().backward()
    return scores.grad.reshape(replicates, -1).double().cpu()


@dataclass(frozen=True)
class GradientRow:
    """One row of table 1."""

    problem: Problem
    label: str
    evaluations: int
    bias_se: float  # nan when the estimates have no variance (Exact)
    unbiased: bool
    relative_bias: float
    total_variance: float


def unbiased_threshold(num_coordinates: int) -> float:
    """Level that the max of D independent |N(0, 1)| exceeds with probability 0.1%."""
    per_coordinate = 1 - (1 - UNBIASED_LEVEL) ** (1 / num_coordinates)
    return statistics.NormalDist().inv_cdf(1 - per_coordinate / 2)


def gradient_row(
    problem: Problem, spec: EstimatorSpec, exact: Tensor, replicates: int, device: torch.device
) -> GradientRow:
    """Estimate, compare with the exact gradient, summarise."""
    estimator = spec.build()
    if isinstance(estimator, Exact):
        replicates = 1  # deterministic: one estimate is the whole story
        evaluations = problem.num_categories**problem.toy.num_variables
        estimator = Exact(max_configurations=max(estimator.max_configurations, evaluations))
    else:
        evaluations = estimator.num_samples
    estimates = replicate_gradients(problem, estimator, replicates, device)
    mean = estimates.mean(0)
    variance = estimates.var(0) if replicates > 1 else torch.zeros_like(mean)
    rounding = 1e-6 * exact.abs().max()
    standard_error = (variance / replicates + rounding**2).sqrt()
    bias_se = ((mean - exact).abs() / standard_error).max().item()
    if replicates == 1:
        bias_se = math.nan
    return GradientRow(
        problem=problem,
        label=spec.label,
        evaluations=evaluations,
        bias_se=bias_se,
        unbiased=not bias_se > unbiased_threshold(exact.numel()),
        relative_bias=((mean - exact).norm() / exact.norm()).item(),
        total_variance=variance.sum().item(),
    )


def gradient_table(args: argparse.Namespace, preset: Preset, device: torch.device) -> str:
    """Table 1 with its notes, as markdown."""
    replicates = args.replicates or preset.replicates
    rows: list[GradientRow] = []
    for toy, num_categories, parameterization in itertools.product(
        TOYS, args.categories, PARAMETERIZATIONS
    ):
        problem = make_problem(toy, num_categories, parameterization, args.seed)
        exact = exact_gradient(problem)
        for index, spec in enumerate(gradient_estimators(args.evaluations)):
            torch.manual_seed(args.seed * 1000 + index)
            rows.append(gradient_row(problem, spec, exact, replicates, device))

    loo_variance = {
        _problem_key(row.problem): row.total_variance for row in rows if row.label == "LeaveOneOut"
    }
    header = [
        "toy",
        "K",
        "parameterization",
        "estimator",
        "evaluations",
        "bias (SE)",
        "unbiased?",
        "relative bias",
        "total variance",
        "variance / LOO",
    ]
    body = [
        [
            f"{row.problem.toy.name}, N={row.problem.toy.num_variables}",
            str(row.problem.num_categories),
            row.problem.parameterization,
            row.label,
            str(row.evaluations),
            "—" if math.isnan(row.bias_se) else f"{row.bias_se:.3g}",
            "exact" if math.isnan(row.bias_se) else ("yes" if row.unbiased else "no"),
            f"{row.relative_bias:.3g}",
            f"{row.total_variance:.3g}",
            f"{row.total_variance / loo_variance[_problem_key(row.problem)]:.3g}",
        ]
        for row in rows
    ]
    thresholds = ", ".join(
        f"D={d}: {unbiased_threshold(d):.2f}"
        for d in sorted({row.problem.scores.numel() for row in rows})
    )
    notes = [
        f"R = {replicates} replicate estimates per row (Exact: 1, it is deterministic); "
        f"n = {args.evaluations} cost evaluations per estimate; seed {args.seed}.",
        "Toys: `linear` f(z) = z . c with one variable; `squared` f(z) = (sum_n z_n . c_n)^2 "
        "with N = 3. p ~ Dirichlet(1, ..., 1), c ~ N(0, 1), both fixed by the seed.",
        "Softmax scores are log p; Catnat scores are fixed N(0, 1) draws: the distributions "
        "and the gradient coordinates differ, so compare estimators within a parameterization.",
        "bias (SE): max over the D gradient coordinates of |mean - exact| / standard error. "
        "`unbiased?` is `no` when it exceeds the level that D standard normals pass with "
        f"probability {UNBIASED_LEVEL:.1%} ({thresholds}). The relaxed estimators "
        "(GumbelSoftmax, ST-GS, ST, ReinMax) are biased by design; with a linear cost of one "
        "variable, StraightThrough at tau = 1 is exact (the cost's gradient does not depend "
        "on the sample and softmax(log p) = p) and has zero variance.",
        "total variance: trace of the covariance of the estimates; variance / LOO: divided by "
        "LeaveOneOut's on the same toy, K and parameterization.",
    ]
    return _markdown(header, body) + "\n\n" + "\n".join(f"- {note}" for note in notes)


def _problem_key(problem: Problem) -> tuple[str, int, str]:
    return problem.toy.name, problem.num_categories, problem.parameterization


# ------------------------------------------------------------------- table 2: speed


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
    """Table 2's estimators: defaults, with n = 4 for the score-function ones."""
    return [
        ("GumbelSoftmax", GumbelSoftmax),
        ("StraightThroughGumbelSoftmax", StraightThroughGumbelSoftmax),
        ("StraightThrough", StraightThrough),
        ("ReinMax", ReinMax),
        ("Reinforce(4)", lambda: Reinforce(num_samples=4)),
        ("LeaveOneOut(4)", lambda: LeaveOneOut(4)),
        ("CARMS(4)", lambda: CARMS(4)),
        ("Exact", Exact),
    ]


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
            num_samples = (
                num_categories**num_variables
                if isinstance(estimator, Exact)
                else estimator.num_samples
            )
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
        "one sample) except n = 4 for Reinforce, LeaveOneOut and CARMS (CARMS with its "
        "default 8 orderings). The baseline draws one sample from K logits at tau = 1.",
    ]
    if device.type == "cpu":
        notes.append(
            "On CPU the baseline's noise (`-empty_like(x).exponential_().log()`) is about "
            "twice as slow as catlight's `-log(-log u)`, so the layer can beat the raw call."
        )
    return (
        _markdown(header, body)
        + "\n\n"
        + "\n".join(f"- {note}" for note in notes)
        + "\n\nTargets:\n\n"
        + "\n".join(f"- {target}" for target in _targets(rows, baselines))
    )


def _ms(timing: Timing) -> str:
    milliseconds = 1e3 * timing.seconds
    return f"{milliseconds:.0f}" if milliseconds >= 100 else f"{milliseconds:.3g}"


def _skip_reason(estimator: Estimator, num_variables: int, num_categories: int) -> str:
    """Why a cell is not timed ("" when it is): Exact over too many configurations."""
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


# ----------------------------------------------------------------------------- output


def _markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.machine()}, {_cpu_model()})"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown model"


@dataclass(frozen=True)
class CpuClock:
    """CPU seconds used by the whole machine and by this process, at one instant."""

    wall: float
    machine: float | None  # busy CPU seconds of all processes (Linux /proc/stat), or None
    process: float

    @classmethod
    def now(cls) -> CpuClock:
        """Read the clocks."""
        own = os.times()
        return cls(time.perf_counter(), _machine_busy_seconds(), own.user + own.system)

    def others_share(self, start: CpuClock) -> float | None:
        """Fraction of all CPUs that other processes kept busy since ``start``."""
        if self.machine is None or start.machine is None:
            return None
        others = (self.machine - start.machine) - (self.process - start.process)
        return max(others, 0.0) / ((self.wall - start.wall) * (os.cpu_count() or 1))


def _machine_busy_seconds() -> float | None:
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:8]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _load_report(start: CpuClock) -> str:
    """How much of the machine other processes used: they inflate the timings."""
    share = CpuClock.now().others_share(start)
    if share is None:
        return "CPU use of other processes unknown"
    warning = " (timings are inflated and noisy: rerun on an idle machine)" if share > 0.1 else ""
    return f"other processes used {share:.0%} of the {os.cpu_count()} CPUs meanwhile{warning}"


def main(argv: Sequence[str] | None = None) -> None:
    """Print the header, then the tables that were asked for."""
    args = parse_args(argv)
    preset = PRESETS["quick" if args.quick else "full"]
    device = torch.device(args.device)
    command = shlex.join(["python", sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    print("## catlight estimator benchmark\n")
    print(f"`{command}`\n")
    print(
        f"torch {torch.__version__}, device {_device_name(device)}, "
        f"{torch.get_num_threads()} threads, preset {'quick' if args.quick else 'full'}\n"
    )
    start = CpuClock.now()
    if 1 in args.tables:
        print("### Table 1: gradient quality on the toy\n")
        print(gradient_table(args, preset, device), end="\n\n", flush=True)
    if 2 in args.tables:
        print("### Table 2: forward + backward time\n")
        print(speed_table(args, preset, device), end="\n\n", flush=True)
    print(f"Total wall time: {time.perf_counter() - start.wall:.0f} s; {_load_report(start)}.")


if __name__ == "__main__":
    main()
