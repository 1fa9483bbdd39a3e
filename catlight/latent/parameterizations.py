"""Parameterizations: how a network's scores become categorical log-probabilities.

A parameterization maps ``scores`` of shape ``(*batch, N, M)`` to normalized
``log_probs`` of shape ``(*batch, N, K)``, always in float32. ``M`` is
:meth:`Parameterization.num_scores` of ``K``: ``K`` for :class:`Softmax`, ``K - 1``
for :class:`Catnat`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from catlight.latent._checks import check_num_categories

__all__ = ["Catnat", "Parameterization", "Softmax"]


class Parameterization(nn.Module):
    """Base class: maps scores to normalized log-probabilities over K categories."""

    def num_scores(self, num_categories: int) -> int:
        """Number of scores the network must output for ``num_categories`` categories."""
        raise NotImplementedError

    def num_categories(self, num_scores: int) -> int:
        """Number of categories that ``num_scores`` scores describe."""
        raise NotImplementedError

    def forward(self, scores: Tensor) -> Tensor:
        """Normalized log-probabilities, computed in float32.

        Shapes:
            - scores: ``(*batch, M)`` with ``M = num_scores(K)``
            - output: ``(*batch, K)``, float32, ``logsumexp`` over the last dim is 0
        """
        raise NotImplementedError


class Softmax(Parameterization):
    """The usual parameterization: ``log p = log_softmax(scores)`` with K scores.

    Its Fisher information in the scores, ``diag(p) - p p^T``, is dense and singular.

    Example::

        >>> import torch
        >>> Softmax()(torch.zeros(3)).exp()
        tensor([0.3333, 0.3333, 0.3333])
    """

    def num_scores(self, num_categories: int) -> int:
        """K scores for K categories."""
        return num_categories

    def num_categories(self, num_scores: int) -> int:
        """K categories from K scores."""
        return num_scores

    def forward(self, scores: Tensor) -> Tensor:
        """Log-softmax in float32. Shapes: ``(*batch, K) -> (*batch, K)``."""
        return torch.log_softmax(scores.float(), dim=-1)


class _BalancedTree:
    """Index tables of a balanced full binary tree with K leaves, for vectorised lookups.

    The tree has depth ``D = ceil(log2 K)``. Levels ``0 .. D-2`` are full; at level
    ``D-1`` there are ``2^(D-1)`` nodes of which ``K - 2^(D-1)`` are internal (they
    split into two leaves at depth D) and the rest are leaves. The internal ones are
    chosen in bit-reversed order, so the leaf counts of any two sibling subtrees
    differ by at most one. Internal nodes are numbered breadth first, which is the
    order of the K - 1 scores; leaves are the categories, left to right.
    """

    def __init__(self, num_categories: int) -> None:
        depth = max(1, math.ceil(math.log2(num_categories)))
        last_width = 2 ** (depth - 1)
        num_split = num_categories - last_width
        order = sorted(range(last_width), key=lambda i: _bit_reverse(i, depth - 1))
        split = sorted(order[:num_split])
        is_split = [False] * last_width
        for node in split:
            is_split[node] = True

        parents, edges = [], []
        split_rank = 0
        for node in range(last_width):
            if is_split[node]:
                parents += [node, node]
                edges += [2 * split_rank, 2 * split_rank + 1]
                split_rank += 1
            else:
                parents.append(node)
                edges.append(2 * num_split)
        self.depth = depth
        self.num_full_levels = depth - 1
        self.num_last_internal = num_split
        # for every leaf: its parent at level D-1, and which (left/right) edge of the
        # last level's internal nodes leads to it (2 * num_split = none: a leaf at D-1)
        self.leaf_parent = torch.tensor(parents)
        self.leaf_edge = torch.tensor(edges)


def _bit_reverse(value: int, num_bits: int) -> int:
    result = 0
    for _ in range(num_bits):
        result = (result << 1) | (value & 1)
        value >>= 1
    return result


class Catnat(Parameterization):
    r"""Hierarchical-binary ("catnat") parameterization with K - 1 scores.

    Manenti & Alippi, *Beyond Softmax: A Natural Parameterization for Categorical
    Random Variables* (2025). Each internal node ``i`` of a balanced full binary tree
    with K leaves has a score ``s_i`` and goes right with probability
    ``a_i = act(s_i)``; a category's probability is the product of the branch
    probabilities on its path, computed as a sum of logs. The Fisher information in
    the scores is diagonal: ``G_ii = P(reach i) act'(s_i)^2 / (a_i (1 - a_i))``.

    Activations:

    - ``"sigmoid"``: ``a = sigmoid(s)``.
    - ``"natural"``: ``a = (1 + sin(pi (s - center) / width)) / 2`` on
      ``|s - center| <= width / 2``, 0 below and 1 above; its Fisher information is
      constant, ``P(reach i) (pi / width)^2``. Branch probabilities are kept in
      ``[1e-6, 1 - 1e-6]`` so that log-probabilities stay finite.

    Any ``K >= 2`` works, not only powers of two.

    Args:
        activation: ``"natural"`` or ``"sigmoid"``.
        center: ``C`` of the natural activation (where ``a = 1/2``).
        width: ``A`` of the natural activation (its support has this width).

    Raises:
        ValueError: if ``activation`` is unknown or ``width <= 0``.

    Shapes:
        - scores: ``(*batch, K - 1)``
        - output: ``(*batch, K)`` float32 log-probabilities

    Example::

        >>> import torch
        >>> Catnat()(torch.zeros(3)).exp()  # K = 4 categories from 3 scores
        tensor([0.2500, 0.2500, 0.2500, 0.2500])
    """

    _MIN_BRANCH = 1e-6

    def __init__(
        self,
        activation: Literal["natural", "sigmoid"] = "natural",
        center: float = 0.0,
        width: float = 2 * math.pi,
    ) -> None:
        super().__init__()
        if activation not in ("natural", "sigmoid"):
            raise ValueError(
                f"Catnat: activation must be 'natural' or 'sigmoid', got {activation!r}"
            )
        if not width > 0:
            raise ValueError(f"Catnat: width must be > 0, got {width}")
        self.activation = activation
        self.center = float(center)
        self.width = float(width)
        self._trees: dict[tuple[int, torch.device], _BalancedTree] = {}

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"activation={self.activation!r}, center={self.center}, width={self.width:.4g}"

    def num_scores(self, num_categories: int) -> int:
        """K - 1 scores for K categories."""
        return num_categories - 1

    def num_categories(self, num_scores: int) -> int:
        """K categories from K - 1 scores."""
        return num_scores + 1

    def branch_log_probs(self, scores: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probabilities of going left and right at each internal node.

        Shapes:
            - scores: ``(*batch, K - 1)``
            - output: two float32 tensors ``(*batch, K - 1)``: ``log(1 - a)``, ``log a``
        """
        scores = scores.float()
        if self.activation == "sigmoid":
            return F.logsigmoid(-scores), F.logsigmoid(scores)
        # (1 + sin x) / 2 = sin^2(x/2 + pi/4) and (1 - sin x) / 2 = cos^2(x/2 + pi/4)
        phase = math.pi * (scores - self.center) / self.width
        half_angle = phase.clamp(-math.pi / 2, math.pi / 2) / 2 + math.pi / 4
        margin = math.asin(math.sqrt(self._MIN_BRANCH))
        half_angle = half_angle.clamp(margin, math.pi / 2 - margin)
        return 2 * torch.log(torch.cos(half_angle)), 2 * torch.log(torch.sin(half_angle))

    def forward(self, scores: Tensor) -> Tensor:
        """Leaf log-probabilities, vectorised level by level (no loop over nodes)."""
        num_categories = scores.shape[-1] + 1
        check_num_categories(num_categories)
        tree = self._tree(num_categories, scores.device)
        log_left, log_right = self.branch_log_probs(scores)
        edges = torch.stack([log_left, log_right], dim=-1)  # [*batch, K-1, 2]
        log_probs = edges.new_zeros(*edges.shape[:-2], 1)
        start = 0
        for level in range(tree.num_full_levels):
            width = 2**level
            children = log_probs.unsqueeze(-1) + edges[..., start : start + width, :]
            log_probs = children.flatten(-2)
            start += width
        last_edges = torch.cat(
            [edges[..., start:, :].flatten(-2), edges.new_zeros(*edges.shape[:-2], 1)], dim=-1
        )
        return log_probs[..., tree.leaf_parent] + last_edges[..., tree.leaf_edge]

    def _tree(self, num_categories: int, device: torch.device) -> _BalancedTree:
        key = (num_categories, device)
        if key not in self._trees:
            tree = _BalancedTree(num_categories)
            tree.leaf_parent = tree.leaf_parent.to(device)
            tree.leaf_edge = tree.leaf_edge.to(device)
            self._trees[key] = tree
        return self._trees[key]
