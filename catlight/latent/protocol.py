"""One latent protocol: what every latent layer offers and what its sample shares.

A latent layer (:class:`~catlight.latent.DiscreteLatent`,
:class:`~catlight.latent.structured.StructuredLatent`) satisfies :class:`Latent`: the
network in front of it outputs ``num_scores`` scores per variable, calling the layer
draws a :class:`Sample` and :meth:`Latent.mode` gives the deterministic outcome.
Every sample derives from :class:`Sample`, which owns what the two stacks share: the
``(S, *batch)`` check of the cost, float32 with autocast off for the estimator's
rule, and the score-function surrogate that the leave-one-out estimators of both use.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["Latent", "Sample", "leave_one_out_weights", "score_function_surrogate"]


@runtime_checkable
class Latent(Protocol):
    """What model code may rely on for any catlight latent layer.

    ``isinstance(layer, Latent)`` checks that the members exist (not their
    signatures); :class:`~catlight.latent.DiscreteLatent` and
    :class:`~catlight.latent.structured.StructuredLatent` satisfy it.

    Shapes:
        - scores: ``(*batch, N, num_scores)`` for DiscreteLatent, ``(*batch,
          num_scores)`` for StructuredLatent
        - the sample's ``z``: ``(S, *batch, ...)``; ``mode``: ``z`` without ``S``
    """

    @property
    def num_scores(self) -> int:
        """How many scores per variable (per structure) the network must output."""

    def __call__(self, scores: Tensor) -> Sample:
        """Draw samples with the estimator's gradient attached (the module's forward)."""

    def mode(self, scores: Tensor) -> Tensor:
        """The deterministic outcome of the scores, encoded like one sample of ``z``."""


class Sample:
    """Base class of what a latent layer returns: samples ``z`` and their objective.

    Subclasses set :attr:`z` and :attr:`batch_shape` in ``__init__`` and implement
    :meth:`surrogate` (the estimator's rule) and :meth:`kl`. Model code computes one
    cost per sample and example and minimises :meth:`objective` of it; the same code
    is correct for every estimator.

    Attributes:
        z: the samples fed downstream, with the sample dimension first.
        batch_shape: ``*batch``, the dimensions of the examples.

    Shapes:
        - z: ``(S, *batch, ...)``
        - cost (argument of :meth:`objective`): ``(S, *batch)``; output ``(*batch)``
    """

    z: Tensor
    batch_shape: tuple[int, ...]

    @property
    def num_samples(self) -> int:
        """S, the number of samples along the leading dimension of :attr:`z`."""
        return self.z.shape[0]

    def objective(self, cost: Tensor) -> Tensor:
        """Surrogate loss for ``E_q[cost]``.

        Its value is the estimate of ``E_q[cost]`` (the mean over samples, or the
        exact expectation when the samples enumerate the support); its gradient is the
        estimator's gradient for the scores and the pathwise gradient for whatever
        produced ``cost``. The math runs in float32 with autocast off.

        Shapes:
            - cost: ``(S, *batch)``, one cost per sample and example
            - output: ``(*batch)``

        Raises:
            ValueError: if ``cost`` does not have shape ``(S, *batch)``.
        """
        expected = (self.num_samples, *self.batch_shape)
        if tuple(cost.shape) != expected:
            raise ValueError(
                f"{type(self).__name__}.objective: cost must have shape (S, *batch) = "
                f"{expected}, got {tuple(cost.shape)}; reduce over everything but the "
                "sample and batch dimensions first"
            )
        with torch.autocast(device_type=cost.device.type, enabled=False):
            return self.surrogate(cost.float())

    def surrogate(self, cost: Tensor) -> Tensor:
        """The estimator's rule. Shapes: cost ``(S, *batch)`` float32 -> ``(*batch)``."""
        raise NotImplementedError

    def kl(self, prior_log_probs: Tensor | None = None) -> Tensor:
        """KL(q || prior), uniform prior by default; see the subclass for its shape.

        Raises:
            ValueError: for a prior the subclass cannot compare with.
        """
        raise NotImplementedError


def leave_one_out_weights(cost: Tensor) -> Tensor:
    r"""Per-sample score weights ``(c_s - mean_j c_j) / (S - 1)``.

    With :func:`score_function_surrogate` this is the leave-one-out estimator
    (``c_s`` minus the mean of the other ``S - 1`` costs, averaged over ``S``): an
    unbiased gradient whatever the costs.

    Shapes:
        - cost: ``(S, *batch)``, detached, ``S >= 2``
        - output: ``(S, *batch)``
    """
    return (cost - cost.mean(0)) / (cost.shape[0] - 1)


def score_function_surrogate(cost: Tensor, weights: Tensor, log_density: Tensor) -> Tensor:
    """``cost.mean(0)`` plus a zero-valued term with gradient ``sum_s w_s grad log q_s``.

    ``log_density`` may have one more trailing dimension than ``cost`` (one
    log-probability per variable, as for N categorical variables); the term is summed
    over it. ``weights`` must be detached.

    Shapes:
        - cost: ``(S, *batch)``
        - weights: broadcastable to ``log_density``
        - log_density: ``(S, *batch)`` or ``(S, *batch, N)``
        - output: ``(*batch)``
    """
    term = weights * (log_density - log_density.detach())
    if term.dim() > cost.dim():
        term = term.sum(-1)
    return cost.mean(0) + term.sum(0)
