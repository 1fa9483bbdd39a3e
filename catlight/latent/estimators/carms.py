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
    orderings: ``num_orderings / 2`` rotations of a base order, each starting at a
    random position (drawn anew for every variable of every example), and their
    reverses. The base order is a random permutation drawn once per call and shared
    by all variables. ``P_joint`` is the rectangle probability of the copula averaged
    over the family, computed in float64. Because the family holds each ordering's
    reverse, every pair of distinct categories has positive joint probability (under
    one ordering alone, two unlikely categories at its start could never be drawn
    together, and no weight could undo that), so the estimator is exactly unbiased,
    whatever the family: the family is drawn independently of the scores and the
    weights use the joint probability given it.

    Rotations cost no sort: a rotation's CDF is the base order's CDF shifted by the
    mass before its start, modulo 1, and a reverse rotation's is the mirror image, so
    one cumulative sum per variable serves the whole family, and a sample's interval
    under every ordering of the family is two subtractions. The cost per variable is
    ``O(K + num_orderings * n^2)``; a larger family gives flatter weights and a lower
    variance.

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
        num_rows, device = probs.shape[0], probs.device
        # one cumulative sum per row, over the base order shared by the whole call
        base_order = torch.randperm(num_categories, device=device)
        base_probs = probs[:, base_order]
        total = base_probs.sum(-1, keepdim=True)
        cdf = (base_probs.cumsum(-1) / total).clamp_(max=1.0)  # [M, K]
        cdf[:, -1] = 1.0
        before = torch.nn.functional.pad(cdf[:, :-1], (1, 0))  # mass before each position
        # the family: rotations of the base order starting at random positions, and
        # their reverses; a rotation's CDF is the base CDF shifted by the mass before
        # its start (modulo 1), so no per-row sort or cumulative sum is needed
        starts = torch.randint(num_categories, (num_rows, self.num_orderings // 2), device=device)
        start_mass = before.gather(-1, starts)  # [M, R]

        copula_dim = self.num_samples if num_categories == 2 or self.num_samples > 2 else 3
        uniforms = self._copula_uniforms(num_rows, copula_dim, device)  # [M, n]
        rows = torch.arange(num_rows, device=device)
        chosen = torch.randint(self.num_orderings, (num_rows,), device=device)
        reverse = (chosen >= self.num_orderings // 2).unsqueeze(-1)
        chosen_start = start_mass[rows, chosen % (self.num_orderings // 2)].unsqueeze(-1)
        # the mass in base order up to the sample: u after the start, or u before it
        target = torch.where(reverse, chosen_start - uniforms, chosen_start + uniforms)
        target = target - (target >= 1).double() + (target < 0).double()
        positions = torch.searchsorted(cdf, target, right=True).clamp_(max=num_categories - 1)
        indices = base_order[positions]  # [M, n]

        # each sample's CDF interval under every ordering of the family: [M, F, n]
        sample_probs = probs.gather(1, indices) / total
        upper_in_base = cdf.gather(1, positions).unsqueeze(1)  # [M, 1, n]
        lower_in_base = upper_in_base - sample_probs.unsqueeze(1)
        start_mass = start_mass.unsqueeze(-1)  # [M, R, 1]
        after_start = (positions.unsqueeze(1) >= starts.unsqueeze(-1)).double()  # [M, R, n]
        upper_forward = upper_in_base - start_mass + 1 - after_start
        upper_reverse = start_mass - lower_in_base + after_start
        upper = torch.cat([upper_forward, upper_reverse], dim=1)
        lower = upper - sample_probs.unsqueeze(1)
        pairs = torch.triu_indices(self.num_samples, self.num_samples, 1, device=device)
        joint = _pair_rectangles(lower, upper, pairs, copula_dim)  # [M, F, P]
        joint = joint.mean(1) if self.unbiased else joint[rows, chosen]
        weights = _importance_weights(joint, sample_probs, pairs)  # [M, n, n]

        batch_shape = log_probs.shape[:-1]
        samples = one_hot(indices.t().reshape(self.num_samples, *batch_shape), num_categories)
        weights = weights.permute(1, 2, 0).reshape(self.num_samples, self.num_samples, *batch_shape)
        scale = 1.0 / (self.num_samples * (self.num_samples - 1))

        def coefficients(cost: Tensor) -> Tensor:
            differences = (cost.unsqueeze(1) - cost.unsqueeze(0)).unsqueeze(-1)  # [n, n, *b, 1]
            return scale * (weights * differences).sum(1)  # [n, *batch, N]

        return score_function_sample(log_probs, samples, coefficients)

    def _copula_uniforms(self, num_rows: int, copula_dim: int, device: torch.device) -> Tensor:
        """Dirichlet-copula uniforms, the first n of ``copula_dim``. Shape ``(M, n)``."""
        exponentials = -torch.log(uniform_noise((num_rows, copula_dim), device)).double()
        simplex = exponentials / exponentials.sum(-1, keepdim=True)
        return (1 - simplex[:, : self.num_samples]).pow(copula_dim - 1)


def _pair_rectangles(low: Tensor, high: Tensor, pairs: Tensor, copula_dim: int) -> Tensor:
    """``P(u_i in [low_i, high_i], u_j in [low_j, high_j])`` for each pair ``i < j``.

    The pair CDF of the Dirichlet copula is ``C(a, b) = max(a^e + b^e - 1, 0)^(d-1)``
    with ``e = 1/(d-1)``; the rectangle mass is ``C(h, h) - C(l, h) - C(h, l) + C(l, l)``.
    The copula is exchangeable, so the mass is symmetric in ``i, j`` and only the
    ``P = n(n-1)/2`` pairs above the diagonal are computed. The powers ``^e`` are taken
    once per sample, not once per pair.

    Shapes: ``(..., n), (..., n), (2, P) -> (..., P)``.
    """
    exponent = 1.0 / (copula_dim - 1)
    low_power = low.clamp(min=0).pow(exponent)
    high_power = high.clamp(min=0).pow(exponent)
    first, second = pairs
    low_first = low_power.index_select(-1, first) - 1
    high_first = high_power.index_select(-1, first) - 1
    low_second = low_power.index_select(-1, second)
    high_second = high_power.index_select(-1, second)

    def cdf(first_power_minus_one: Tensor, second_power: Tensor) -> Tensor:
        return (first_power_minus_one + second_power).clamp_(min=0).pow_(copula_dim - 1)

    mass = cdf(high_first, high_second) - cdf(low_first, high_second)
    mass -= cdf(high_first, low_second)
    mass += cdf(low_first, low_second)
    return mass.clamp_(min=0)


def _importance_weights(joint: Tensor, sample_probs: Tensor, pairs: Tensor) -> Tensor:
    """``w_ij = q(z_i) q(z_j) / P_joint(z_i, z_j)``, symmetric, zero on the diagonal.

    Shapes: joint ``(M, P)`` for the pairs ``i < j``, sample_probs ``(M, n)``,
    pairs ``(2, P)`` -> ``(M, n, n)``.
    """
    first, second = pairs
    independent = sample_probs[:, first] * sample_probs[:, second]
    pair_weights = (independent / joint.clamp(min=torch.finfo(torch.float64).tiny)).float()
    num_samples = sample_probs.shape[-1]
    weights = pair_weights.new_zeros(joint.shape[0], num_samples, num_samples)
    weights[:, first, second] = pair_weights
    weights[:, second, first] = pair_weights
    return weights
