"""Likelihood helpers shared by the image models."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["bernoulli_nll", "log_mean_exp"]


def bernoulli_nll(logits: Tensor, targets: Tensor) -> Tensor:
    """Negative log-likelihood of binary ``targets`` under Bernoulli(sigmoid(logits)).

    Summed over the last dimension (pixels); computed in float32.

    Shapes:
        - logits: ``(*sample, B, D)``; targets: ``(B, D)`` (broadcast)
        - output: ``(*sample, B)``
    """
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(
        logits, targets.float().expand_as(logits), reduction="none"
    ).sum(-1)


def log_mean_exp(values: Tensor, dim: int = 0) -> Tensor:
    """``log(mean(exp(values)))`` along ``dim``, stable. Shapes: drops ``dim``."""
    return torch.logsumexp(values, dim) - math.log(values.shape[dim])
