"""A balanced full binary tree with K leaves, as index tables for vectorised passes."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = ["BalancedTree"]


class BalancedTree:
    """The tree behind :class:`~catlight.latent.Catnat`: K leaves, K - 1 internal nodes.

    The tree has depth ``D = ceil(log2 K)``. Levels ``0 .. D-2`` are full; at level
    ``D-1`` there are ``2^(D-1)`` nodes of which ``K - 2^(D-1)`` are internal (they
    split into two leaves at depth D) and the rest are leaves. The internal ones are
    chosen in bit-reversed order, so the leaf counts of any two sibling subtrees
    differ by at most one. Internal nodes are numbered breadth first (the order of
    the K - 1 scores); leaves are the categories, left to right.

    Both passes loop over the ``D`` levels, never over nodes.

    Args:
        num_categories: K >= 2.
        device: where the index tables live.
    """

    def __init__(self, num_categories: int, device: torch.device | str = "cpu") -> None:
        depth = max(1, math.ceil(math.log2(num_categories)))
        last_width = 2 ** (depth - 1)
        num_split = num_categories - last_width
        order = sorted(range(last_width), key=lambda node: _bit_reverse(node, depth - 1))
        is_split = [False] * last_width
        for node in order[:num_split]:
            is_split[node] = True

        parents, edges = [], []
        rank = 0  # rank of a split node among the split nodes of level D-1
        for node in range(last_width):
            if is_split[node]:
                parents += [node, node]
                edges += [2 * rank, 2 * rank + 1]
                rank += 1
            else:
                parents.append(node)
                edges.append(2 * num_split)
        self.num_categories = num_categories
        self.num_full_levels = depth - 1
        self.last_level_start = last_width - 1  # breadth-first index of level D-1's first node
        self.is_perfect = num_split == last_width
        # every leaf's parent at level D-1, and the last-level edge that leads to it
        # (2 * num_split, an appended zero, for a leaf at depth D-1)
        self.leaf_parent = torch.tensor(parents, device=device)
        self.leaf_edge = torch.tensor(edges, device=device)
        # the leaf below each last-level edge (for the backward pass)
        split_leaves = [leaf for leaf, edge in enumerate(edges) if edge < 2 * num_split]
        self.edge_leaf = torch.tensor(split_leaves, device=device)
        self.last_width = last_width

    def leaf_log_probs(self, edges: Tensor) -> Tensor:
        """Sum the branch log-probabilities along every root-to-leaf path.

        Shapes:
            - edges: ``(*, K - 1, 2)``, (left, right) log-probabilities per node
            - output: ``(*, K)``
        """
        log_probs = edges.new_zeros(*edges.shape[:-2], 1)
        for level_edges in self._levels(edges):
            log_probs = (log_probs.unsqueeze(-1) + level_edges).flatten(-2)
        if self.is_perfect:
            return log_probs
        last = edges[..., self.last_level_start :, :].flatten(-2)
        last = torch.cat([last, last.new_zeros(*last.shape[:-1], 1)], dim=-1)
        return log_probs.index_select(-1, self.leaf_parent) + last.index_select(-1, self.leaf_edge)

    def edge_grads(self, grad: Tensor) -> Iterator[tuple[slice, Tensor]]:
        """The backward of :meth:`leaf_log_probs`, one level at a time, bottom up.

        Each edge's gradient is the sum of ``grad`` over the leaves below it.

        Shapes:
            - grad: ``(*, K)``, gradient with respect to the leaf log-probabilities
            - yields: ``(nodes, pairs)``: the slice of the level's internal nodes among
              the K - 1, and their edges' gradients ``(*, level width, 2)``
        """
        if self.is_perfect:
            node_grad = grad
        else:
            yield (
                slice(self.last_level_start, self.num_categories - 1),
                grad.index_select(-1, self.edge_leaf).unflatten(-1, (-1, 2)),
            )
            node_grad = grad.new_zeros(*grad.shape[:-1], self.last_width)
            node_grad.index_add_(-1, self.leaf_parent, grad)
        while node_grad.shape[-1] > 1:
            pairs = node_grad.unflatten(-1, (-1, 2))
            width = pairs.shape[-2]
            yield slice(width - 1, 2 * width - 1), pairs
            node_grad = pairs.sum(-1)

    def _levels(self, edges: Tensor) -> list[Tensor]:
        """The edges of the full levels (all levels when K is a power of two)."""
        num_levels = self.num_full_levels + (1 if self.is_perfect else 0)
        sizes = [2**level for level in range(num_levels)]
        return list(edges.split([*sizes, edges.shape[-2] - sum(sizes)], dim=-2))[:num_levels]


def _bit_reverse(value: int, num_bits: int) -> int:
    result = 0
    for _ in range(num_bits):
        result = (result << 1) | (value & 1)
        value >>= 1
    return result
