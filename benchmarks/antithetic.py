"""Antithetic estimators against leave-one-out at equal evaluations: CARMS and DisARMTree.

CARMS (Dimitriev & Zhou 2021) couples the n samples of each categorical variable so that
they are antithetic; DisARMTree couples pairs of walks down catnat's binary tree, node by
node; leave-one-out draws the samples independently. All evaluate the cost n times. On
toys of the CARMS paper's kind (N = 1 to 3 variables, K = 3 to 10 categories, a random
cost vector per variable; costs: ``linear`` ``f = sum_v c_v[z_v]``, the paper's
``paper`` toy with ``c = 3, 6, 9, ...``, ``squared`` ``f^2`` and ``sigmoid``
``sigmoid(3 f)``), each row reports, from R gradient estimates with respect to the
scores (Softmax: ``log p`` with p from a Dirichlet(alpha) draw; Catnat: N(0, 1) scores,
alpha unused):

- ``CARMS / LOO`` and ``DisARMTree / LOO``: the total variance (trace of the
  covariance) of each estimate over leave-one-out's (DisARMTree needs an even n);
- ``bias (SE)``: the largest deviation of either from the exact gradient (Exact
  estimator), in standard errors of the mean: unbiased estimators stay within ~3-4;
- for N > 1, two experiments on the variance of the *first* variable's gradient,
  built from two catlight layers that share the cost: the first variable sampled by
  CARMS and the others independently (``coupled: own only``), and the first sampled
  independently with CARMS on the others (``coupled: others only``), each over the
  leave-one-out variance of the same coordinates.

The last two columns show why CARMS gains little once a cost depends on several
variables: the gradient of variable v weighs each pair's cost difference ``f_i - f_j``,
and antithetic samples of the *other* variables make those differences larger (their
covariance across samples is negative), which undoes what the coupling of v saves.

    python benchmarks/antithetic.py                 # R = 200,000, about 5 minutes
    python benchmarks/antithetic.py --parameterization catnat --replicates 20000

Variances are printed, never asserted.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from _common import markdown
from torch import Tensor

from catlight.latent import (
    CARMS,
    Catnat,
    DisARMTree,
    DiscreteLatent,
    Estimator,
    Exact,
    LeaveOneOut,
    Parameterization,
    Softmax,
)

Cost = Callable[[Tensor], Tensor]
# (cost, N, K, alpha, n)
TOYS = [
    ("paper", 3, 3, 1.0, 3),
    ("paper", 3, 3, 10.0, 3),
    ("paper", 3, 3, 1.0, 4),
    ("linear", 1, 3, 1.0, 2),
    ("linear", 1, 10, 1.0, 2),
    ("linear", 1, 10, 1.0, 4),
    ("sigmoid", 1, 10, 1.0, 4),
    ("linear", 1, 5, 1.0, 7),
    ("sigmoid", 2, 5, 1.0, 4),
    ("squared", 2, 3, 1.0, 2),
    ("squared", 3, 3, 1.0, 4),
    ("linear", 3, 10, 1.0, 4),
    ("squared", 3, 10, 1.0, 4),
]


def make_toy(
    kind: str, num_variables: int, num_categories: int, alpha: float, seed: int, catnat: bool
) -> tuple[Tensor, Cost]:
    """Scores ``(N, num_scores)`` and the cost of one-hot ``(S, R, N, K)``."""
    generator = torch.Generator().manual_seed(seed)
    if catnat:
        scores = torch.randn(num_variables, num_categories - 1, generator=generator)
    else:
        concentration = torch.full((num_variables, num_categories), alpha)
        gammas = torch._standard_gamma(concentration, generator)
        scores = (gammas / gammas.sum(-1, keepdim=True)).log()
    shape = (num_variables, num_categories)
    if kind == "paper":
        values = torch.arange(1, num_variables * num_categories + 1.0).reshape(shape)
        values = values * num_categories
    else:
        values = torch.randn(shape, generator=generator)

    def linear(z: Tensor) -> Tensor:
        return (z * values).sum((-2, -1))

    costs: dict[str, Cost] = {
        "paper": linear,
        "linear": linear,
        "squared": lambda z: linear(z) ** 2,
        "sigmoid": lambda z: torch.sigmoid(3 * linear(z)),
    }
    return scores, costs[kind]


def gradients(
    layers: list[tuple[DiscreteLatent, slice]], scores: Tensor, cost: Cost, replicates: int
) -> Tensor:
    """R gradient estimates ``(R, N * num_scores)``; each layer samples its slice of variables."""
    scores = scores.expand(replicates, *scores.shape).clone().requires_grad_(True)
    outputs = [layer(scores[:, variables]) for layer, variables in layers]
    total_cost = cost(torch.cat([out.z for out in outputs], dim=-2))
    sum(out.objective(total_cost).sum() for out in outputs).backward()
    return scores.grad.reshape(replicates, -1).double()


def one_layer(
    estimator: Estimator, num_categories: int, parameterization: Parameterization
) -> list[tuple[DiscreteLatent, slice]]:
    """Every variable sampled by one estimator."""
    return [(DiscreteLatent(num_categories, parameterization, estimator), slice(None))]


def split_layers(
    first: Estimator, rest: Estimator, num_categories: int, parameterization: Parameterization
) -> list[tuple[DiscreteLatent, slice]]:
    """The first variable sampled by ``first``, the others by ``rest``."""
    return [
        (DiscreteLatent(num_categories, parameterization, first), slice(0, 1)),
        (DiscreteLatent(num_categories, parameterization, rest), slice(1, None)),
    ]


def toy_row(toy: tuple, replicates: int, seed: int, catnat: bool) -> list[str]:
    """One line of the table."""
    kind, num_variables, num_categories, alpha, n = toy
    parameterization = Catnat() if catnat else Softmax()
    scores, cost = make_toy(kind, num_variables, num_categories, alpha, seed, catnat)

    def estimates(estimator: Estimator, count: int = replicates) -> Tensor:
        layers = one_layer(estimator, num_categories, parameterization)
        return gradients(layers, scores, cost, count)

    loo = estimates(LeaveOneOut(n))
    loo_variance = loo.var(0).sum()
    exact = estimates(Exact(), 1)[0]
    row = [f"{kind}, alpha {alpha:g}", str(num_variables), str(num_categories), str(n)]
    worst_bias = 0.0
    for estimator in (CARMS(n), DisARMTree(n) if n % 2 == 0 else None):
        if estimator is None:
            row.append("—")
            continue
        grads = estimates(estimator)
        standard_error = grads.std(0) / replicates**0.5 + 1e-6 * exact.abs().max()
        worst_bias = max(worst_bias, ((grads.mean(0) - exact).abs() / standard_error).max())
        row.append(f"{grads.var(0).sum() / loo_variance:.3f}")
    row.append(f"{worst_bias:.1f}")
    if num_variables == 1:
        return [*row, "—", "—"]
    first = slice(0, scores.shape[-1])  # the first variable's coordinates
    loo_first = loo[:, first].var(0).sum()
    for layers in (
        split_layers(CARMS(n), LeaveOneOut(n), num_categories, parameterization),
        split_layers(LeaveOneOut(n), CARMS(n), num_categories, parameterization),
    ):
        grads = gradients(layers, scores, cost, replicates)
        row.append(f"{grads[:, first].var(0).sum() / loo_first:.3f}")
    return row


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=200_000, help="R estimates per row")
    parser.add_argument("--parameterization", choices=["softmax", "catnat"], default="softmax")
    parser.add_argument("--seed", type=int, default=1, help="seed of the toys and the noise")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    header = [
        "toy",
        "N",
        "K",
        "n",
        "CARMS / LOO",
        "DisARMTree / LOO",
        "bias (SE)",
        "first variable, CARMS on it only",
        "CARMS on the others only",
    ]
    catnat = args.parameterization == "catnat"
    rows = [toy_row(toy, args.replicates, args.seed, catnat) for toy in TOYS]
    scores = "N(0, 1) scores" if catnat else "scores = log p"
    print(f"R = {args.replicates} per row, seed {args.seed}, {args.parameterization}, {scores}\n")
    print(markdown(header, rows))


if __name__ == "__main__":
    main()
