"""Table 1 of ``estimators.py``: gradient quality of the estimators on the CARMS toy.

For each toy, K and parameterization, R replicate gradient estimates (one forward and
backward pass over a batch of R copies of the scores) are compared with the exact gradient
of ``E[f]`` (enumeration of the K^N configurations): bias in standard errors, an
"unbiased?" verdict, relative bias and total variance. The entry point's docstring
describes the toy and the columns in full.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from _common import PARAMETERIZATIONS, Preset, markdown
from torch import Tensor

from catlight.latent import (
    CARMS,
    DisARMTree,
    DiscreteLatent,
    Estimator,
    Exact,
    GappedStraightThrough,
    GumbelRao,
    GumbelSoftmax,
    IndeCateR,
    LeaveOneOut,
    Reinforce,
    ReinMax,
    StraightThrough,
    StraightThroughGumbelSoftmax,
    UnorderedSet,
)

UNBIASED_LEVEL = 0.001  # false-alarm rate of the "unbiased?" column, per row


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
    """The estimators of table 1, each with ``evaluations`` samples.

    But IndeCateR: one sample, N K evaluations; UnorderedSet: at most 8; DisARMTree: an
    even number, one fewer when ``evaluations`` is odd.
    """
    n = evaluations
    return [
        EstimatorSpec("GumbelSoftmax(0.5)", lambda: GumbelSoftmax(tau=0.5, num_samples=n)),
        EstimatorSpec(
            "StraightThroughGumbelSoftmax(0.5)",
            lambda: StraightThroughGumbelSoftmax(0.5, num_samples=n),
        ),
        EstimatorSpec("GumbelRao(0.5)", lambda: GumbelRao(0.5, num_samples=n, num_gumbels=10)),
        EstimatorSpec("StraightThrough(1.0)", lambda: StraightThrough(1.0, num_samples=n)),
        EstimatorSpec("GappedStraightThrough(1.0)", lambda: GappedStraightThrough(1.0, n)),
        EstimatorSpec("ReinMax(1.3)", lambda: ReinMax(1.3, num_samples=n)),
        EstimatorSpec("Reinforce", lambda: Reinforce(num_samples=n)),
        EstimatorSpec("LeaveOneOut", lambda: LeaveOneOut(n)),
        EstimatorSpec("CARMS", lambda: CARMS(n)),
        EstimatorSpec("DisARMTree", lambda: DisARMTree(n - n % 2)),
        EstimatorSpec("UnorderedSet", lambda: UnorderedSet(min(n, 8))),
        EstimatorSpec("IndeCateR(1)", lambda: IndeCateR(1)),
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
    elif isinstance(estimator, IndeCateR):
        evaluations = estimator.num_samples * problem.toy.num_variables * problem.num_categories
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
        "(GumbelSoftmax, ST-GS, GumbelRao, ST, GST, ReinMax) are biased by design; GumbelRao "
        "has ST-GS's mean with less variance (10 conditional Gumbel draws per sample). With a "
        "linear cost of one variable, StraightThrough at tau = 1 is exact (the cost's "
        "gradient does not depend on the sample and softmax(log p) = p) and has zero variance.",
        "total variance: trace of the covariance of the estimates; variance / LOO: divided by "
        "LeaveOneOut's on the same toy, K and parameterization.",
    ]
    return markdown(header, body) + "\n\n" + "\n".join(f"- {note}" for note in notes)


def _problem_key(problem: Problem) -> tuple[str, int, str]:
    return problem.toy.name, problem.num_categories, problem.parameterization
