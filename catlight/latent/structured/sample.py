"""StructuredSample: what a StructuredLatent returns."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from catlight.latent.structured.base import Structure, Trace

__all__ = ["StructuredSample"]


class StructuredSample:
    """Samples of a structure with the estimator's gradient attached.

    Built by a structured estimator; model code reads :attr:`z`, computes one cost per
    sample and example, and minimises :meth:`objective` of it, exactly as with a
    :class:`~catlight.latent.LatentSample`.

    Args:
        structure: the structure that built the traces.
        scores: float32 scores ``theta`` (the rates of the perturbations are ``exp(theta)``).
        noise: the ``Exp(1)`` draws behind the perturbations.
        trace: the algorithm's trace on each sample's perturbations.
        rule: the estimator's rule ``(sample, cost) -> surrogate``.

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
    """

    def __init__(
        self,
        structure: Structure,
        scores: Tensor,
        noise: Tensor,
        trace: Trace,
        rule: Callable[[StructuredSample, Tensor], Tensor],
    ) -> None:
        self.structure = structure
        self.scores = scores
        self.noise = noise
        self.trace = trace
        self.exponentials = noise * torch.exp(-scores)
        self.z = structure.encode(trace)
        self.log_prob = structure.log_prob(scores, trace)
        self._rule = rule

    @property
    def num_samples(self) -> int:
        """S, the number of samples along the leading dimension."""
        return self.noise.shape[0]

    def objective(self, cost: Tensor) -> Tensor:
        """Surrogate loss for ``E[cost]``: its value is ``cost.mean(0)``.

        Its gradient is the estimator's gradient for the scores and the pathwise
        gradient for whatever produced ``cost``. The math runs in float32 with autocast
        off.

        Shapes:
            - cost: ``(S, *batch)``, one cost per sample and example
            - output: ``(*batch)``

        Raises:
            ValueError: if ``cost`` does not have shape ``(S, *batch)``.
        """
        expected = (self.num_samples, *self.scores.shape[:-1])
        if tuple(cost.shape) != expected:
            raise ValueError(
                f"StructuredSample.objective: cost must have shape (S, *batch) = {expected}, "
                f"got {tuple(cost.shape)}; reduce over everything but the sample and "
                "batch dimensions first"
            )
        with torch.autocast(device_type=cost.device.type, enabled=False):
            return self._rule(self, cost.float())

    def __repr__(self) -> str:
        return (
            f"StructuredSample({type(self.structure).__name__}, "
            f"scores={tuple(self.scores.shape)}, z={tuple(self.z.shape)})"
        )
