"""LatentSample: what a DiscreteLatent returns."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from catlight.latent.protocol import Sample

__all__ = ["LatentSample", "categorical_entropy", "categorical_kl"]


class LatentSample(Sample):
    """Samples of N categorical variables with the estimator's gradient attached.

    Built by an estimator; model code reads :attr:`z`, computes one cost per sample
    and per example, and minimises :meth:`objective` of it. The same model code is
    correct for every estimator.

    Args:
        log_probs: normalized float32 log-probabilities of the distribution q.
        z: samples fed downstream, one-hot or relaxed, with the sample dim first.
        objective: the estimator's rule turning ``cost`` into a surrogate loss whose
            value estimates ``E_q[cost]`` and whose gradient is the estimator's.

    Shapes:
        - log_probs: ``(*batch, N, K)``
        - z: ``(S, *batch, N, K)``, ``S = num_samples`` (1, n, or K^N for Exact)
        - cost (argument of :meth:`objective`): ``(S, *batch)``
        - objective, entropy / kl: ``(*batch)``, ``(*batch, N)``
    """

    def __init__(self, log_probs: Tensor, z: Tensor, objective: Callable[[Tensor], Tensor]) -> None:
        self.log_probs = log_probs
        self.z = z
        self.batch_shape = tuple(log_probs.shape[:-2])
        self._objective = objective

    @property
    def probs(self) -> Tensor:
        """Probabilities ``exp(log_probs)``, shape ``(*batch, N, K)``."""
        return self.log_probs.exp()

    def surrogate(self, cost: Tensor) -> Tensor:
        """The estimator's rule (see :meth:`~catlight.latent.protocol.Sample.objective`).

        Shapes: cost ``(S, *batch)`` float32 -> ``(*batch)``.
        """
        return self._objective(cost)

    def kl(self, prior_log_probs: Tensor | None = None) -> Tensor:
        """KL(q || prior) for each variable, uniform prior by default.

        Under a mask (categories of log-probability -inf) the prior is restricted to
        the allowed categories and renormalized; see :func:`categorical_kl`.

        Shapes:
            - prior_log_probs: broadcastable to ``(*batch, N, K)``, normalized
            - output: ``(*batch, N)``
        """
        return categorical_kl(self.log_probs, prior_log_probs)

    def entropy(self) -> Tensor:
        """Entropy of each variable, shape ``(*batch, N)``."""
        return categorical_entropy(self.log_probs)

    def __repr__(self) -> str:
        return f"LatentSample(log_probs={tuple(self.log_probs.shape)}, z={tuple(self.z.shape)})"


def categorical_kl(log_probs: Tensor, prior_log_probs: Tensor | None = None) -> Tensor:
    """KL(q || prior) between categorical distributions, uniform prior by default.

    Categories of probability 0 contribute 0 (with a zero gradient, not NaN).
    Categories whose log-probability is exactly -inf (masked ones) are outside the
    support: the prior is restricted to the others and renormalized there, so the
    default prior is uniform over the allowed categories, ``log |allowed| - H(q)``.
    A category of probability 0 that is not masked (an underflow) stays in the
    support.

    Shapes:
        - log_probs: ``(*batch, K)``, normalized
        - prior_log_probs: broadcastable to ``(*batch, K)``, normalized
        - output: ``(*batch)``

    Raises:
        ValueError: if the prior does not have K categories.
    """
    num_categories = log_probs.shape[-1]
    masked = log_probs == -math.inf
    if prior_log_probs is None:
        allowed = num_categories - masked.sum(-1)
        return allowed.log() - categorical_entropy(log_probs)
    if prior_log_probs.shape[-1] != num_categories:
        raise ValueError(
            f"kl: prior_log_probs must end in K = {num_categories} "
            f"categories, got shape {tuple(prior_log_probs.shape)}"
        )
    prior_log_probs = prior_log_probs.float().masked_fill(masked, -math.inf)
    prior_log_probs = prior_log_probs - prior_log_probs.logsumexp(-1, keepdim=True)
    log_ratio = _finite(log_probs) - _finite(prior_log_probs)
    return (log_probs.exp() * log_ratio).sum(-1)


def categorical_entropy(log_probs: Tensor) -> Tensor:
    """Entropy of categorical distributions; categories of probability 0 contribute 0.

    Shapes: ``(*batch, K) -> (*batch)``.
    """
    return -(log_probs.exp() * _finite(log_probs)).sum(-1)


def _finite(log_probs: Tensor) -> Tensor:
    """Log-probabilities with -inf (probability 0) replaced by the lowest float.

    Then ``0 * log 0`` terms are 0, with a zero gradient instead of NaN.
    """
    return log_probs.clamp(min=torch.finfo(log_probs.dtype).min)
