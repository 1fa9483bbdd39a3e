"""Gapped straight-through: ST-GS's backward with a deterministic perturbation.

Fan, Chi, Rudnicky and Ramadge, "Training Discrete Deep Generative Models via Gapped
Straight-Through Estimator", ICML 2022.
"""

from __future__ import annotations

import torch
from torch import Tensor

from catlight.latent._checks import check_positive
from catlight.latent.estimators.base import sample_categories
from catlight.latent.estimators.relaxed import RelaxedEstimator, perturbed_softmax

__all__ = ["GappedStraightThrough", "gapped_logits"]


def gapped_logits(log_probs: Tensor, samples: Tensor, gap: float) -> Tensor:
    """The perturbed logits ``log p + m`` of GST: argmax ``D`` with a margin of ``gap``.

    The chosen category is raised to the largest logit, ``max_k log p_k``; every other
    category ``j`` is lowered, if needed, to ``gap`` below it:
    ``min(log p_j, max_k log p_k - gap)``. A category already that far below keeps its
    logit; one of probability 0 stays at -inf.

    Args:
        log_probs: log-probabilities (normalized or not), float32.
        samples: one-hot categories ``D``.
        gap: the margin, > 0.

    Shapes:
        - log_probs: ``(*batch, N, K)``
        - samples: ``(S, *batch, N, K)`` one-hot
        - output: ``(S, *batch, N, K)``, detached
    """
    log_probs = log_probs.detach()
    largest = log_probs.amax(-1, keepdim=True)
    lowered = torch.minimum(log_probs, largest - gap)
    return torch.where(samples.bool(), largest, lowered)


class GappedStraightThrough(RelaxedEstimator):
    r"""Gapped straight-through, GST (Fan, Chi, Rudnicky and Ramadge, ICML 2022).

    Forward: a one-hot sample ``D ~ Cat(p)``. Backward: through
    ``softmax((log p + m) / tau)``, where the perturbation ``m`` is not random noise but
    a function of ``log p`` and ``D`` (:func:`gapped_logits`, held constant in the
    backward pass): ``D``'s logit is raised to the largest logit, and every other logit
    within ``gap`` of that is lowered to exactly ``gap`` below it. The perturbed logits
    thus keep two properties of ST-GS's Gumbel-perturbed logits that the paper identifies
    and finds essential by ablation: their argmax is ``D`` (consistency), and ``D`` leads
    the others by a strict margin (the gap). This is the paper's
    GST-1.0 with the margin as a setting; the paper's other variant, whose margin
    depends on ``p_D``, is not implemented. No Gumbel noise is drawn, so the backward
    pass adds no variance beyond the choice of ``D``.

    Args:
        tau: temperature of the backward softmax, > 0.
        num_samples: samples S drawn per example.
        gap: the margin by which ``D`` leads in the perturbed logits, > 0.

    Raises:
        ValueError: if ``tau <= 0``, ``num_samples < 1`` or ``gap <= 0``.

    Shapes:
        - log_probs: ``(*batch, N, K)``
        - z: ``(S, *batch, N, K)`` one-hot forward
    """

    def __init__(self, tau: float = 1.0, num_samples: int = 1, gap: float = 1.0) -> None:
        super().__init__(tau, num_samples)
        check_positive(type(self).__name__, "gap", gap)
        self.gap = float(gap)

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"{super().extra_repr()}, gap={self.gap}"

    def relax(self, log_probs: Tensor) -> Tensor:
        """One-hot samples carrying the gapped softmax's gradient."""
        samples = sample_categories(log_probs, self.num_samples)
        perturbed = gapped_logits(log_probs, samples, self.gap)
        soft = perturbed_softmax(log_probs, perturbed, self.tau)
        return samples + (soft - soft.detach())
