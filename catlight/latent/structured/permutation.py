"""Permutations: the perturbations sorted in increasing order (Plackett-Luce)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from catlight.latent._checks import check_int_at_least
from catlight.latent.structured.base import Structure, Trace, chain_trace

__all__ = ["Permutation"]


class Permutation(Structure):
    r"""An ordering of n items: ``argsort(E)``, distributed as Plackett-Luce.

    Step ``t`` chooses the item at position ``t`` among those not placed yet, so
    ``p(T) = prod_t exp(theta_{e_t}) / sum_{i not placed} exp(theta_i)``: high scores
    come first. Trace and permutation are the same thing (one trace per permutation).

    Args:
        num_items: n >= 2, the number of scores.

    Raises:
        ValueError: if ``num_items < 2``.

    Shapes:
        - scores: ``(*batch, n)``
        - trace: ``selected`` ``(*shape, n)``: the item at each position; ``active``
          ``(*shape, n, n)``
        - encode: ``(*shape, n, n)`` float32 permutation matrix ``P`` with
          ``P[t, i] = 1`` iff item ``i`` is at position ``t`` (``P @ x`` puts ``x`` in
          the sampled order)
    """

    def __init__(self, num_items: int) -> None:
        super().__init__()
        check_int_at_least("Permutation", "num_items", num_items, 2)
        self.num_scores = num_items

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_items={self.num_scores}"

    @property
    def log_num_traces(self) -> float:
        """``log n!``: one trace per permutation."""
        return math.lgamma(self.num_scores + 1)

    def trace(self, exponentials: Tensor) -> Trace:
        """Sort the perturbations in increasing order. See the class for shapes."""
        return chain_trace(exponentials.detach().argsort(-1), self.num_scores)

    def encode(self, trace: Trace) -> Tensor:
        """The permutation matrix, shape ``(*shape, n, n)``."""
        return torch.nn.functional.one_hot(trace.selected, self.num_scores).float()
