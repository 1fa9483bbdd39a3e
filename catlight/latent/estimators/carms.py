"""CARMS: categorical antithetic REINFORCE with multiple samples (Dimitriev & Zhou 2021)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from catlight.latent._checks import check_int_at_least
from catlight.latent.estimators.base import MultiSampleEstimator, one_hot, uniform_noise
from catlight.latent.estimators.score import score_function_sample
from catlight.latent.sample import LatentSample

__all__ = ["CARMS"]


class CARMS(MultiSampleEstimator):
    r"""CARMS: n antithetic samples per variable, importance-weighted to stay unbiased.

    ``grad = 1/(n(n-1)) sum_i sum_{j != i} w_ij (f_i - f_j) grad log q(z_i)`` per
    variable, with ``w_ij = q(z_i) q(z_j) / P_joint(z_i, z_j)``.

    Sampling, for each of the N variables of each example independently: n uniforms
    coupled by the Dirichlet copula (``d ~ Dirichlet(1, ..., 1)``,
    ``u_k = (1 - d_k)^(n-1)``, each ``U(0, 1)``, negatively dependent) are mapped to
    categories by the inverse CDF over an ordering of the categories, shared by the
    n samples. The ordering is drawn uniformly from a family of ``num_orderings``
    orderings: ``num_orderings / 2`` random permutations (drawn anew for every
    variable of every example) and their reverses. ``P_joint`` is the rectangle
    probability of the copula averaged over the family, computed in float64.
    Because the family holds each ordering's reverse, every pair of distinct
    categories has positive joint probability (under one ordering alone, two unlikely
    categories at its start could never be drawn together, and no weight could undo
    that), so the estimator is exactly unbiased. A larger family gives flatter
    weights and a lower variance, at ``O(num_orderings * K)`` cost per variable.

    With K = 2 the family is the natural order and its reverse, and this is ARMS;
    with K = 2 and n = 2 the copula is countermonotone (``u_2 = 1 - u_1``), as in
    DisARM. For K > 2 and n = 2 a countermonotone pair would leave some pairs of
    categories impossible under every ordering, so the pair is taken from the
    three-dimensional Dirichlet copula instead.

    Args:
        num_samples: n >= 2 samples per variable.
        copula: the coupling of the uniforms; ``"dirichlet"``.
        unbiased: average ``P_joint`` over the family (exactly unbiased). With
            ``False``, the joint probability under the ordering actually drawn is used,
            as in the authors' recipe with one ordering: it can miss pairs and is
            slightly biased.
        num_orderings: size of the family of orderings, an even number >= 2.

    Raises:
        ValueError: if ``num_samples < 2``, the copula is unknown or
            ``num_orderings`` is not an even number >= 2.

    Shapes:
        - log_probs: ``(*batch, N, K)``
        - z: ``(n, *batch, N, K)`` one-hot
    """

    _min_samples = 2

    def __init__(
        self,
        num_samples: int = 2,
        copula: Literal["dirichlet"] = "dirichlet",
        unbiased: bool = True,
        num_orderings: int = 8,
    ) -> None:
        super().__init__(num_samples)
        if copula != "dirichlet":
            raise ValueError(f"CARMS: copula must be 'dirichlet', got {copula!r}")
        check_int_at_least("CARMS", "num_orderings", num_orderings, 2)
        if num_orderings % 2:
            raise ValueError(f"CARMS: num_orderings must be even, got {num_orderings}")
        self.copula = copula
        self.unbiased = unbiased
        self.num_orderings = num_orderings

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return (
            f"num_samples={self.num_samples}, copula={self.copula!r}, "
            f"unbiased={self.unbiased}, num_orderings={self.num_orderings}"
        )

    def forward(self, log_probs: Tensor) -> LatentSample:
        """Antithetic samples; see the class docstring for the gradient."""
        num_categories = log_probs.shape[-1]
        probs = log_probs.detach().reshape(-1, num_categories).double().exp()  # [M, K]
        num_rows = probs.shape[0]
        orderings = self._orderings(num_rows, num_categories, probs.device)  # [M, F, K]
        family = probs.unsqueeze(1).expand_as(orderings)
        upper_by_position = family.gather(-1, orderings).cumsum(-1)  # [M, F, K]
        upper_by_position = upper_by_position / upper_by_position[..., -1:]

        copula_dim = self.num_samples if num_categories == 2 or self.num_samples > 2 else 3
        uniforms = self._copula_uniforms(num_rows, copula_dim, probs.device)  # [M, n]
        chosen = torch.randint(orderings.shape[1], (num_rows,), device=probs.device)
        rows = torch.arange(num_rows, device=probs.device)
        position = torch.searchsorted(upper_by_position[rows, chosen], uniforms)
        indices = orderings[rows, chosen].gather(-1, position.clamp_(max=num_categories - 1))

        # each sample's CDF interval under every ordering of the family: [M, F, n]
        inverse = torch.empty_like(orderings).scatter_(
            -1, orderings, torch.arange(num_categories, device=probs.device).expand_as(orderings)
        )
        sample_positions = inverse.gather(-1, indices.unsqueeze(1).expand(-1, inverse.shape[1], -1))
        upper = upper_by_position.gather(-1, sample_positions)
        sample_probs = probs.gather(1, indices)
        lower = upper - sample_probs.unsqueeze(1)
        joint = _rectangle(lower, upper, copula_dim)  # [M, F, n, n]
        joint = joint.mean(1) if self.unbiased else joint[rows, chosen]
        weights = _importance_weights(joint, sample_probs)  # [M, n, n]

        batch_shape = log_probs.shape[:-1]
        samples = one_hot(indices.t().reshape(self.num_samples, *batch_shape), num_categories)
        weights = weights.permute(1, 2, 0).reshape(self.num_samples, self.num_samples, *batch_shape)
        scale = 1.0 / (self.num_samples * (self.num_samples - 1))

        def coefficients(cost: Tensor) -> Tensor:
            differences = (cost.unsqueeze(1) - cost.unsqueeze(0)).unsqueeze(-1)  # [n, n, *b, 1]
            return scale * (weights * differences).sum(1)  # [n, *batch, N]

        return score_function_sample(log_probs, samples, coefficients)

    def _orderings(self, num_rows: int, num_categories: int, device: torch.device) -> Tensor:
        """Each row's family: random permutations and their reverses. ``(M, F, K)``."""
        if num_categories == 2:
            permutations = torch.arange(2, device=device).expand(num_rows, 1, 2)
        else:
            noise = torch.rand(num_rows, self.num_orderings // 2, num_categories, device=device)
            permutations = noise.argsort(-1)
        return torch.cat([permutations, permutations.flip(-1)], dim=1)

    def _copula_uniforms(self, num_rows: int, copula_dim: int, device: torch.device) -> Tensor:
        """Dirichlet-copula uniforms, the first n of ``copula_dim``. Shape ``(M, n)``."""
        exponentials = -torch.log(uniform_noise((num_rows, copula_dim), device)).double()
        simplex = exponentials / exponentials.sum(-1, keepdim=True)
        return (1 - simplex[:, : self.num_samples]).pow(copula_dim - 1)


def _rectangle(low: Tensor, high: Tensor, copula_dim: int) -> Tensor:
    """``P(u_i in [low_i, high_i], u_j in [low_j, high_j])`` for all pairs i, j.

    The pair CDF of the Dirichlet copula is ``C(a, b) = max(a^e + b^e - 1, 0)^(d-1)``
    with ``e = 1/(d-1)``; the rectangle mass is ``C(h, h) - C(l, h) - C(h, l) + C(l, l)``.
    The powers ``^e`` are taken once per sample, not once per pair.

    Shapes: ``(..., n), (..., n) -> (..., n, n)``.
    """
    exponent = 1.0 / (copula_dim - 1)
    low_power = low.clamp(min=0).pow(exponent)
    high_power = high.clamp(min=0).pow(exponent)

    def cdf(first_power: Tensor, second_power: Tensor) -> Tensor:
        inner = first_power.unsqueeze(-1) + second_power.unsqueeze(-2) - 1
        return inner.clamp_(min=0).pow_(copula_dim - 1)

    mass = cdf(high_power, high_power) - cdf(low_power, high_power)
    mass -= cdf(high_power, low_power)
    mass += cdf(low_power, low_power)
    return mass.clamp_(min=0)


def _importance_weights(joint: Tensor, sample_probs: Tensor) -> Tensor:
    """``w_ij = q(z_i) q(z_j) / P_joint(z_i, z_j)``, zero on the diagonal.

    Shapes: joint ``(M, n, n)``, sample_probs ``(M, n)`` -> ``(M, n, n)``.
    """
    independent = sample_probs.unsqueeze(2) * sample_probs.unsqueeze(1)
    weights = independent / joint.clamp(min=torch.finfo(torch.float64).tiny)
    eye = torch.eye(joint.shape[-1], dtype=torch.bool, device=joint.device)
    return weights.masked_fill(eye, 0.0).float()
