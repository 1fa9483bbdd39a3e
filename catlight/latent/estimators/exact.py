"""Exact expectation by enumerating every joint configuration of the N variables."""

from __future__ import annotations

import torch
from torch import Tensor

from catlight.latent._checks import check_int_at_least
from catlight.latent.estimators.base import Estimator, one_hot
from catlight.latent.sample import LatentSample

__all__ = ["Exact"]


class Exact(Estimator):
    r"""Exact enumeration: ``E[f] = sum_z q(z) f(z)`` over all ``K^N`` configurations.

    ``z`` holds every joint configuration of the N variables (the same for every
    example); ``objective(cost)`` is the probability-weighted sum, whose value and
    gradient are exact. The cost grows as ``K^N``, so the number of configurations
    is capped.

    Under a mask, ``z`` still enumerates every configuration (it is shared by all
    examples), but one of probability exactly 0 (holding a masked category) has weight
    0, and its cost
    enters neither the value nor the gradient, even if it is inf or NaN.

    Args:
        max_configurations: the largest ``K^N`` allowed.

    Raises:
        ValueError: at construction if ``max_configurations < 2``; when used with
            ``K^N > max_configurations``.

    Shapes:
        - log_probs: ``(*batch, N, K)``
        - z: ``(K^N, *batch, N, K)`` (an expanded view: no copy per example)
    """

    def __init__(self, max_configurations: int = 10000) -> None:
        super().__init__()
        check_int_at_least("Exact", "max_configurations", max_configurations, 2)
        self.max_configurations = max_configurations

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"max_configurations={self.max_configurations}"

    def check_num_categories(self, num_categories: int) -> None:
        """Even one variable must fit in the enumeration budget."""
        if num_categories > self.max_configurations:
            raise ValueError(
                f"Exact: K = {num_categories} categories exceed max_configurations = "
                f"{self.max_configurations}"
            )

    def configurations(self, num_variables: int, num_categories: int, device) -> Tensor:
        """Every joint configuration as category indices, shape ``(K^N, N)``.

        Raises:
            ValueError: if ``K^N > max_configurations``.
        """
        count = num_categories**num_variables
        if count > self.max_configurations:
            raise ValueError(
                f"Exact: K^N = {num_categories}^{num_variables} = {count} configurations "
                f"exceed max_configurations = {self.max_configurations}; raise it or use "
                "a sampling estimator"
            )
        index = torch.arange(count, device=device).unsqueeze(-1)
        powers = num_categories ** torch.arange(num_variables - 1, -1, -1, device=device)
        return torch.div(index, powers, rounding_mode="floor") % num_categories

    def forward(self, log_probs: Tensor) -> LatentSample:
        """All configurations, weighted by their probability in ``objective``."""
        *batch, num_variables, num_categories = log_probs.shape
        configs = self.configurations(num_variables, num_categories, log_probs.device)
        count = configs.shape[0]
        view = (count, *([1] * len(batch)), num_variables)
        indices = configs.view(view).expand(count, *batch, num_variables)
        expanded = log_probs.expand(count, *log_probs.shape)
        joint_log_probs = expanded.gather(-1, indices.unsqueeze(-1)).squeeze(-1).sum(-1)
        z = one_hot(configs, num_categories).view(*view, num_categories)
        z = z.expand(count, *batch, num_variables, num_categories)

        def objective(cost: Tensor) -> Tensor:
            weights = joint_log_probs.exp()
            return (weights * cost.masked_fill(weights == 0, 0.0)).sum(0)

        return LatentSample(log_probs, z, objective)
