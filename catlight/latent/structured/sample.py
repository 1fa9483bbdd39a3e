"""StructuredSample: what a StructuredLatent returns."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from catlight.latent.protocol import Sample
from catlight.latent.structured.base import (
    Structure,
    Trace,
    unit_exponentials,
)

__all__ = ["StructuredSample", "draw_structures"]

Rule = Callable[["StructuredSample", Tensor], Tensor]


class StructuredSample(Sample):
    """Samples of a structure with the estimator's gradient attached.

    Built by a structured estimator; model code reads :attr:`z`, computes one cost per
    sample and example, and minimises :meth:`objective` of it, exactly as with a
    :class:`~catlight.latent.LatentSample`.

    Args:
        structure: the structure that built the traces.
        scores: float32 scores ``theta`` (the rates of the perturbations are ``exp(theta)``).
        noise: the ``Exp(1)`` draws behind the perturbations.
        trace: the algorithm's trace on each sample's perturbations.
        rule: the estimator's rule ``(sample, cost) -> surrogate``; None for samples
            drawn without an estimator (:meth:`StructuredLatent.sample`), whose
            :meth:`objective` raises.

    Attributes:
        exponentials: the perturbations ``E = noise * exp(-scores)``, differentiable
            in the scores (reparameterised).
        z: the sampled structures, ``structure.encode(trace)``.
        log_prob: ``log p(T)`` of each sample's trace, differentiable in the scores.

    Shapes:
        - scores: ``(*batch, n)``
        - noise, exponentials: ``(S, *batch, n)``
        - trace: ``selected`` ``(S, *batch, T)``, ``active`` ``(S, *batch, T, n)``
        - z: ``(S, *batch, ...)`` (see the structure)
        - log_prob: ``(S, *batch)``
        - cost (argument of :meth:`objective`): ``(S, *batch)``; output ``(*batch)``
        - kl: ``(S, *batch)``, one estimate per sample
    """

    def __init__(
        self,
        structure: Structure,
        scores: Tensor,
        noise: Tensor,
        trace: Trace,
        rule: Rule | None,
    ) -> None:
        self.structure = structure
        self.scores = scores
        self.noise = noise
        self.trace = trace
        self.exponentials = noise * torch.exp(-scores)
        self.z = structure.encode(trace)
        self.log_prob = structure.log_prob(scores, trace)
        self.batch_shape = tuple(scores.shape[:-1])
        self._rule = rule

    def surrogate(self, cost: Tensor) -> Tensor:
        """The estimator's rule. Shapes: cost ``(S, *batch)`` float32 -> ``(*batch)``.

        Raises:
            ValueError: if the samples were drawn without an estimator.
        """
        if self._rule is None:
            raise ValueError(
                "StructuredSample.objective: these samples were drawn by "
                "StructuredLatent.sample, without an estimator; call the layer "
                "(layer(scores)) for samples with a gradient"
            )
        return self._rule(self, cost)

    def kl(self, prior_log_probs: Tensor | None = None) -> Tensor:
        r"""One-sample estimate of ``KL(q(tau) || prior over traces)`` for each sample.

        The structure's :meth:`~catlight.latent.structured.Structure.trace_kl`: for most
        structures ``log_num_traces - sum_t H(softmax_{A_t}(theta))`` on each sample's
        trace (see :func:`~catlight.latent.structured.trace_kl_to_uniform`), the prior
        being uniform over the structures with a uniform order of their steps; for
        :class:`~catlight.latent.structured.Arborescence` the trace distribution at
        zero scores. Unbiased, and differentiable in the scores for the sampled trace,
        so add it to the cost given to :meth:`objective` (``objective(nll + kl)``),
        which differentiates it both ways. No other prior is offered.

        Args:
            prior_log_probs: must be None (the structure's own prior).

        Raises:
            ValueError: if ``prior_log_probs`` is given.

        Shapes:
            - output: ``(S, *batch)``
        """
        if prior_log_probs is not None:
            raise ValueError(
                "StructuredSample.kl: prior_log_probs must be None (the structure's own "
                f"prior over traces), got a tensor of shape {tuple(prior_log_probs.shape)}"
            )
        return self.structure.trace_kl(self.scores, self.trace)

    def __repr__(self) -> str:
        return (
            f"StructuredSample({type(self.structure).__name__}, "
            f"scores={tuple(self.scores.shape)}, z={tuple(self.z.shape)})"
        )


def draw_structures(
    structure: Structure, scores: Tensor, num_samples: int, rule: Rule | None = None
) -> StructuredSample:
    """Draw ``num_samples`` perturbation vectors ``E = noise * exp(-theta)`` and their traces.

    Args:
        structure: the structure whose algorithm runs on the perturbations.
        scores: float32 scores ``theta``.
        num_samples: S, independent samples per example.
        rule: the estimator's rule, or None (no objective).

    Shapes:
        - scores: ``(*batch, n)``
        - output: a StructuredSample with ``z`` of shape ``(S, *batch, ...)``
    """
    noise = unit_exponentials((num_samples, *scores.shape), scores.device)
    trace = structure.trace(noise * torch.exp(-scores.detach()))
    return StructuredSample(structure, scores, noise, trace, rule)
