"""Score-function estimators: REINFORCE and leave-one-out (LOORF / VarGrad).

Samples are one-hot and carry no gradient; ``objective(cost)`` adds a term whose
value is zero and whose gradient is ``sum_s c_s grad log q(z_s)`` for per-sample
coefficients ``c_s`` computed from the (detached) costs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor

from catlight.latent.estimators.base import MultiSampleEstimator, sample_categories
from catlight.latent.sample import LatentSample

__all__ = ["LeaveOneOut", "Reinforce", "score_function_sample"]


def score_function_sample(
    log_probs: Tensor, samples: Tensor, coefficients: Callable[[Tensor], Tensor]
) -> LatentSample:
    """Wrap one-hot samples with a score-function objective.

    ``coefficients(cost)`` maps the detached costs to the weight of each sample's
    score: shape ``(S, *batch)`` (the same for all N variables) or
    ``(S, *batch, N)`` (one per variable, as in CARMS).

    Shapes:
        - log_probs: ``(*batch, N, K)``
        - samples: ``(S, *batch, N, K)`` one-hot
    """
    indices = samples.argmax(-1, keepdim=True)
    expanded = log_probs.expand(samples.shape[0], *log_probs.shape)
    sample_log_probs = expanded.gather(-1, indices).squeeze(-1)  # [S, *batch, N]

    def objective(cost: Tensor) -> Tensor:
        weights = coefficients(cost.detach())
        if weights.dim() == cost.dim():
            weights = weights.unsqueeze(-1)
        score = sample_log_probs - sample_log_probs.detach()
        return cost.mean(0) + (weights * score).sum(-1).sum(0)

    return LatentSample(log_probs, samples, objective)


class Reinforce(MultiSampleEstimator):
    r"""REINFORCE / score function: ``grad = (f(z) - b) grad log q(z)``, averaged.

    Args:
        num_samples: independent samples S, averaged.
        baseline: ``"none"`` or ``"moving_average"``: an exponential moving average
            of the mean cost over training steps (a buffer; under
            ``torch.distributed`` the mean cost is all-reduced first, so all ranks
            keep the same baseline). The baseline used at a step is the one from
            before that step's update, so the estimate stays unbiased.
        decay: weight of the old value in the moving average, in [0, 1).

    Raises:
        ValueError: for an unknown ``baseline`` or ``decay`` outside [0, 1).
    """

    def __init__(
        self,
        num_samples: int = 1,
        baseline: Literal["none", "moving_average"] = "none",
        decay: float = 0.99,
    ) -> None:
        super().__init__(num_samples)
        if baseline not in ("none", "moving_average"):
            raise ValueError(
                f"Reinforce: baseline must be 'none' or 'moving_average', got {baseline!r}"
            )
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"Reinforce: decay must be in [0, 1), got {decay}")
        self.baseline = baseline
        self.decay = decay
        self.register_buffer("baseline_value", torch.zeros(()))

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_samples={self.num_samples}, baseline={self.baseline!r}, decay={self.decay}"

    def forward(self, log_probs: Tensor) -> LatentSample:
        """Independent samples; see the class docstring for the gradient."""
        samples = sample_categories(log_probs, self.num_samples)
        return score_function_sample(log_probs, samples, self._coefficients)

    def _coefficients(self, cost: Tensor) -> Tensor:
        baseline = self.baseline_value.clone()
        if self.baseline == "moving_average" and self.training:
            self._update_baseline(cost)
        return (cost - baseline) / self.num_samples

    @torch.no_grad()
    def _update_baseline(self, cost: Tensor) -> None:
        mean_cost = cost.mean()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(mean_cost)
            mean_cost /= dist.get_world_size()
        self.baseline_value.mul_(self.decay).add_((1 - self.decay) * mean_cost)


class LeaveOneOut(MultiSampleEstimator):
    r"""Leave-one-out REINFORCE (LOORF, Kool et al. 2019; VarGrad).

    ``grad = 1/(n-1) sum_i (f_i - mean_j f_j) grad log q(z_i)`` over n independent
    samples; unbiased.

    Args:
        num_samples: n >= 2.

    Raises:
        ValueError: if ``num_samples < 2``.
    """

    _min_samples = 2

    def __init__(self, num_samples: int = 2) -> None:
        super().__init__(num_samples)

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_samples={self.num_samples}"

    def forward(self, log_probs: Tensor) -> LatentSample:
        """Independent samples; see the class docstring for the gradient."""
        samples = sample_categories(log_probs, self.num_samples)
        return score_function_sample(log_probs, samples, self._coefficients)

    def _coefficients(self, cost: Tensor) -> Tensor:
        return (cost - cost.mean(0)) / (self.num_samples - 1)
