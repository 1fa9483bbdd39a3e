"""Pathwise estimators: Gumbel-Softmax, straight-through variants and ReinMax.

All of them differentiate through ``z`` itself, so ``objective(cost)`` is just
``cost.mean(0)``. The temperature ``tau`` is a buffer, so it is checkpointed. The
Gumbel-Softmax estimators can anneal it: the schedule is part of their settings and
advances in :meth:`~catlight.latent.Estimator.step`, once per optimisation step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from catlight.latent._checks import check_int_at_least, check_positive
from catlight.latent.estimators.base import (
    MultiSampleEstimator,
    gumbel_noise,
    one_hot,
    sample_categories,
)
from catlight.latent.sample import LatentSample

__all__ = [
    "GumbelSoftmax",
    "ReinMax",
    "RelaxedEstimator",
    "StraightThrough",
    "StraightThroughGumbelSoftmax",
    "perturbed_softmax",
]


def _mean_over_samples(cost: Tensor) -> Tensor:
    return cost.mean(0)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class RelaxedEstimator(MultiSampleEstimator):
    """Base of the pathwise estimators: a temperature and a number of samples."""

    _min_tau = 0.0

    def __init__(self, tau: float, num_samples: int) -> None:
        super().__init__(num_samples)
        self.check_tau(tau)
        self.register_buffer("tau", torch.tensor(float(tau)))

    def check_tau(self, tau: float) -> None:
        """Raise a ValueError if ``tau`` is not a valid temperature for this estimator."""
        name = type(self).__name__
        check_positive(name, "tau", tau)
        if tau < self._min_tau:
            raise ValueError(f"{name}: tau must be >= {self._min_tau}, got {tau}")

    def set_tau(self, tau: float) -> None:
        """Set the temperature in place (keeps the buffer, its device and dtype)."""
        self.check_tau(tau)
        self.tau.fill_(tau)

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"tau={self.tau.item():.4g}, num_samples={self.num_samples}"

    def forward(self, log_probs: Tensor) -> LatentSample:
        """Draw ``num_samples`` samples; ``objective`` is the mean cost."""
        return LatentSample(log_probs, self.relax(log_probs), _mean_over_samples)

    def relax(self, log_probs: Tensor) -> Tensor:
        """The differentiable sample. Shapes: ``(*batch, N, K) -> (S, *batch, N, K)``."""
        raise NotImplementedError


class GumbelSoftmax(RelaxedEstimator):
    r"""Gumbel-Softmax / Concrete relaxation (Jang et al. 2017; Maddison et al. 2017).

    ``z = softmax((log p + g) / tau)`` with Gumbel noise ``g``; the gradient is the
    pathwise gradient through ``z``. With ``hard=True`` the forward value is the
    one-hot ``argmax`` and the backward is the relaxed sample's (straight-through GS).

    The temperature can be annealed as in Jang et al.: after ``t`` optimisation steps
    it is ``max(tau_min, tau * exp(-anneal_rate * t'))``, where ``t'`` is ``t`` rounded
    down to a multiple of ``anneal_interval`` (the paper: ``tau = 1``,
    ``tau_min = 0.5``, ``anneal_rate`` in {1e-5, 1e-4}, every 500 or 1000 steps). The
    step count is a buffer, so a resumed run continues the schedule; it advances in
    :meth:`step`. The default ``anneal_rate = 0`` keeps ``tau`` fixed.

    Args:
        tau: (initial) temperature, > 0 (``0.1`` is safe: noise and softmax are float32).
        hard: forward one-hot samples with the relaxed gradient.
        num_samples: samples S drawn per example.
        tau_min: the floor of the annealed temperature, in [0, tau]; it must be > 0
            when ``anneal_rate > 0`` (0, the default, is only for no annealing).
        anneal_rate: exponential decay rate of the temperature per step, >= 0.
        anneal_interval: steps between temperature updates, >= 1.

    Raises:
        ValueError: if ``tau <= 0``, ``num_samples < 1``, ``tau_min`` is not in
            [0, tau], ``anneal_rate < 0`` (or > 0 with ``tau_min = 0``) or
            ``anneal_interval < 1``.

    Shapes:
        - log_probs: ``(*batch, N, K)``
        - z: ``(S, *batch, N, K)``
    """

    def __init__(
        self,
        tau: float = 1.0,
        hard: bool = False,
        num_samples: int = 1,
        tau_min: float = 0.0,
        anneal_rate: float = 0.0,
        anneal_interval: int = 1,
    ) -> None:
        super().__init__(tau, num_samples)
        name = type(self).__name__
        if not (_is_number(tau_min) and 0 <= tau_min <= tau):
            raise ValueError(
                f"{name}: tau_min must be a number in [0, tau = {tau}], got {tau_min!r}"
            )
        if not (_is_number(anneal_rate) and 0 <= anneal_rate < math.inf):
            raise ValueError(
                f"{name}: anneal_rate must be a finite number >= 0, got {anneal_rate!r}"
            )
        if anneal_rate > 0 and tau_min == 0:
            raise ValueError(f"{name}: anneal_rate = {anneal_rate} > 0 needs a floor tau_min > 0")
        check_int_at_least(name, "anneal_interval", anneal_interval, 1)
        self.hard = hard
        self.initial_tau = float(tau)
        self.tau_min = float(tau_min)
        self.anneal_rate = anneal_rate
        self.anneal_interval = anneal_interval
        self.register_buffer("num_steps", torch.zeros((), dtype=torch.long))

    def temperature(self, num_steps: int) -> float:
        """The schedule's temperature after ``num_steps`` optimisation steps."""
        if self.anneal_rate == 0:
            return self.initial_tau
        updated_at = num_steps - num_steps % self.anneal_interval
        return max(self.tau_min, self.initial_tau * math.exp(-self.anneal_rate * updated_at))

    @torch.no_grad()
    def step(self) -> None:
        """Count one optimisation step and set the temperature of the schedule."""
        self.num_steps += 1
        if self.anneal_rate > 0:
            self.tau.fill_(self.temperature(int(self.num_steps)))

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        schedule = ""
        if self.anneal_rate > 0:
            schedule = (
                f", tau_min={self.tau_min}, anneal_rate={self.anneal_rate}, "
                f"anneal_interval={self.anneal_interval}"
            )
        return f"{super().extra_repr()}, hard={self.hard}{schedule}"

    def relax(self, log_probs: Tensor) -> Tensor:
        """Relaxed (or straight-through one-hot) samples."""
        shape = (self.num_samples, *log_probs.shape)
        soft = torch.softmax((log_probs + gumbel_noise(shape, log_probs.device)) / self.tau, -1)
        if not self.hard:
            return soft
        hard = one_hot(soft.argmax(-1), soft.shape[-1])
        return hard - soft.detach() + soft


class StraightThroughGumbelSoftmax(GumbelSoftmax):
    """Straight-through Gumbel-Softmax: one-hot forward, relaxed backward.

    The same as ``GumbelSoftmax(tau, hard=True)``, temperature schedule included.

    Args:
        tau: (initial) temperature of the backward relaxation, > 0.
        num_samples: samples S drawn per example.
        tau_min: the floor of the annealed temperature (see :class:`GumbelSoftmax`).
        anneal_rate: exponential decay rate of the temperature per step, >= 0.
        anneal_interval: steps between temperature updates, >= 1.
    """

    def __init__(
        self,
        tau: float = 1.0,
        num_samples: int = 1,
        tau_min: float = 0.0,
        anneal_rate: float = 0.0,
        anneal_interval: int = 1,
    ) -> None:
        super().__init__(tau, True, num_samples, tau_min, anneal_rate, anneal_interval)


class StraightThrough(RelaxedEstimator):
    """Straight-through estimator (Bengio et al. 2013).

    Forward: a one-hot sample ``D ~ Cat(p)``. Backward: as if
    ``z = softmax(log p / tau)``, i.e. ``z = D + y - y.detach()``.

    Args:
        tau: temperature of the backward softmax, > 0.
        num_samples: samples S drawn per example.
    """

    def __init__(self, tau: float = 1.0, num_samples: int = 1) -> None:
        super().__init__(tau, num_samples)

    def relax(self, log_probs: Tensor) -> Tensor:
        """One-hot samples carrying the tempered-softmax gradient."""
        samples = sample_categories(log_probs, self.num_samples)
        soft = torch.softmax(log_probs / self.tau, -1)
        return samples + (soft - soft.detach())


class _ReinMaxFunction(torch.autograd.Function):
    """Identity on the one-hot sample forward; ReinMax's second-order rule backward."""

    @staticmethod
    def forward(ctx, logits: Tensor, samples: Tensor, tau: Tensor) -> Tensor:
        ctx.save_for_backward(logits, samples, tau)
        return samples.clone()

    @staticmethod
    def backward(ctx, grad_samples: Tensor) -> tuple[Tensor, None, None]:
        logits, samples, tau = ctx.saved_tensors
        grad_samples = grad_samples.float()
        probs = torch.softmax(logits, -1)
        midpoint = (torch.softmax(logits / tau, -1) + samples) / 2
        grad = 2 * _softmax_jacobian_vector(midpoint, grad_samples)
        grad = grad - _softmax_jacobian_vector(probs, grad_samples) / 2
        return grad - grad.mean(-1, keepdim=True), None, None


def perturbed_softmax(log_probs: Tensor, perturbed: Tensor, tau: Tensor | float) -> Tensor:
    """``softmax(perturbed / tau)`` with the gradient of ``softmax((log p + m) / tau)``.

    The perturbation ``m = perturbed - log p`` is held constant, so the gradient reaches
    ``log p`` alone; where ``log p`` is -inf (a masked category) ``m`` is 0.

    Shapes:
        - log_probs: ``(*batch, N, K)``
        - perturbed: ``(*sample, *batch, N, K)``, detached
        - output: ``(*sample, *batch, N, K)``
    """
    offset = torch.where(torch.isfinite(log_probs), perturbed - log_probs.detach(), 0.0)
    return torch.softmax((log_probs + offset) / tau, -1)


def _softmax_jacobian_vector(probs: Tensor, vector: Tensor) -> Tensor:
    """``J(q)^T v = q * v - q * (q . v)``, the softmax Jacobian at ``q`` applied to v."""
    weighted = probs * vector
    return weighted - probs * weighted.sum(-1, keepdim=True)


class ReinMax(RelaxedEstimator):
    r"""ReinMax (Liu et al., NeurIPS 2023): a second-order straight-through estimator.

    Forward: a one-hot sample ``D ~ Cat(pi)``, ``pi = softmax(theta)`` (here
    ``theta = log p``, so ``pi = p``). Backward, with ``g = dL/dD`` and
    ``pi_1 = (softmax(theta / tau) + D) / 2``:
    ``grad_theta = 2 J(pi_1)^T g - J(pi)^T g / 2``, centred over the K categories.
    The temperature is fixed, as in the paper: no schedule.

    Args:
        tau: temperature of ``pi_1``; the authors require ``tau >= 1``.
        num_samples: samples S drawn per example.

    Raises:
        ValueError: if ``tau < 1``.
    """

    _min_tau = 1.0

    def __init__(self, tau: float = 1.0, num_samples: int = 1) -> None:
        super().__init__(tau, num_samples)

    def relax(self, log_probs: Tensor) -> Tensor:
        """One-hot samples whose backward is ReinMax's rule."""
        samples = sample_categories(log_probs, self.num_samples)
        logits = log_probs.expand(self.num_samples, *log_probs.shape)
        return _ReinMaxFunction.apply(logits, samples, self.tau)
