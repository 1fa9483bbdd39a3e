"""IndeCateR: the CatLog-derivative estimator, one cost per category of each variable.

De Smet, Sansone and Zuidberg Dos Martires, "Differentiable Sampling of Categorical
Distributions Using the CatLog-Derivative Trick", NeurIPS 2023.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from catlight.latent.estimators.base import MultiSampleEstimator, sample_categories
from catlight.latent.sample import LatentSample

__all__ = ["IndeCateR", "substituted_rows"]


def substituted_rows(samples: Tensor, log_probs: Tensor) -> Tensor:
    """Each sample repeated with one variable set to each of its categories in turn.

    Row ``(s, i, k)`` is sample ``s`` with variable ``i`` set to category ``k``. A
    category of probability exactly 0 (masked, log-probability -inf) is not put in:
    that row keeps the sampled category, so every row lies in the support.

    Shapes:
        - samples: ``(n, *batch, N, K)`` one-hot
        - log_probs: ``(*batch, N, K)``
        - output: ``(n, N, K, *batch, N, K)``
    """
    *batch, num_variables, num_categories = log_probs.shape
    ones = [1] * len(batch)
    # which variable a row substitutes, against each variable of the row: (1, N, 1, *1, N, 1)
    substituted = torch.eye(num_variables, dtype=torch.bool, device=samples.device)
    substituted = substituted.view(1, num_variables, 1, *ones, num_variables, 1)
    # the substituted category k of a row, one-hot: (1, 1, K, *1, 1, K)
    categories = torch.eye(num_categories, device=samples.device)
    categories = categories.view(1, 1, num_categories, *ones, 1, num_categories)
    # whether category k of variable i is in the support: (1, N, K, *batch, 1, 1)
    allowed = (log_probs > -math.inf).movedim(-1, 0).movedim(-1, 0)
    allowed = allowed.view(1, num_variables, num_categories, *batch, 1, 1)
    base = samples.view(samples.shape[0], 1, 1, *samples.shape[1:])
    return torch.where(substituted & allowed, categories, base)


class IndeCateR(MultiSampleEstimator):
    r"""IndeCateR: the exact sum over each variable's categories, the others sampled.

    For N independent variables, ``grad E[f] = sum_i E_{z_-i}[sum_k grad q_i(k)
    f(z_-i, z_i = k)]``. For each of ``n`` samples ``z^s`` and each variable ``i``, the
    cost is evaluated with ``z_i`` set to every category ``k`` and the other variables
    as sampled, and the gradient is
    ``1/n sum_s sum_i sum_k grad q_i(k) f(z^s_-i, k)``: unbiased. Summing over every
    category of a variable already removes any baseline that does not depend on it
    (``sum_k grad q_i(k) = 0``), so none is added.

    **Cost evaluations.** ``z`` has ``S = n * N * K`` rows per example: ``N * K`` cost
    evaluations per sample (the VAE's 20 variables x 10 categories with ``n = 1``: 200
    decoder passes per example, 200x REINFORCE's). It is affordable when the cost is
    cheap next to the encoder or ``N * K`` is small (a few variables, a few categories);
    with hundreds of rows per sample it is slow (200 Bernoulli latents: 400 decoder
    passes per example), and the NRI configs leave it out.

    **Value.** ``objective`` returns the Rao-Blackwellised average
    ``1/(n N) sum_s sum_i sum_k q_i(k) f(z^s_-i, k)``: for each ``s`` and ``i``, the exact
    expectation over ``z_i`` given the sampled others, so an unbiased estimate of
    ``E[f]`` whose gradient with respect to the cost's own parameters is unbiased too.

    Under a mask, a category of probability 0 is never put in (its row keeps the
    sampled category, weight 0).

    Args:
        num_samples: ``n >= 1`` samples of the other variables.

    Raises:
        ValueError: if ``num_samples < 1``.

    Shapes:
        - log_probs: ``(*batch, N, K)``
        - z: ``(n * N * K, *batch, N, K)`` one-hot, row ``(s, i, k)`` at
          ``s * N * K + i * K + k``
        - cost (argument of ``objective``): ``(n * N * K, *batch)``
    """

    def __init__(self, num_samples: int = 1) -> None:
        super().__init__(num_samples)

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_samples={self.num_samples}"

    def forward(self, log_probs: Tensor) -> LatentSample:
        """Samples with every single-variable substitution; see the class docstring."""
        *batch, num_variables, num_categories = log_probs.shape
        samples = sample_categories(log_probs, self.num_samples)
        rows = substituted_rows(samples, log_probs)
        z = rows.reshape(-1, *batch, num_variables, num_categories)
        # q_i(k) of the substituted category of each row: (n, N, K, *batch)
        probs = log_probs.float().exp().movedim(-1, 0).movedim(-1, 0)
        probs = probs.expand(self.num_samples, *probs.shape)

        def objective(cost: Tensor) -> Tensor:
            cost = cost.float().view(self.num_samples, num_variables, num_categories, *batch)
            cost = cost.masked_fill(probs.detach() == 0, 0.0)
            value = (probs.detach() * cost).sum((0, 1, 2)) / (self.num_samples * num_variables)
            score = ((probs - probs.detach()) * cost.detach()).sum((0, 1, 2))
            return value + score / self.num_samples

        return LatentSample(log_probs, z, objective)
