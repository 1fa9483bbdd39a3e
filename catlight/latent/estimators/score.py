"""Score-function estimators: REINFORCE and leave-one-out (LOORF / VarGrad).

Samples are one-hot and carry no gradient; ``objective(cost)`` adds a term whose
value is zero and whose gradient is ``sum_s c_s grad log q(z_s)`` for per-sample
coefficients ``c_s`` computed from the (detached) costs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor

from catlight.latent.estimators.base import MultiSampleEstimator, sample_categories
from catlight.latent.protocol import leave_one_out_weights, score_function_surrogate
from catlight.latent.sample import LatentSample

__all__ = ["LeaveOneOut", "Reinforce", "cost_is_finite", "score_function_sample"]


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
        return score_function_surrogate(cost, weights, sample_log_probs)

    return LatentSample(log_probs, samples, objective)


NonFiniteCost = Literal["raise", "skip"]


def cost_is_finite(owner: str, cost: Tensor, nonfinite_cost: NonFiniteCost) -> bool:
    """Whether every cost is finite; otherwise raise, or warn when told to skip.

    Args:
        owner: the estimator's name, for the message.
        cost: the costs passed to ``objective``.
        nonfinite_cost: ``"raise"`` a ValueError, or ``"skip"``: warn and return False.

    Raises:
        ValueError: for a NaN or infinite cost when ``nonfinite_cost == "raise"``.
    """
    num_bad = int((~torch.isfinite(cost)).sum())
    if num_bad == 0:
        return True
    message = (
        f"{owner}: the cost passed to objective() has {num_bad} non-finite entries "
        f"(NaN or inf) of {cost.numel()}"
    )
    if nonfinite_cost == "raise":
        raise ValueError(
            f"{message}; fix the cost, or set nonfinite_cost='skip' to leave such costs "
            "out of the estimator's state with a warning"
        )
    warnings.warn(f"{message}; left out of the estimator's state", stacklevel=3)
    return False


def check_nonfinite_cost(owner: str, nonfinite_cost: str) -> None:
    """Raise a ValueError unless ``nonfinite_cost`` is ``"raise"`` or ``"skip"``."""
    if nonfinite_cost not in ("raise", "skip"):
        raise ValueError(
            f"{owner}: nonfinite_cost must be 'raise' or 'skip', got {nonfinite_cost!r}"
        )


class Reinforce(MultiSampleEstimator):
    r"""REINFORCE / score function: ``grad = (f(z) - b) grad log q(z)``, averaged.

    With ``baseline="moving_average"``, ``b`` is an exponential moving average of the
    mean cost over optimisation steps (a checkpointed buffer). ``objective`` only
    records the detached cost of each sample drawn in training mode (once per
    sample, however often it is called); :meth:`step` folds the mean of the recorded
    costs into the average, once per optimisation step. Under ``torch.distributed``
    the sums are all-reduced in :meth:`step`, so all ranks keep the same baseline.
    The baseline used at a step is the one from before that step's update, so the
    estimate stays unbiased.

    Args:
        num_samples: independent samples S, averaged.
        baseline: ``"none"`` or ``"moving_average"``.
        decay: weight of the old value in the moving average, in [0, 1).
        nonfinite_cost: what a NaN or infinite cost passed to ``objective`` does:
            ``"raise"`` a ValueError (the default), or ``"skip"``: warn, and leave that
            call's costs out of the baseline. A non-finite cost never enters it.

    Raises:
        ValueError: for an unknown ``baseline`` or ``nonfinite_cost``, or ``decay``
            outside [0, 1).
    """

    def __init__(
        self,
        num_samples: int = 1,
        baseline: Literal["none", "moving_average"] = "none",
        decay: float = 0.99,
        nonfinite_cost: NonFiniteCost = "raise",
    ) -> None:
        super().__init__(num_samples)
        if baseline not in ("none", "moving_average"):
            raise ValueError(
                f"Reinforce: baseline must be 'none' or 'moving_average', got {baseline!r}"
            )
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"Reinforce: decay must be in [0, 1), got {decay}")
        check_nonfinite_cost("Reinforce", nonfinite_cost)
        self.baseline = baseline
        self.decay = decay
        self.nonfinite_cost = nonfinite_cost
        self.register_buffer("baseline_value", torch.zeros(()))
        # costs recorded since the last step: sum and count, not checkpointed
        self.register_buffer("pending_cost", torch.zeros(2), persistent=False)

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_samples={self.num_samples}, baseline={self.baseline!r}, decay={self.decay}"

    def forward(self, log_probs: Tensor) -> LatentSample:
        """Independent samples; see the class docstring for the gradient."""
        samples = sample_categories(log_probs, self.num_samples)
        recorded = False

        def coefficients(cost: Tensor) -> Tensor:
            nonlocal recorded
            finite = cost_is_finite("Reinforce", cost, self.nonfinite_cost)
            if self.baseline == "none":
                return cost / self.num_samples
            if finite and self.training and not recorded:
                self.pending_cost += torch.stack([cost.sum(), cost.new_tensor(cost.numel())])
                recorded = True
            return (cost - self.baseline_value.clone()) / self.num_samples

        return score_function_sample(log_probs, samples, coefficients)

    @torch.no_grad()
    def step(self) -> None:
        """Fold the mean cost recorded since the last step into the moving average."""
        if self.baseline != "moving_average":
            return
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.pending_cost)
        total, count = self.pending_cost
        updated = self.decay * self.baseline_value + (1 - self.decay) * total / count.clamp(min=1)
        self.baseline_value.copy_(torch.where(count > 0, updated, self.baseline_value))
        self.pending_cost.zero_()


class LeaveOneOut(MultiSampleEstimator):
    r"""Leave-one-out REINFORCE (LOORF, Kool et al. 2019; VarGrad).

    ``grad = 1/(n-1) sum_i (f_i - mean_j f_j) grad log q(z_i)`` over n independent
    samples; unbiased.

    Args:
        num_samples: n >= 2.
        nonfinite_cost: what a NaN or infinite cost passed to ``objective`` does:
            ``"raise"`` a ValueError (the default), or ``"skip"``: only warn.

    Raises:
        ValueError: if ``num_samples < 2`` or for an unknown ``nonfinite_cost``.
    """

    _min_samples = 2

    def __init__(self, num_samples: int = 2, nonfinite_cost: NonFiniteCost = "raise") -> None:
        super().__init__(num_samples)
        check_nonfinite_cost("LeaveOneOut", nonfinite_cost)
        self.nonfinite_cost = nonfinite_cost

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_samples={self.num_samples}"

    def forward(self, log_probs: Tensor) -> LatentSample:
        """Independent samples; see the class docstring for the gradient."""
        samples = sample_categories(log_probs, self.num_samples)
        return score_function_sample(log_probs, samples, self._coefficients)

    def _coefficients(self, cost: Tensor) -> Tensor:
        cost_is_finite("LeaveOneOut", cost, self.nonfinite_cost)
        return leave_one_out_weights(cost)
