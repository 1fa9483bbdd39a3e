"""Gumbel-Rao: straight-through Gumbel-Softmax, Rao-Blackwellised over the Gumbel noise.

Paulus, Maddison and Krause, "Rao-Blackwellizing the Straight-Through Gumbel-Softmax
Gradient Estimator", ICLR 2021.
"""

from __future__ import annotations

import torch
from torch import Tensor

from catlight.latent._checks import check_int_at_least
from catlight.latent.estimators.base import sample_categories, uniform_noise
from catlight.latent.estimators.relaxed import RelaxedEstimator, perturbed_softmax

__all__ = ["GumbelRao", "conditional_gumbel_logits"]


def conditional_gumbel_logits(log_probs: Tensor, samples: Tensor, num_gumbels: int) -> Tensor:
    """Perturbed logits ``log p + G`` with Gumbel noise ``G`` drawn given its argmax.

    Exact draws of ``log p + G`` conditioned on ``argmax(log p + G) = D`` (the
    "top-down" construction): with ``E_k`` independent standard exponentials and
    ``Z = sum_k p_k``, the maximum ``M = log Z - log E_D`` is the chosen category's
    value, and each other category ``j`` gets ``-log(exp(-M) + E_j / p_j)``, a Gumbel of
    location ``log p_j`` truncated below ``M``. A category of probability 0 gets -inf.

    Args:
        log_probs: log-probabilities (normalized or not), float32.
        samples: one-hot categories ``D`` the draws are conditioned on.
        num_gumbels: conditional draws R per sample.

    Shapes:
        - log_probs: ``(*batch, N, K)``
        - samples: ``(S, *batch, N, K)`` one-hot
        - output: ``(R, S, *batch, N, K)``, detached, ``R = num_gumbels``
    """
    log_probs = log_probs.detach()
    shape = (num_gumbels, *samples.shape)
    log_exponentials = torch.log(-torch.log(uniform_noise(shape, samples.device)))
    chosen = samples.bool()
    log_normalizer = log_probs.logsumexp(-1, keepdim=True)
    # M = log Z - log E_D, the same for every category of a variable
    top = log_normalizer - (log_exponentials * samples).sum(-1, keepdim=True)
    truncated = -torch.logaddexp(-top, log_exponentials - log_probs)
    return torch.where(chosen, top, truncated)


class GumbelRao(RelaxedEstimator):
    r"""Gumbel-Rao (Paulus, Maddison and Krause, ICLR 2021): Rao-Blackwellised ST-GS.

    Forward: a one-hot sample ``D ~ Cat(p)``, as straight-through Gumbel-Softmax.
    Backward: the expected ST-GS gradient given ``D``, i.e. the gradient of
    ``E[softmax((log p + G) / tau) | argmax(log p + G) = D]``, estimated with
    ``num_gumbels`` exact conditional Gumbel draws (see
    :func:`conditional_gumbel_logits`; the paper's K). The noise is held fixed and only
    ``log p`` is differentiated, as in ST-GS, so the estimator's mean is ST-GS's at the
    same ``tau`` and its variance is no larger; ``num_gumbels = 1`` is ST-GS itself.
    No extra cost evaluations, but the layer's own time and memory grow about
    ``num_gumbels``-fold.
    The temperature is fixed (``set_tau`` changes it by hand).

    Args:
        tau: temperature of the backward relaxation, > 0.
        num_samples: samples S drawn per example (each one cost evaluation).
        num_gumbels: conditional Gumbel draws R averaged per sample, >= 1.

    Raises:
        ValueError: if ``tau <= 0``, ``num_samples < 1`` or ``num_gumbels < 1``.

    Shapes:
        - log_probs: ``(*batch, N, K)``
        - z: ``(S, *batch, N, K)`` one-hot forward
    """

    def __init__(self, tau: float = 1.0, num_samples: int = 1, num_gumbels: int = 10) -> None:
        super().__init__(tau, num_samples)
        check_int_at_least(type(self).__name__, "num_gumbels", num_gumbels, 1)
        self.num_gumbels = num_gumbels

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"{super().extra_repr()}, num_gumbels={self.num_gumbels}"

    def relax(self, log_probs: Tensor) -> Tensor:
        """One-hot samples carrying the Rao-Blackwellised Gumbel-Softmax gradient."""
        samples = sample_categories(log_probs, self.num_samples)
        perturbed = conditional_gumbel_logits(log_probs, samples, self.num_gumbels)
        soft = perturbed_softmax(log_probs, perturbed, self.tau).mean(0)
        return samples + (soft - soft.detach())
