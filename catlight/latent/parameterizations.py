"""Parameterizations: how a network's scores become categorical log-probabilities.

A parameterization maps ``scores`` of shape ``(*batch, N, M)`` to normalized
``log_probs`` of shape ``(*batch, N, K)``, always in float32. ``M`` is
:meth:`Parameterization.num_scores` of ``K``: ``K`` for :class:`Softmax`, ``K - 1``
for :class:`Catnat`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
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
    ``a_i = act(s_i + o_i)``; a category's probability is the product of the branch
    probabilities on its path, computed as a sum of logs. The Fisher information in
    the scores is diagonal: ``G_ii = P(reach i) act'(s_i + o_i)^2 / (a_i (1 - a_i))``.

    The constant offset ``o_i`` makes ``a_i`` at ``s_i = 0`` (``s_i = center`` for the
    natural activation) the share of node ``i``'s leaves that lie to its right, so
    that every category gets ``1 / K`` there. When K is a power of two every share is
    1/2 and every offset 0; otherwise the shares lie in [1/3, 2/3].
    ``uniform_start=False`` drops the offsets: zero scores then give ``2^-depth`` per
    leaf, the map of catlight's Catnat before the offsets (a module pickled before
    them keeps it when loaded).

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
        compile: run the forward pass (activation and sums down the tree) and the
            backward pass through ``torch.compile``, one fused kernel each (about half
            the time at K = 1024 on a CPU). Each new input shape compiles once, which
            takes seconds to a minute and needs a C++ compiler on CPU (kernels
            specialised to a shape run faster than shape-generic ones). Off by default.
        uniform_start: offset each node so that zero scores mean uniform probabilities
            for every K (only changes anything when K is not a power of two).

    Raises:
        ValueError: if ``activation`` is unknown or ``width <= 0``.

    Shapes:
        - scores: ``(*batch, K - 1)``
        - output: ``(*batch, K)`` float32 log-probabilities

    Example::

        >>> import torch
        >>> Catnat()(torch.zeros(3)).exp()  # K = 4 categories from 3 scores
        tensor([0.2500, 0.2500, 0.2500, 0.2500])
        >>> Catnat()(torch.zeros(2)).exp()  # K = 3
        tensor([0.3333, 0.3333, 0.3333])
    """

    _MIN_BRANCH = 1e-6
    # the half angle at which a branch's probability sin^2 reaches _MIN_BRANCH
    _MIN_ANGLE = math.asin(math.sqrt(_MIN_BRANCH))

    def __init__(
        self,
        activation: Literal["natural", "sigmoid"] = "natural",
        center: float = 0.0,
        width: float = 2 * math.pi,
        compile: bool = False,
        uniform_start: bool = True,
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
        self.compile = compile
        self.uniform_start = uniform_start
        self._trees: dict[tuple[int, torch.device], tuple[BalancedTree, Tensor | None]] = {}
        self._half_angles: dict[torch.device, tuple[Tensor, Tensor]] = {}  # K = 2's

    def __setstate__(self, state: dict) -> None:
        """Unpickle; a Catnat pickled before the offsets existed keeps its map without them."""
        super().__setstate__({"uniform_start": False, **state, "_trees": {}, "_half_angles": {}})

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return (
            f"activation={self.activation!r}, center={self.center}, width={self.width:.4g}, "
            f"compile={self.compile}, uniform_start={self.uniform_start}"
        )

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
        _, offsets = self._tree(scores.shape[-1] + 1, scores.device)
        return _CatnatBranches.apply(scores.float(), self, offsets)

    def forward(self, scores: Tensor) -> Tensor:
        """Leaf log-probabilities, level by level, with a closed-form backward pass.

        K = 2 with the natural activation (uncompiled) is one node: computed directly,
        differentiated by autograd (:meth:`_single_branch`).
        """
        num_categories = scores.shape[-1] + 1
        check_num_categories(num_categories)
        if num_categories == 2 and self.activation == "natural" and not self.compile:
            return self._single_branch(scores.float())
        tree, offsets = self._tree(num_categories, scores.device)
        if torch.is_grad_enabled() and scores.requires_grad:
            return _CatnatLogProbs.apply(scores.float(), self, tree, offsets)
        leaf_log_probs = _kernel(Catnat._leaf_log_probs, self.compile)
        return leaf_log_probs(self, scores.float(), tree, offsets, need_grad=False)[0]

    def _single_branch(self, scores: Tensor) -> Tensor:
        """K = 2 with the natural activation: the root's two branches, through autograd.

        With the phase ``x``, ``1 - a = sin^2 g`` and ``a = sin^2 h`` for the half angles
        ``g = pi/4 - x/2`` and ``h = pi/4 + x/2``. Each angle is computed from the score
        (never as ``pi/2`` minus the other, so a small one keeps its accuracy) and
        clamped so that both branches stay in ``[1e-6, 1 - 1e-6]``, where the gradient
        is zero. A handful of operations on ``2 B N`` numbers: the general kernel's
        fold and autograd function cost more than the arithmetic at this size (a policy
        with two actions calls this once per environment step).

        Shapes: ``(*, 1) -> (*, 2)``.
        """
        if scores.device not in self._half_angles:
            half_slope = math.pi / self.width / 2
            middle = math.pi / 4 + half_slope * self.center  # g at s = 0
            self._half_angles[scores.device] = (
                torch.tensor([middle, math.pi / 2 - middle], device=scores.device),
                torch.tensor([-half_slope, half_slope], device=scores.device),
            )
        at_zero, slopes = self._half_angles[scores.device]
        margin = Catnat._MIN_ANGLE
        angles = torch.addcmul(at_zero, slopes, scores).clamp(margin, math.pi / 2 - margin)
        return angles.sin().square().log()

    def _branches(
        self, scores: Tensor, offsets: Tensor | None, need_grad: bool = True
    ) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        """``log(1 - a)``, ``log a`` and what :meth:`_branch_grad` needs, elementwise.

        ``offsets`` are :meth:`_tree`'s: added to the scores for the sigmoid, the
        natural activation's phase at a zero score (center included) for it.
        """
        if self.activation == "sigmoid":
            return _sigmoid_branches(scores, offsets)
        return _natural_branches(scores, self.center, self.width, offsets, need_grad)

    def _branch_grad(self, grad_left: Tensor, grad_right: Tensor, *saved: Tensor) -> Tensor:
        """Gradient with respect to the scores, from those of ``log(1 - a)`` and ``log a``."""
        if self.activation == "sigmoid":
            return _sigmoid_branch_grad(grad_left, grad_right, *saved)
        return _natural_branch_grad(grad_left, grad_right, *saved)

    def _leaf_log_probs(
        self, scores: Tensor, tree: BalancedTree, offsets: Tensor | None, need_grad: bool = True
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The forward pass: leaf log-probabilities and what :meth:`_score_grad` needs."""
        left, right, saved = self._branches(scores, offsets, need_grad)
        return tree.path_sums(left, right), saved

    def _score_grad(self, grad: Tensor, tree: BalancedTree, *saved: Tensor) -> Tensor:
        """The backward pass: the scores' gradient from the leaf log-probabilities'."""
        grad_left, grad_right = tree.edge_grads(grad)
        return self._branch_grad(grad_left, grad_right, *saved)

    def _tree(
        self, num_categories: int, device: torch.device
    ) -> tuple[BalancedTree, Tensor | None]:
        """The tree of K leaves and the per-node offsets the kernels take, built once.

        Offsets are None where they would all be zero (a power of two, or
        ``uniform_start=False``). Else, with ``r`` the node's share of leaves on its
        right: ``logit(r)`` for the sigmoid; for the natural activation the phase
        ``asin(2r - 1) - pi center / width`` that ``s = 0`` maps to, ``|asin(2r - 1)|
        <= asin(1/3)``, well inside the support's ``pi / 2``.

        Shapes: offsets ``(K - 1,)``, float32.
        """
        key = (num_categories, device)
        if key not in self._trees:
            tree = BalancedTree(num_categories, device)
            offsets = None
            if self.uniform_start and not tree.is_perfect:
                share = tree.right_fractions
                if self.activation == "sigmoid":
                    offsets = torch.logit(share)
                else:
                    offsets = torch.asin(2 * share - 1) - math.pi * self.center / self.width
                offsets = offsets.float()
            self._trees[key] = (tree, offsets)
        return self._trees[key]


class _CatnatLogProbs(torch.autograd.Function):
    """Catnat's scores -> leaf log-probabilities, with the backward written out.

    The branch log-probabilities are summed down the levels and the gradient summed
    back up them (:class:`BalancedTree`); the activation's derivative is then applied
    once to all nodes.
    """

    @staticmethod
    def forward(
        ctx, scores: Tensor, catnat: Catnat, tree: BalancedTree, offsets: Tensor | None
    ) -> Tensor:
        leaf_log_probs, saved = _kernel(Catnat._leaf_log_probs, catnat.compile)(
            catnat, scores, tree, offsets
        )
        ctx.save_for_backward(*saved)
        ctx.catnat, ctx.tree = catnat, tree
        return leaf_log_probs

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        score_grad = _kernel(Catnat._score_grad, ctx.catnat.compile)
        return score_grad(ctx.catnat, grad.float(), ctx.tree, *ctx.saved_tensors), None, None, None


class _CatnatBranches(torch.autograd.Function):
    """Scores -> (``log(1 - a)``, ``log a``) per node, with the activation's backward."""

    @staticmethod
    def forward(
        ctx, scores: Tensor, catnat: Catnat, offsets: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        left, right, saved = _kernel(Catnat._branches, catnat.compile)(catnat, scores, offsets)
        ctx.save_for_backward(*saved)
        ctx.catnat = catnat
        return left, right

    @staticmethod
    def backward(
        ctx, grad_left: Tensor | None, grad_right: Tensor | None
    ) -> tuple[Tensor, None, None]:
        saved = ctx.saved_tensors
        # copies: the activation's backward overwrites them
        grads = [
            torch.zeros_like(saved[0]) if grad is None else grad.float().clone()
            for grad in (grad_left, grad_right)
        ]
        branch_grad = _kernel(Catnat._branch_grad, ctx.catnat.compile)
        return branch_grad(ctx.catnat, *grads, *saved), None, None


def _natural_branches(
    scores: Tensor,
    center: float,
    width: float,
    phase_offsets: Tensor | None = None,
    need_grad: bool = True,
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """The natural activation's ``log(1 - a)``, ``log a`` with three transcendental calls.

    With the half angle ``h = x/2 + pi/4`` (``x`` the phase), ``a = sin^2 h`` and
    ``1 - a = cos^2 h``. Folding ``h`` below ``pi/4`` (``f = min(h, pi/2 - h)``) and
    writing ``t = tan f`` in (0, 1], the larger branch has log-probability
    ``-log(1 + t^2)`` and the smaller ``log t^2 - log(1 + t^2)``: one ``tan``, one
    ``log`` and one ``log1p``, all well conditioned, instead of ``sin``, ``cos`` and two
    ``log``. ``f`` is clamped so that both branches stay in ``[1e-6, 1 - 1e-6]``;
    outside that range (and outside the activation's support) the gradient is zero.
    In place wherever possible and with float masks (a select, or arithmetic with a
    bool tensor, is several times slower on CPU), in few operations (small batches
    cost one dispatch per operation). ``need_grad=False`` skips what only the
    backward needs. ``phase_offsets``, one per node, replace the center: the phase is
    then ``s pi / width + phase_offset`` (one fused operation, like the scaling alone).

    Shapes: ``(*, M), (M,) -> (*, M), (*, M)`` and the saved tensors.
    """
    margin = Catnat._MIN_ANGLE
    slope = math.pi / width
    if phase_offsets is not None:
        phase = torch.add(phase_offsets, scores, alpha=slope)
    elif center == 0:
        phase = scores * slope
    else:
        phase = (scores - center) * slope
    phase = phase.clamp_(-math.pi / 2, math.pi / 2)
    folded = torch.gt(phase, 0, out=torch.empty_like(phase))  # h > pi/4: a > 1/2
    folded_angle = phase.abs_().mul_(-0.5).add_(math.pi / 4)  # min(h, pi/2 - h)
    saved: tuple[Tensor, ...] = ()
    if need_grad:
        # the gradient's factor: 0 where clamped, the sign of the fold, dh/ds times 2
        factor = torch.gt(folded_angle, margin, out=torch.empty_like(phase))
        factor = factor.mul_(folded.mul(-2 * slope).add_(slope))
    tangent = folded_angle.clamp_(min=margin).tan_()
    squared = tangent.square()
    larger = torch.log1p(squared).neg_()
    difference = squared.log_()  # smaller - larger
    left = torch.addcmul(larger, folded, difference)
    right = difference.add_(larger, alpha=2).sub_(left)
    if need_grad:
        saved = (tangent, folded, factor)
    return left, right, saved


def _natural_branch_grad(
    grad_left: Tensor, grad_right: Tensor, tangent: Tensor, folded: Tensor, factor: Tensor
) -> Tensor:
    """``dL/ds`` of the natural activation: ``(g_right cot h - g_left tan h) pi / width``.

    ``d/dh`` of ``2 log sin h`` and ``2 log cos h`` are ``2 cot h`` and ``-2 tan h``, and
    ``dh/ds = pi / (2 width)``. Unfolded, ``tan h = t``: ``g_right / t - g_left t``;
    folded, ``tan h = 1 / t``: the same with the two gradients swapped, negated.
    Overwrites ``grad_left`` and ``grad_right``.
    """
    swap = torch.sub(grad_left, grad_right).mul_(folded)
    over_tangent, times_tangent = grad_right.add_(swap), grad_left.sub_(swap)
    return over_tangent.div_(tangent).sub_(times_tangent.mul_(tangent)).mul_(factor)


def _sigmoid_branches(
    scores: Tensor, offsets: Tensor | None = None
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """``log(1 - a) = log a - u`` and ``log a = logsigmoid(u)``, ``u = s + offset``.

    Shapes: ``(*, M), (M,) -> (*, M), (*, M)`` and the saved ``u``.
    """
    shifted = scores if offsets is None else scores + offsets
    log_right = F.logsigmoid(shifted)
    return log_right - shifted, log_right, (shifted,)


def _sigmoid_branch_grad(grad_left: Tensor, grad_right: Tensor, shifted: Tensor) -> Tensor:
    """``d log a / ds = 1 - a`` and ``d log(1 - a) / ds = -a``. Overwrites ``grad_left``.

    ``a = sigmoid(shifted)``; the offset is a constant, so ``du/ds = 1``.
    """
    return grad_right - grad_left.add_(grad_right).mul_(torch.sigmoid(shifted))


@functools.cache
def _compiled(kernel: Callable) -> Callable:
    return torch.compile(kernel, dynamic=False)  # shape-specialised kernels are the fast ones


def _kernel(kernel: Callable, compiled: bool) -> Callable:
    """``kernel`` itself, or its ``torch.compile`` version (compiled once per process)."""
    return _compiled(kernel) if compiled else kernel
