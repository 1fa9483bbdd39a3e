"""Every trace of a small structure, found by running its algorithm on every ordering of E.

The trace of a recursive argmin depends on the ordering of the perturbations only, and
every ordering has positive probability, so running the algorithm on all ``n!``
orderings (here the ranks ``1..n`` permuted) finds every trace of positive probability.
This does not use ``log_prob``, so tests can check that the traces' probabilities sum to 1.
"""

from __future__ import annotations

import itertools

import torch

from catlight.latent.structured import Structure, Trace


def all_traces(structure: Structure) -> Trace:
    """The distinct traces, stacked along a leading dimension ``U``."""
    num_items = structure.num_scores
    orderings = torch.tensor(list(itertools.permutations(range(1, num_items + 1))))
    traces = structure.trace(orderings.float())
    keys = {}
    for index in range(orderings.shape[0]):
        key = (
            tuple(traces.selected[index].tolist()),
            tuple(traces.active[index].flatten().tolist()),
        )
        keys.setdefault(key, index)
    return traces[torch.tensor(sorted(keys.values()))]


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
