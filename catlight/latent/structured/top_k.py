"""Top-k subsets: the k smallest perturbations (k argmins without replacement)."""

from __future__ import annotations

import math

from torch import Tensor

from catlight.latent._checks import check_int_at_least
from catlight.latent.structured.base import Structure, Trace, chain_trace, selection_mask

__all__ = ["TopK"]


class TopK(Structure):
    r"""A subset of k of n items: the items with the k smallest perturbations.

    The trace is the ordered list of the k items (step ``t`` chooses among the items not
    chosen before), so ``k!`` traces build the same subset; ``log p(T)`` is that of
    Plackett-Luce stopped after k steps. Item ``i`` enters with higher probability the
    higher its score.

    Args:
        num_items: n >= 2, the number of scores.
        k: the subset size, ``1 <= k <= n``.

    Raises:
        ValueError: if ``num_items < 2`` or ``k`` is outside ``[1, num_items]``.

    Shapes:
        - scores: ``(*batch, n)``
        - trace: ``selected`` ``(*shape, k)`` (in order of choice), ``active``
          ``(*shape, k, n)``
        - encode: ``(*shape, n)`` k-hot float32 mask
    """

    def __init__(self, num_items: int, k: int) -> None:
        super().__init__()
        check_int_at_least("TopK", "num_items", num_items, 2)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num_items:
            raise ValueError(f"TopK: k must be an int in [1, num_items = {num_items}], got {k!r}")
        self.num_scores = num_items
        self.k = k

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_items={self.num_scores}, k={self.k}"

    @property
    def log_num_traces(self) -> float:
        """``log(n! / (n - k)!)``: the ordered selections of k of n items."""
        return math.lgamma(self.num_scores + 1) - math.lgamma(self.num_scores - self.k + 1)

    def trace(self, exponentials: Tensor) -> Trace:
        """The k smallest perturbations in increasing order. See the class for shapes."""
        selected = exponentials.detach().topk(self.k, dim=-1, largest=False).indices
        return chain_trace(selected, self.num_scores)

    def encode(self, trace: Trace) -> Tensor:
        """The k-hot mask of the subset, shape ``(*shape, n)``."""
        return selection_mask(trace.selected, self.num_scores)
