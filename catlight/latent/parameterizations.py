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
from catlight.latent.binary_tree import BalancedTree

__all__ = ["Catnat", "Parameterization", "Softmax"]


class Parameterization(nn.Module):
    """Base class: maps scores to normalized log-probabilities over K categories.

    ``negative_infinity_masks``: whether a -inf score means "this category is
    impossible" (true when each score belongs to one category).
    """

    negative_infinity_masks = False

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

    negative_infinity_masks = True

    def num_scores(self, num_categories: int) -> int:
        """K scores for K categories."""
        return num_categories

    def num_categories(self, num_scores: int) -> int:
        """K categories from K scores."""
        return num_scores

    def forward(self, scores: Tensor) -> Tensor:
        """Log-softmax in float32. Shapes: ``(*batch, K) -> (*batch, K)``."""
        return torch.log_softmax(scores.float(), dim=-1)


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

    Any ``K >= 2`` works, not only powers of two. A score decides a branch, not a
    category, so it cannot mask with -inf: to remove categories, give
    :class:`~catlight.latent.DiscreteLatent` a ``mask``.

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
        self._trees: dict[tuple[int, torch.device], BalancedTree] = {}

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
        edges, _ = self._branches(scores.float())
        return edges[..., 0], edges[..., 1]

    def forward(self, scores: Tensor) -> Tensor:
        """Leaf log-probabilities, level by level, with a closed-form backward pass."""
        num_categories = scores.shape[-1] + 1
        check_num_categories(num_categories)
        tree = self._tree(num_categories, scores.device)
        return _CatnatLogProbs.apply(scores.float(), self, tree)

    def _branches(self, scores: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Branch log-probabilities and what :meth:`_branch_grad` needs.

        Shapes: ``(*batch, K - 1) -> (*batch, K - 1, 2)``: ``(log(1 - a), log a)``.
        """
        if self.activation == "sigmoid":
            log_right = F.logsigmoid(scores)
            return torch.stack([log_right - scores, log_right], dim=-1), (scores,)
        # (1 + sin x) / 2 = sin^2(x/2 + pi/4) and (1 - sin x) / 2 = cos^2(x/2 + pi/4)
        half_angle = (scores - self.center).mul_(math.pi / self.width)
        half_angle = half_angle.clamp_(-math.pi / 2, math.pi / 2).mul_(0.5).add_(math.pi / 4)
        margin = math.asin(math.sqrt(self._MIN_BRANCH))
        inside = (half_angle > margin) & (half_angle < math.pi / 2 - margin)
        half_angle = half_angle.clamp_(margin, math.pi / 2 - margin)
        edges = torch.stack([torch.cos(half_angle), torch.sin(half_angle)], dim=-1)
        return edges.log_().mul_(2), (half_angle, inside)

    def _branch_grad(self, grad_left: Tensor, grad_right: Tensor, *saved: Tensor) -> Tensor:
        """Gradient with respect to the scores, from those of ``log(1 - a)`` and ``log a``."""
        if self.activation == "sigmoid":
            (scores,) = saved
            # d log a / ds = 1 - a and d log(1 - a) / ds = -a
            return grad_right - (grad_left + grad_right) * torch.sigmoid(scores)
        half_angle, inside = saved
        # d/dh of 2 log sin h and 2 log cos h: 2 cot h, -2 tan h; dh/ds = pi / (2 width)
        tangent = torch.tan(half_angle)
        grad = (grad_right / tangent).sub_(grad_left * tangent)
        return grad.mul_(inside).mul_(math.pi / self.width)

    def _tree(self, num_categories: int, device: torch.device) -> BalancedTree:
        key = (num_categories, device)
        if key not in self._trees:
            self._trees[key] = BalancedTree(num_categories, device)
        return self._trees[key]


class _CatnatLogProbs(torch.autograd.Function):
    """Catnat's scores -> leaf log-probabilities, with the backward written out.

    Autograd through the level loop would keep every level's intermediate sums and
    zero-fill a gradient of the whole edge tensor per level; the closed form keeps
    only what the activation's derivative needs.
    """

    @staticmethod
    def forward(ctx, scores: Tensor, catnat: Catnat, tree: BalancedTree) -> Tensor:
        edges, saved = catnat._branches(scores)
        ctx.save_for_backward(*saved)
        ctx.catnat, ctx.tree = catnat, tree
        return tree.leaf_log_probs(edges)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        saved = ctx.saved_tensors
        grad_scores = saved[0].new_empty(saved[0].shape)
        for nodes, pairs in ctx.tree.edge_grads(grad.float()):
            level_saved = [tensor[..., nodes] for tensor in saved]
            grad_scores[..., nodes] = ctx.catnat._branch_grad(
                pairs[..., 0], pairs[..., 1], *level_saved
            )
        return grad_scores, None, None
