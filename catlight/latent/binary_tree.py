"""A balanced full binary tree with K leaves, as index tables for vectorised passes."""

from __future__ import annotations

import math

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

    Both passes loop over the levels, never over nodes, and touch each node's two
    edges once per pass: going down, a level's path sums are its parents' plus their
    edges, interleaved (children ``2j`` and ``2j + 1`` of node ``j``); going up, a
    node's gradient is the sum of its two children's. When K is not a power of
    two, the leaves of the last level are gathered through index tables.

    ``right_fractions`` holds, per internal node, the share of the leaves below it
    that lie below its right child: 1/2 everywhere for a perfect tree, and within
    [1/3, 2/3] for any K (sibling subtrees differ by at most one leaf).

    Args:
        num_categories: K >= 2.
        device: where the index tables live.
    """

    def __init__(self, num_categories: int, device: torch.device | str = "cpu") -> None:
        depth = max(1, math.ceil(math.log2(num_categories)))
        last_width = 2 ** (depth - 1)
        num_split = num_categories - last_width
        order = sorted(range(last_width), key=lambda node: _bit_reverse(node, depth - 1))
        split_nodes = set(order[:num_split])

        # per node of level D-1: the leaves below it (second = K, an appended zero, for a
        # node that is a leaf itself); per leaf: its parent at level D-1 and its edge in
        # cat([left of split nodes, right of split nodes, 0])
        first_leaf, second_leaf = [], []
        leaf_parent, leaf_edge, left_leaf, right_leaf = [], [], [], []
        for node in range(last_width):
            leaf = len(leaf_parent)
            first_leaf.append(leaf)
            if node in split_nodes:
                second_leaf.append(leaf + 1)
                leaf_parent += [node, node]
                leaf_edge += [len(left_leaf), num_split + len(left_leaf)]
                left_leaf.append(leaf)
                right_leaf.append(leaf + 1)
            else:
                second_leaf.append(num_categories)
                leaf_parent.append(node)
                leaf_edge.append(2 * num_split)

        # every leaf's path as indices into the flattened (left, right) edges of the K - 1
        # nodes (edge 2i + 1 goes right from node i), padded with 2(K - 1), a zero
        rank = {node: index for index, node in enumerate(sorted(split_nodes))}
        path_edges = []
        for leaf, node in enumerate(leaf_parent):
            path = []
            if node in split_nodes:
                path.append(2 * (last_width - 1 + rank[node]) + (leaf == second_leaf[node]))
            heap = last_width - 1 + node  # full levels: score index = heap index
            while heap > 0:
                parent = (heap - 1) // 2
                path.append(2 * parent + (heap == 2 * parent + 2))
                heap = parent
            path_edges.append(path + [2 * (num_categories - 1)] * (depth - len(path)))

        def table(values: list[int]) -> Tensor:
            return torch.tensor(values, dtype=torch.long, device=device)

        self.num_categories = num_categories
        self.is_perfect = num_split == last_width
        # levels summed level by level: all of them for a perfect tree, else 0 .. D-2
        self.num_levels = depth if self.is_perfect else depth - 1
        self.last_level_start = last_width - 1  # breadth-first index of level D-1's first node
        self.leaf_parent, self.leaf_edge = table(leaf_parent), table(leaf_edge)
        self.first_leaf, self.second_leaf = table(first_leaf), table(second_leaf)
        self.left_leaf, self.right_leaf = table(left_leaf), table(right_leaf)
        self.path_edges = table(path_edges)  # (K, D)
        self.right_fractions = _right_fractions(path_edges, num_categories).to(device)

    def leaf_log_probs(self, edges: Tensor) -> Tensor:
        """Sum the branch log-probabilities along every root-to-leaf path, differentiably.

        The path-gather formulation: one gather of each leaf's edges along its path
        and a sum (its backward is autograd's scatter-add). Simple, and the reference
        for :meth:`path_sums`, which gives the same values without autograd and in
        less memory.

        Shapes:
            - edges: ``(*, K - 1, 2)``, (left, right) log-probabilities per node
            - output: ``(*, K)``
        """
        flat = torch.cat([edges.flatten(-2), edges.new_zeros(*edges.shape[:-2], 1)], -1)
        paths = flat[..., self.path_edges.flatten()].unflatten(-1, self.path_edges.shape)
        return paths.sum(-1)

    def path_sums(self, left: Tensor, right: Tensor) -> Tensor:
        """Leaf log-probabilities from the left and right branch log-probabilities.

        Level by level: a level's path sums are its parents' plus their edges,
        interleaved (children ``2j`` and ``2j + 1`` of node ``j``). No autograd: the
        backward is :meth:`edge_grads`. Out-of-place throughout, so ``torch.compile``
        can fuse the passes (``Catnat(compile=True)``).

        Shapes:
            - left, right: ``(*, K - 1)``, ``log(1 - a)`` and ``log a`` per node
            - output: ``(*, K)``
        """
        level = torch.stack([left[..., 0], right[..., 0]], dim=-1)
        for depth in range(1, self.num_levels):
            width = 2**depth
            nodes = slice(width - 1, 2 * width - 1)
            parents = level[..., :width]
            children = [parents + left[..., nodes], parents + right[..., nodes]]
            level = torch.stack(children, dim=-1).flatten(-2)
        if self.is_perfect:
            return level
        split = slice(self.last_level_start, None)
        zero = left.new_zeros(*left.shape[:-1], 1)
        last = torch.cat([left[..., split], right[..., split], zero], -1)
        parents = level[..., : self.last_level_start + 1]
        return _gather(parents, self.leaf_parent) + _gather(last, self.leaf_edge)

    def edge_grads(self, grad: Tensor) -> tuple[Tensor, Tensor]:
        """The backward of :meth:`path_sums`: each edge's gradient sums ``grad`` below it.

        Shapes:
            - grad: ``(*, K)``, gradient with respect to the leaf log-probabilities
            - output: gradients of ``left`` and ``right``, each ``(*, K - 1)``
        """
        lefts, rights = [], []  # per level, deepest first
        node_grad = grad
        if not self.is_perfect:
            lefts.append(_gather(grad, self.left_leaf))
            rights.append(_gather(grad, self.right_leaf))
            padded = torch.cat([grad, grad.new_zeros(*grad.shape[:-1], 1)], dim=-1)
            node_grad = _gather(padded, self.first_leaf) + _gather(padded, self.second_leaf)
        for depth in reversed(range(self.num_levels)):
            pairs = node_grad.unflatten(-1, (-1, 2))
            lefts.append(pairs[..., 0])
            rights.append(pairs[..., 1])
            if depth:
                node_grad = pairs[..., 0] + pairs[..., 1]
        return torch.cat(lefts[::-1], -1), torch.cat(rights[::-1], -1)


def _right_fractions(path_edges: list[list[int]], num_categories: int) -> Tensor:
    """Per internal node, the fraction of its leaves below its right edge, in float64.

    Counts, over every leaf's path, the edges taken at each node (edge ``2i + 1`` goes
    right from node ``i``; ``2(K - 1)`` pads a short path).

    Shapes: output ``(K - 1,)``.
    """
    counts = [0] * (2 * num_categories - 1)
    for path in path_edges:
        for edge in path:
            counts[edge] += 1
    left, right = counts[0:-1:2], counts[1:-1:2]
    fractions = [
        on_right / (on_left + on_right) for on_left, on_right in zip(left, right, strict=True)
    ]
    return torch.tensor(fractions, dtype=torch.float64)


def _gather(values: Tensor, index: Tensor) -> Tensor:
    """``values[..., index]``: a gather, several times faster than it on CPU.

    Shapes: ``(*, M), (L,) -> (*, L)``.
    """
    return values.gather(-1, index.expand(*values.shape[:-1], -1))


def _bit_reverse(value: int, num_bits: int) -> int:
    result = 0
    for _ in range(num_bits):
        result = (result << 1) | (value & 1)
        value >>= 1
    return result
