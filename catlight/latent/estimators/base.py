"""The estimator interface and the sampling primitives every estimator shares.

All sampling math runs in float32: uniforms are clamped away from 0 and 1 before
any log, so Gumbel noise is finite whatever the autocast dtype of the scores.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from catlight.latent._checks import check_int_at_least
from catlight.latent.sample import LatentSample

__all__ = ["Estimator", "gumbel_noise", "sample_categories", "uniform_noise"]

_FLOAT32 = torch.finfo(torch.float32)


class Estimator(nn.Module):
    """Base class: turns normalized log-probabilities into a :class:`LatentSample`.

    Subclasses implement :meth:`forward`. They hold their settings as plain
    attributes and any state that must survive a checkpoint (a temperature, a
    moving-average baseline) as buffers. That state changes only in :meth:`step`,
    never as a side effect of drawing samples or of calling ``objective``.
    """

    num_samples: int = 1

    def forward(self, log_probs: Tensor) -> LatentSample:
        """Draw samples and attach the estimator's gradient rule.

        Shapes:
            - log_probs: ``(*batch, N, K)`` float32, normalized
            - output: a LatentSample with ``z`` of shape ``(S, *batch, N, K)``
        """
        raise NotImplementedError

    def step(self) -> None:
        """Advance the estimator's state by one optimisation step (a no-op by default).

        Call it once after every ``optimizer.step()``: ``DiscreteLatent.step()`` in
        plain torch; in Lightning the :class:`~catlight.callbacks.EstimatorStep`
        callback does it. The temperature schedule of the Gumbel-Softmax estimators
        and the moving-average baseline of REINFORCE advance here.
        """

    def check_num_categories(self, num_categories: int) -> None:
        """Raise a ValueError if this estimator cannot serve ``num_categories``."""


class MultiSampleEstimator(Estimator):
    """An estimator that draws ``num_samples`` samples; validates that number."""

    _min_samples = 1

    def __init__(self, num_samples: int) -> None:
        super().__init__()
        check_int_at_least(type(self).__name__, "num_samples", num_samples, self._min_samples)
        self.num_samples = num_samples


def uniform_noise(shape: tuple[int, ...], device: torch.device) -> Tensor:
    """Float32 uniforms in the open interval (0, 1).

    Shapes:
        - output: ``shape``
    """
    noise = torch.rand(shape, device=device, dtype=torch.float32)
    return noise.clamp_(_FLOAT32.tiny, 1.0 - _FLOAT32.eps)


def gumbel_noise(shape: tuple[int, ...], device: torch.device) -> Tensor:
    """Standard Gumbel noise ``-log(-log u)`` in float32, always finite.

    Shapes:
        - output: ``shape``
    """
    return -torch.log(-torch.log(uniform_noise(shape, device)))


def sample_categories(log_probs: Tensor, num_samples: int) -> Tensor:
    """Independent one-hot samples, by inverse CDF.

    One float64 cumulative sum per distribution and a binary search per sample:
    cheaper than Gumbel-max (a full pass of noise per sample) for many categories.

    Shapes:
        - log_probs: ``(*batch, N, K)``
        - output: ``(S, *batch, N, K)`` float32 one-hot, ``S = num_samples``
    """
    cdf = log_probs.detach().double().exp().cumsum(-1)
    cdf = cdf / cdf[..., -1:]
    uniforms = torch.rand(*cdf.shape[:-1], num_samples, dtype=cdf.dtype, device=cdf.device)
    # right=True: the category k with cdf[k-1] <= u < cdf[k], never one of probability 0
    indices = torch.searchsorted(cdf, uniforms, right=True).clamp_(max=cdf.shape[-1] - 1)
    return one_hot(indices.movedim(-1, 0), cdf.shape[-1])


def one_hot(indices: Tensor, num_categories: int) -> Tensor:
    """Float32 one-hot encoding. Shapes: ``(*shape) -> (*shape, K)``."""
    encoding = torch.zeros(*indices.shape, num_categories, device=indices.device)
    return encoding.scatter_(-1, indices.unsqueeze(-1), 1.0)
