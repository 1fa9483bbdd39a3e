"""Every trace of a small structure, found by running its algorithm on every ordering of E.

The trace of a recursive argmin depends on the ordering of the perturbations only, and
every ordering has positive probability, so running the algorithm on all ``n!``
orderings (here the ranks ``1..n`` permuted) finds every trace of positive probability.
Items no step can choose (an arborescence's edges into the root) keep the last ranks, so
K4's arborescences take ``9!`` orderings, not ``12!``.
This does not use ``log_prob``, so tests can check that the traces' probabilities sum to 1.
"""

from __future__ import annotations

import functools
import itertools
import math

import torch

from catlight.latent.structured import Arborescence, Structure, Trace


def all_traces(structure: Structure) -> Trace:
    """The distinct traces, stacked along a leading dimension ``U``."""
    return _traces_of(type(structure), structure.extra_repr(), structure)


@functools.lru_cache(maxsize=8)
def _traces_of(kind: type, settings: str, structure: Structure) -> Trace:
    """:func:`all_traces`, kept for structures of the same class and settings."""
    free = _free_items(structure)
    orderings = torch.arange(1.0, structure.num_scores + 1).repeat(math.factorial(len(free)), 1)
    ranks = torch.tensor(list(itertools.permutations(range(1, len(free) + 1))), dtype=torch.float)
    orderings[:, free] = ranks
    traces = structure.trace(orderings)
    keys = torch.cat([traces.selected, traces.active.flatten(-2).long()], -1)
    _, inverse = torch.unique(keys, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), len(inverse)).scatter_reduce(
        0, inverse, torch.arange(len(inverse)), "amin"
    )
    return traces[first.sort().values]


def _free_items(structure: Structure) -> torch.Tensor:
    """The items some step may choose; the others (edges into a root) rank last."""
    if isinstance(structure, Arborescence):
        return (structure.edges[1] != structure.root).nonzero().squeeze(-1)
    return torch.arange(structure.num_scores)


def structure_keys(structure: Structure, trace: Trace) -> list[tuple[float, ...]]:
    """A hashable key of the structure each trace builds (its encoding, flattened)."""
    encoded = structure.encode(trace)
    return [tuple(row.tolist()) for row in encoded.flatten(1)]


def structure_probabilities(structure: Structure, scores: torch.Tensor) -> dict:
    """``{structure key: probability}``: trace probabilities summed per structure."""
    traces = all_traces(structure)
    probs = structure.log_prob(scores, traces).exp()
    totals: dict = {}
    for key, prob in zip(structure_keys(structure, traces), probs.tolist(), strict=True):
        totals[key] = totals.get(key, 0.0) + prob
    return totals


def exact_gradient(structure: Structure, scores: torch.Tensor, cost) -> torch.Tensor:
    """``d/dscores sum_T p(T) cost(encode(T))`` by enumerating the traces."""
    scores = scores.detach().clone().requires_grad_()
    traces = all_traces(structure)
    expectation = (structure.log_prob(scores, traces).exp() * cost(structure.encode(traces))).sum()
    (grad,) = torch.autograd.grad(expectation, scores)
    return grad
