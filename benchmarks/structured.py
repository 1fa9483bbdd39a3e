"""Gradient variance of the structured estimators on toy objectives, one table per structure.

Struminsky et al. (NeurIPS 2021) compare the score of the execution trace (T-REINFORCE,
with a leave-one-out baseline: T-REINFORCE+) with the score of the exponential
perturbations (E-REINFORCE) and RELAX with the conditional ``E | T``; the expected
ordering is T-REINFORCE+ < E-REINFORCE. Toys (scores fixed N(0, 1) draws, ``--seed``):

- spanning tree of K6 (15 edge scores): the number of tree edges not touching vertex 0;
- permutation of 6 items: Spearman's footrule to the identity, ``sum_i |pos(i) - i|``;
- top-3 subset of 10 items: ``z . w + (z . v)^2`` with fixed N(0, 1) vectors ``w, v``;
- binary tree over 7 items: the total depth (sum of the depths of the items).

Every estimator gets the same budget of n = 4 cost evaluations per gradient estimate.
R replicate estimates come from one forward pass over R copies of the scores
(``out.objective(cost).sum().backward()``). RELAX's critic (``MLPCritic``, 32 tanh units)
is first trained alone on its variance surrogate (Adam, lr 1e-2, batches of 256 copies)
for the preset's number of steps, then frozen. Columns: total variance (the trace of the
covariance of one estimate), its ratio to T-REINFORCE+, and agreement: the largest
``|mean - mean_T+| / SE`` over the score coordinates (all estimators are unbiased, so this
is a few units at most).

Usage::

    python benchmarks/structured.py --quick   # ~1 minute on one CPU core
    python benchmarks/structured.py           # full preset: 10x the work, ~5 minutes (not run)

Nothing is asserted; the numbers are printed.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from _common import markdown
from torch import Tensor

from catlight.latent.structured import (
    BinaryTree,
    ExponentialReinforce,
    MLPCritic,
    Permutation,
    Relax,
    SpanningTree,
    Structure,
    StructuredEstimator,
    StructuredLatent,
    TopK,
    TraceReinforce,
)

NUM_EVALUATIONS = 4
CRITIC_BATCH = 256


@dataclass(frozen=True)
class Preset:
    """How much work each table does."""

    replicates: int  # R gradient estimates per row
    critic_steps: int  # Adam steps of RELAX's critic before measuring


PRESETS = {"quick": Preset(replicates=5_000, critic_steps=300), "full": Preset(50_000, 3_000)}


@dataclass(frozen=True)
class Toy:
    """A structure and a cost of its encoding ``(S, R, ...) -> (S, R)``."""

    name: str
    structure: Structure
    cost: Callable[[Tensor], Tensor]


def make_toys(generator: torch.Generator) -> list[Toy]:
    """The four toys of the module docstring."""
    tree = SpanningTree(6)
    away_from_zero = (tree.edges != 0).all(0).float()  # edges not touching vertex 0
    positions = torch.arange(6.0)
    linear, quadratic = torch.randn(2, 10, generator=generator)

    def footrule(matrix: Tensor) -> Tensor:
        position_of_item = (matrix * positions.unsqueeze(-1)).sum(-2)
        return (position_of_item - positions).abs().sum(-1)

    def total_depth(parents: Tensor) -> Tensor:
        depth, power = torch.zeros(parents.shape[:-1]), parents
        for _ in range(parents.shape[-1] - 1):
            depth = depth + power.sum(-1)
            power = power @ parents
        return depth.sum(-1)

    return [
        Toy("spanning tree of K6: edges not touching vertex 0", tree, lambda z: z @ away_from_zero),
        Toy("permutation of 6: footrule to the identity", Permutation(6), footrule),
        Toy("top-3 of 10: z.w + (z.v)^2", TopK(10, 3), lambda z: z @ linear + (z @ quadratic) ** 2),
        Toy("binary tree over 7: total depth", BinaryTree(7), total_depth),
    ]


def estimators(num_scores: int) -> dict[str, StructuredEstimator]:
    """The compared estimators, each with n cost evaluations."""
    n = NUM_EVALUATIONS
    return {
        "T-REINFORCE+": TraceReinforce(n, "leave_one_out"),
        "T-REINFORCE": TraceReinforce(n, "none"),
        "E-REINFORCE": ExponentialReinforce(n, "none"),
        "E-REINFORCE+": ExponentialReinforce(n, "leave_one_out"),
        "RELAX": Relax(MLPCritic(num_scores), num_samples=n),
    }


def gradient_estimates(layer: StructuredLatent, toy: Toy, scores: Tensor, count: int) -> Tensor:
    """``count`` independent gradient estimates in the scores, shape ``(count, n)``."""
    batch = scores.expand(count, -1).clone().requires_grad_()
    out = layer(batch)
    out.objective(toy.cost(out.z)).sum().backward()
    return batch.grad


def train_critic(layer: StructuredLatent, toy: Toy, scores: Tensor, steps: int) -> None:
    """Minimise the variance surrogate of RELAX's critic at fixed scores."""
    optimizer = torch.optim.Adam(layer.estimator.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        gradient_estimates(layer, toy, scores, CRITIC_BATCH)
        optimizer.step()


def variance_table(toy: Toy, preset: Preset, generator: torch.Generator) -> str:
    """One row per estimator: total variance, ratio to T-REINFORCE+, agreement."""
    scores = torch.randn(toy.structure.num_scores, generator=generator)
    rows, reference = [], None
    for name, estimator in estimators(toy.structure.num_scores).items():
        layer = StructuredLatent(toy.structure, estimator)
        if isinstance(estimator, Relax):
            train_critic(layer, toy, scores, preset.critic_steps)
            name = f"RELAX (critic trained {preset.critic_steps} steps)"
        estimates = gradient_estimates(layer, toy, scores, preset.replicates)
        mean, variance = estimates.mean(0), estimates.var(0)
        if reference is None:
            reference = (mean, variance)
        stderr = ((variance + reference[1]) / preset.replicates).sqrt().clamp(min=1e-12)
        agreement = ((mean - reference[0]).abs() / stderr).max().item()
        total = variance.sum().item()
        ratio = total / reference[1].sum().item()
        rows.append([name, f"{total:.4g}", f"{ratio:.2f}", f"{agreement:.1f}"])
    header = ["estimator (n = 4)", "total variance", "vs T-REINFORCE+", "agreement (SE)"]
    return markdown(header, rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller preset (~1 min on CPU)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the toys and the noise")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the header and one table per toy."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    preset_name = "quick" if args.quick else "full"
    preset = PRESETS[preset_name]
    command = shlex.join(["python", sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    print("## catlight structured estimator benchmark\n")
    print(f"`{command}`\n")
    print(
        f"torch {torch.__version__}, cpu ({platform.machine()}), {torch.get_num_threads()} "
        f"threads, preset {preset_name} (R = {preset.replicates} estimates per row)\n"
    )
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    for toy in make_toys(generator):
        print(f"### {toy.name}\n")
        print(variance_table(toy, preset, generator), end="\n\n", flush=True)
    print(f"Total wall time: {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
