"""StructuredLatent: a combinatorial latent (subset, permutation, tree) chosen in YAML."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from catlight.latent._checks import check_int_at_least
from catlight.latent.structured.base import Structure, Trace
from catlight.latent.structured.estimators import StructuredEstimator
from catlight.latent.structured.sample import StructuredSample, draw_structures

__all__ = ["StructuredLatent"]


class StructuredLatent(nn.Module):
    r"""A structured latent variable: a recursive argmin over perturbed scores.

    A network outputs one score per item (per edge for a spanning tree); the
    *structure* (:class:`TopK`, :class:`Permutation`, :class:`SpanningTree`,
    :class:`BinaryTree`) turns perturbations ``E_i ~ Exp(rate = exp(theta_i))`` into a
    structure, and the *estimator* (:class:`TraceReinforce`,
    :class:`ExponentialReinforce`, :class:`Relax`) defines the gradient of ``E[cost]``.
    Both are chosen in configuration. All sampling runs in float32, also under
    autocast. It plays the role of :class:`~catlight.latent.DiscreteLatent` where the
    latent is one structure per example rather than independent categorical variables.

    Args:
        structure: the combinatorial structure (sets :attr:`num_scores`).
        estimator: the gradient estimator.

    Raises:
        ValueError: if ``structure`` or ``estimator`` is not a catlight structured one,
            or (in forward) if the scores do not end in ``num_scores``.

    Shapes:
        - scores: ``(*batch, num_scores)``
        - out.z: ``(S, *batch, ...)``, e.g. ``(S, *batch, n)`` k-hot for TopK
        - out.log_prob, out.kl(): ``(S, *batch)``
        - out.objective(cost): cost ``(S, *batch)`` -> ``(*batch)``
        - mode(scores): ``(*batch, ...)``, one structure per example

    Example::

        >>> import torch
        >>> from catlight.latent.structured import SpanningTree, StructuredLatent, TraceReinforce
        >>> layer = StructuredLatent(SpanningTree(num_nodes=5), TraceReinforce(num_samples=4))
        >>> scores = torch.randn(32, layer.num_scores, requires_grad=True)
        >>> out = layer(scores)
        >>> out.z.shape
        torch.Size([4, 32, 10])
        >>> cost = out.z[..., :4].sum(-1)  # edges at node 0 in the tree, (S, B)
        >>> out.objective(cost).mean().backward()
    """

    def __init__(self, structure: Structure, estimator: StructuredEstimator) -> None:
        super().__init__()
        if not isinstance(structure, Structure):
            raise ValueError(
                "StructuredLatent: structure must be a catlight Structure (TopK, Permutation, "
                f"SpanningTree, BinaryTree, Arborescence), got {type(structure).__name__}"
            )
        if not isinstance(estimator, StructuredEstimator):
            raise ValueError(
                "StructuredLatent: estimator must be a structured estimator (TraceReinforce, "
                f"ExponentialReinforce, Relax), got {type(estimator).__name__}"
            )
        critic_inputs = getattr(getattr(estimator, "critic", None), "num_inputs", None)
        if critic_inputs is not None and critic_inputs != structure.num_scores:
            raise ValueError(
                f"StructuredLatent: the critic reads {critic_inputs} inputs but "
                f"{type(structure).__name__} has {structure.num_scores} scores; set "
                f"MLPCritic(num_inputs={structure.num_scores})"
            )
        self.structure = structure
        self.estimator = estimator

    @property
    def num_scores(self) -> int:
        """How many scores per example the network must output."""
        return self.structure.num_scores

    def forward(self, scores: Tensor) -> StructuredSample:
        """Samples and the estimator's objective. See the class docstring for shapes."""
        self.structure.check_scores(scores)
        with torch.autocast(device_type=scores.device.type, enabled=False):
            return self.estimator(scores.float(), self.structure)

    def mode(self, scores: Tensor) -> Tensor:
        """The structure the algorithm builds from the scores alone, without noise.

        The perturbations at unit noise, ``E_i = exp(-theta_i)``, so every argmin is an
        argmax of the scores: the greedy structure. For :class:`TopK` it is the k
        highest-scoring items, for :class:`Permutation` the items sorted by decreasing
        score (both the most probable trace), for :class:`SpanningTree` the maximum
        spanning tree of the scores (Kruskal), for :class:`BinaryTree` the tree whose
        every parent outscores its children (a max-heap Cartesian tree), and for
        :class:`Arborescence` the minimum arborescence of ``exp(-theta)``. Encoded
        like one sample of ``z``, in float32, without gradient.

        Shapes:
            - scores: ``(*batch, num_scores)``
            - output: ``(*batch, ...)`` (see the structure)

        Raises:
            ValueError: if the scores do not end in ``num_scores``.
        """
        self.structure.check_scores(scores)
        with torch.autocast(device_type=scores.device.type, enabled=False):
            return self.structure.encode(self.structure.trace(torch.exp(-scores.float())))

    def sample(self, scores: Tensor, num_samples: int) -> StructuredSample:
        """``num_samples`` structures per example drawn without the estimator.

        For evaluation (Monte Carlo marginals, a KL estimate): the samples carry
        ``z``, ``log_prob`` and :meth:`~StructuredSample.kl` like those of
        :meth:`forward`, but their ``objective`` raises.

        Shapes:
            - scores: ``(*batch, num_scores)``
            - output: a StructuredSample with ``z`` ``(num_samples, *batch, ...)``

        Raises:
            ValueError: if the scores do not end in ``num_scores`` or ``num_samples``
                is not an int >= 1.
        """
        self.structure.check_scores(scores)
        check_int_at_least("StructuredLatent.sample", "num_samples", num_samples, 1)
        with torch.autocast(device_type=scores.device.type, enabled=False):
            return draw_structures(self.structure, scores.float(), num_samples)

    def log_prob(self, scores: Tensor, trace: Trace) -> Tensor:
        """``log p(T)`` in float32.

        Shapes:
            - scores: ``(*batch, n)``, broadcast against the trace's ``*shape``
            - trace: ``selected`` ``(*shape, T)``
            - output: ``(*shape)``
        """
        self.structure.check_scores(scores)
        with torch.autocast(device_type=scores.device.type, enabled=False):
            return self.structure.log_prob(scores.float(), trace)
