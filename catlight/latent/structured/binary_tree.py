"""Binary trees over a sequence: split at the argmin, recurse on both sides."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from catlight.latent._checks import check_int_at_least
from catlight.latent.structured.base import Structure, Trace

__all__ = ["BinaryTree"]


class BinaryTree(Structure):
    r"""A binary tree whose in-order traversal is the sequence ``0, ..., n - 1``.

    The recursive split: the item with the smallest perturbation in a span of the
    sequence becomes the root of that span, and the spans to its left and right are
    split the same way (the Cartesian tree of ``E``). Each item is chosen once, at the
    step whose active set is its span, so
    ``log p(T) = sum_i [theta_i - logsumexp_{j in span(i)} theta_j]`` and there is one
    trace per tree (the steps are listed by depth, then position, an order that depends
    on the tree only). All ``n`` spans are found at once from pairwise comparisons
    (``O(n^2)`` per tree, no Python loop): the span of ``i`` reaches up to the nearest
    smaller perturbation on each side.

    Args:
        num_items: n >= 2, the length of the sequence (and the number of scores).

    Raises:
        ValueError: if ``num_items < 2``.

    Shapes:
        - scores: ``(*batch, n)``
        - trace: ``selected`` ``(*shape, n)`` items by depth then position, ``active``
          ``(*shape, n, n)`` the span of each step's item
        - encode: ``(*shape, n, n)`` float32 parent matrix: row ``i`` is the one-hot of
          the parent of item ``i``, all zeros for the root
    """

    def __init__(self, num_items: int) -> None:
        super().__init__()
        check_int_at_least("BinaryTree", "num_items", num_items, 2)
        self.num_scores = num_items

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_items={self.num_scores}"

    @property
    def log_num_traces(self) -> float:
        """``log C_n = log((2n)! / ((n + 1)! n!))``: one trace per tree, Catalan many."""
        n = self.num_scores
        return math.lgamma(2 * n + 1) - math.lgamma(n + 2) - math.lgamma(n + 1)

    def trace(self, exponentials: Tensor) -> Trace:
        """The Cartesian tree of the perturbations. See the class for shapes."""
        weights = exponentials.detach()
        n = self.num_scores
        position = torch.arange(n, device=weights.device)
        smaller = weights.unsqueeze(-2) < weights.unsqueeze(-1)  # [..., i, j]: E_j < E_i
        before = position < position.unsqueeze(-1)  # [i, j]: j < i
        after = position > position.unsqueeze(-1)
        left = torch.where(smaller & before, position, -1).amax(-1, keepdim=True)
        right = torch.where(smaller & after, position, n).amin(-1, keepdim=True)
        span = (position > left) & (position < right)  # (*, n, n): span of item i
        depth = span.sum(-2) - 1  # how many proper ancestors each item has
        selected = (depth * n + position).argsort(-1)
        active = span.gather(-2, selected.unsqueeze(-1).expand(span.shape))
        return Trace(selected, active)

    def encode(self, trace: Trace) -> Tensor:
        """The parent matrix, shape ``(*shape, n, n)``.

        The parent of a step's item is the item of the smallest span that strictly
        contains its own.
        """
        active, selected = trace.active, trace.selected
        n = self.num_scores
        chosen = selected.unsqueeze(-2).expand(active.shape)
        contains = active.gather(-1, chosen)  # [s, t]: span of step s holds item of step t
        contains &= ~torch.eye(n, dtype=torch.bool, device=active.device)
        span_size = active.sum(-1, keepdim=True).float()  # (*, T, 1), over s
        parent_step = span_size.masked_fill(~contains, torch.inf).argmin(-2)  # (*, T)
        parent_item = selected.gather(-1, parent_step)
        has_parent = contains.any(-2, keepdim=True).transpose(-1, -2).float()
        rows = torch.nn.functional.one_hot(parent_item, n).float() * has_parent
        return torch.zeros_like(rows).scatter_(-2, selected.unsqueeze(-1).expand(rows.shape), rows)
