r"""Gradient estimators for structured latents: T-REINFORCE, E-REINFORCE and RELAX.

Every estimator draws ``S`` independent perturbation vectors ``E ~ prod_i Exp(exp(theta_i))``,
runs the structure's algorithm on each and returns a
:class:`~catlight.latent.structured.StructuredSample` whose ``objective(cost)`` has value
``cost.mean(0)`` and the estimator's gradient:

- T-REINFORCE, the score of the trace: ``1/S sum_s (f_s - b_s) grad log p(T_s)``;
- E-REINFORCE, the score of the perturbations: ``1/S sum_s (f_s - b_s) grad log q(E_s)``.
  ``grad log p(T) = E[grad log q(E) | T]``, so T-REINFORCE has the lower variance;
- RELAX (Grathwohl et al. 2018) with the perturbations ``E`` as the relaxed variable, the
  trace as the discrete one and a learned critic ``c_phi``:
  ``[f - c_phi(E~)] grad log p(T) + grad c_phi(E) - grad c_phi(E~)`` with ``E~ ~ E | T``.

The baseline ``b_s`` is 0 or, with ``baseline="leave_one_out"``, the mean cost of the
other ``S - 1`` samples (the "+" variants), which keeps the estimate unbiased.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from catlight.latent._checks import check_int_at_least
from catlight.latent.protocol import leave_one_out_weights, score_function_surrogate
from catlight.latent.structured.base import Structure, exponential_log_density
from catlight.latent.structured.sample import StructuredSample, draw_structures

__all__ = ["ExponentialReinforce", "Relax", "StructuredEstimator", "TraceReinforce"]

Baseline = Literal["none", "leave_one_out"]


class StructuredEstimator(nn.Module):
    """Base class: draws perturbations, runs the structure, attaches a gradient rule.

    Subclasses implement :meth:`surrogate`.

    Args:
        num_samples: S >= 1 independent samples per example.

    Raises:
        ValueError: if ``num_samples`` is not an int >= 1.
    """

    def __init__(self, num_samples: int) -> None:
        super().__init__()
        check_int_at_least(type(self).__name__, "num_samples", num_samples, 1)
        self.num_samples = num_samples

    def forward(self, scores: Tensor, structure: Structure) -> StructuredSample:
        """Draw ``S`` perturbation vectors and their traces.

        Shapes:
            - scores: ``(*batch, n)`` float32
            - output: a StructuredSample with ``z`` of shape ``(S, *batch, ...)``
        """
        return draw_structures(structure, scores, self.num_samples, self.surrogate)

    def surrogate(self, sample: StructuredSample, cost: Tensor) -> Tensor:
        """The surrogate loss. Shapes: cost ``(S, *batch)`` float32 -> ``(*batch)``."""
        raise NotImplementedError


class _ScoreFunction(StructuredEstimator):
    """REINFORCE on a log-density of the sample, with an optional leave-one-out baseline.

    Holds the settings, checks and defaults of :class:`TraceReinforce` and
    :class:`ExponentialReinforce`.
    """

    def __init__(self, num_samples: int = 2, baseline: Baseline = "leave_one_out") -> None:
        super().__init__(num_samples)
        name = type(self).__name__
        if baseline not in ("none", "leave_one_out"):
            raise ValueError(
                f"{name}: baseline must be 'none' or 'leave_one_out', got {baseline!r}"
            )
        if baseline == "leave_one_out" and num_samples < 2:
            raise ValueError(
                f"{name}: baseline='leave_one_out' needs num_samples >= 2, got {num_samples}"
            )
        self.baseline = baseline

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_samples={self.num_samples}, baseline={self.baseline!r}"

    def log_density(self, sample: StructuredSample) -> Tensor:
        """The log-density whose score is used. Shapes: ``(S, *batch)``."""
        raise NotImplementedError

    def surrogate(self, sample: StructuredSample, cost: Tensor) -> Tensor:
        """``cost.mean(0)`` plus a zero-valued term carrying the score-function gradient."""
        fixed = cost.detach()
        if self.baseline == "leave_one_out":
            weights = leave_one_out_weights(fixed)
        else:
            weights = fixed / self.num_samples
        return score_function_surrogate(cost, weights, self.log_density(sample))


class TraceReinforce(_ScoreFunction):
    r"""T-REINFORCE: the score of the execution trace, ``(f - b) grad log p(T)``.

    With ``baseline="leave_one_out"`` this is "T-REINFORCE+" of Struminsky et al.

    Args:
        num_samples: S independent samples, averaged.
        baseline: ``"none"`` or ``"leave_one_out"`` (needs ``num_samples >= 2``).

    Raises:
        ValueError: for an unknown baseline, ``num_samples < 1``, or ``num_samples < 2``
            with the leave-one-out baseline.
    """

    def log_density(self, sample: StructuredSample) -> Tensor:
        """``log p(T)``, shape ``(S, *batch)``."""
        return sample.log_prob


class ExponentialReinforce(_ScoreFunction):
    r"""E-REINFORCE: the score of the perturbations, ``(f - b) grad log q(E)``.

    ``grad_theta_i log q(E) = 1 - exp(theta_i) E_i``. Unbiased, but with more variance
    than :class:`TraceReinforce` (whose score is the conditional expectation of this one
    given the trace); kept as the reference point of the paper.

    Args:
        num_samples: S independent samples, averaged.
        baseline: ``"none"`` or ``"leave_one_out"`` (needs ``num_samples >= 2``).

    Raises:
        ValueError: for an unknown baseline, ``num_samples < 1``, or ``num_samples < 2``
            with the leave-one-out baseline.
    """

    def log_density(self, sample: StructuredSample) -> Tensor:
        """``log q(E)`` at the drawn perturbations, shape ``(S, *batch)``."""
        return exponential_log_density(sample.scores, sample.exponentials.detach())


class Relax(StructuredEstimator):
    r"""RELAX with the conditional ``E | T`` control variate and a learned critic.

    For each sample, with ``E`` the reparameterised perturbations, ``T`` their trace and
    ``E~`` a reparameterised draw of ``E | T`` (fresh noise):

    ``g = [f(T) - c_phi(E~)] grad log p(T) + grad c_phi(E) - grad c_phi(E~)``

    (gradients in the scores), averaged over the ``S`` samples; unbiased for any critic.
    The critic is trained to minimise the variance of ``g``: ``objective`` also carries,
    with a zero value, the gradient ``d/dphi sum_i g_i^2`` (``E[g]`` does not depend on
    ``phi``), so the model's optimiser updates the critic with the rest of the model.
    ``g`` is the gradient in the scores (the network's outputs), found with
    ``torch.autograd.grad(..., create_graph=True)`` on a detached copy of the scores;
    without autograd (``torch.no_grad``) or when the scores need no gradient, the
    objective is ``cost.mean(0)`` alone.

    Args:
        critic: a module mapping perturbations ``(*shape, n)`` to ``(*shape)``, twice
            differentiable, e.g. :class:`~catlight.latent.structured.MLPCritic`.
        num_samples: S independent samples, averaged.

    Raises:
        ValueError: if ``critic`` is not an ``nn.Module`` or ``num_samples < 1``.
    """

    def __init__(self, critic: nn.Module, num_samples: int = 1) -> None:
        super().__init__(num_samples)
        if not isinstance(critic, nn.Module):
            raise ValueError(
                f"Relax: critic must be an nn.Module (e.g. MLPCritic), got {type(critic).__name__}"
            )
        self.critic = critic

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_samples={self.num_samples}"

    def surrogate(self, sample: StructuredSample, cost: Tensor) -> Tensor:
        """``cost.mean(0)`` plus zero-valued terms carrying ``g`` and the critic's gradient."""
        value = cost.mean(0)
        if not (torch.is_grad_enabled() and sample.scores.requires_grad):
            return value
        estimate = self.gradient_estimate(sample, cost.detach())  # (*batch, n), graph in phi
        score_term = (sample.scores * estimate.detach()).sum(-1)
        variance_term = estimate.square().sum(-1)
        return value + _zero_valued(score_term) + _zero_valued(variance_term)

    def gradient_estimate(self, sample: StructuredSample, cost: Tensor) -> Tensor:
        """The RELAX estimate ``g`` of each example, differentiable in the critic.

        Shapes:
            - cost: ``(S, *batch)``, detached
            - output: ``(*batch, n)``
        """
        scores = sample.scores.detach().requires_grad_()
        exponentials = sample.noise * torch.exp(-scores)
        conditional = sample.structure.conditional(scores, sample.trace)
        log_prob = sample.structure.log_prob(scores, sample.trace)
        control = self.critic(conditional.detach())
        surrogate = (
            (cost - control) * log_prob + self.critic(exponentials) - self.critic(conditional)
        )
        (estimate,) = torch.autograd.grad(surrogate.mean(0).sum(), scores, create_graph=True)
        return estimate


def _zero_valued(term: Tensor) -> Tensor:
    """``term - term.detach()``: value 0, gradient that of ``term``."""
    return term - term.detach()
