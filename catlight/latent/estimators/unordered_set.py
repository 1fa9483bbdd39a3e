"""The unordered set estimator: k joint configurations drawn without replacement.

Kool, van Hoof and Welling, "Estimating Gradients for Discrete Random Variables by
Sampling without Replacement", ICLR 2020. The k configurations of the N variables are
the Gumbel-top-k of the joint distribution over all ``K^N`` of them, drawn by
stochastic beam search (Kool, van Hoof and Welling, ICML 2019) without enumerating it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from catlight.latent.estimators.base import MultiSampleEstimator, gumbel_noise, one_hot
from catlight.latent.sample import LatentSample

__all__ = ["UnorderedSet", "gumbel_top_k_configurations", "set_probability_ratios"]

_MAX_SAMPLES = 8


def _log1mexp(x: Tensor) -> Tensor:
    """``log(1 - exp(x))`` for ``x <= 0``, accurate at both ends."""
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def _truncated_gumbel(parent_key: Tensor, perturbed: Tensor) -> Tensor:
    """Children's keys: their Gumbels conditioned on a maximum equal to the parent's key.

    Shapes: parent_key ``(..., 1)``, perturbed ``(..., K)`` -> ``(..., K)``.
    """
    top = perturbed.max(-1, keepdim=True).values
    shift = parent_key - perturbed + _log1mexp(perturbed - top)
    keys = parent_key - shift.clamp(min=0) - torch.log1p(torch.exp(-shift.abs()))
    impossible = (perturbed == -math.inf) | (parent_key == -math.inf)
    return keys.masked_fill(impossible, -math.inf)


def gumbel_top_k_configurations(log_probs: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k most perturbed joint configurations: k draws without replacement.

    Stochastic beam search over the variables in order: each partial configuration
    carries the maximum of the Gumbel-perturbed log-probabilities of its completions,
    and the k best of the ``k * K`` extensions are kept, so the result is the
    Gumbel-top-k of the joint over all ``K^N`` configurations. When fewer than k
    configurations have a nonzero probability, the extra ones have key -inf.

    Shapes:
        - log_probs: ``(*batch, N, K)``
        - output: configurations ``(*batch, k, N)`` (category indices) and their joint
          log-probabilities ``(*batch, k)`` float64, -inf for the extra ones
    """
    *batch, num_variables, num_categories = log_probs.shape
    log_probs = log_probs.detach().double()
    keys = torch.full((*batch, k), -math.inf, dtype=torch.float64, device=log_probs.device)
    keys[..., 0] = 0.0
    joint = keys.clone()
    configs = torch.zeros(*batch, k, 0, dtype=torch.long, device=log_probs.device)
    for variable in range(num_variables):
        child_joint = joint.unsqueeze(-1) + log_probs[..., variable, :].unsqueeze(-2)
        noise = gumbel_noise(tuple(child_joint.shape), log_probs.device).double()
        child_keys = _truncated_gumbel(keys.unsqueeze(-1), child_joint + noise)
        keys, chosen = child_keys.flatten(-2).topk(k, dim=-1)
        parents = torch.div(chosen, num_categories, rounding_mode="floor")
        joint = child_joint.flatten(-2).gather(-1, chosen).masked_fill(keys == -math.inf, -math.inf)
        configs = configs.gather(-2, parents.unsqueeze(-1).expand(*parents.shape, variable))
        configs = torch.cat([configs, (chosen % num_categories).unsqueeze(-1)], -1)
    return configs, joint


def _removed_sets(k: int) -> list[int]:
    """Bit masks of the removed sets: none, each element, each pair of elements."""
    singles = [1 << i for i in range(k)]
    pairs = [(1 << i) | (1 << j) for i in range(k) for j in range(i + 1, k)]
    return [0, *singles, *pairs]


def set_probability_ratios(log_p: Tensor) -> tuple[Tensor, Tensor]:
    """The leave-one-out ratios of the unordered set estimator, exactly.

    For the set ``S`` of the elements with finite ``log_p`` (drawn without replacement
    from a distribution ``p`` whose other elements hold the rest of the mass),
    ``P^C(B)`` is the probability that a draw without replacement from ``p`` with the
    elements ``C`` removed gives the set ``B`` first, summed over its orders by a
    recursion over subsets (``2^k`` of them, in log space). Returned:
    ``R[s] = P^{s}(S - s) / P(S)`` and
    ``R2[s, t] = P^{s, t}(S - s - t) / P^{s}(S - s)`` (1 on the diagonal).

    Shapes:
        - log_p: ``(*batch, k)`` float64, -inf for elements outside the set
        - output: log R ``(*batch, k)`` and log R2 ``(*batch, k, k)``
    """
    *batch, k = log_p.shape
    device = log_p.device
    removed = torch.tensor(_removed_sets(k), device=device)
    subsets = torch.arange(1 << k, device=device)
    bits = 1 << torch.arange(k, device=device)
    in_removed = (removed.unsqueeze(-1) & bits) > 0  # (C, k)
    in_subset = (subsets.unsqueeze(-1) & bits) > 0  # (2^k, k)
    # mass left before a draw: the rest of the distribution plus the set's elements
    # neither removed nor drawn yet, r + p(S - C - B): (*batch, C, 2^k)
    log_rest = _log1mexp(log_p.logsumexp(-1).clamp(max=0.0))
    excluded = in_removed.unsqueeze(1) | in_subset.unsqueeze(0)
    log_left = log_p[..., None, None, :].masked_fill(excluded, -math.inf).logsumexp(-1)
    log_left = torch.logaddexp(log_left, log_rest[..., None, None]).clamp(min=-1e30)
    log_set = torch.full(
        (*batch, len(removed), 1 << k), -math.inf, dtype=log_p.dtype, device=device
    )
    log_set[..., 0] = 0.0
    popcount = in_subset.sum(-1)
    for size in range(1, k + 1):
        members = subsets[popcount == size]
        terms = torch.full(
            (*batch, len(removed), len(members), k), -math.inf, dtype=log_p.dtype, device=device
        )
        for element in range(k):
            holds = (members & (1 << element)) > 0
            before = members[holds] ^ (1 << element)
            term = log_set[..., before] + log_p[..., element, None, None] - log_left[..., before]
            terms[..., holds, element] = term
        log_set[..., members] = terms.logsumexp(-1)
    full = (torch.isfinite(log_p).long() * bits).sum(-1)  # the set S as a bit mask
    targets = full.unsqueeze(-1) & ~removed  # S - C for each removed set C
    log_kept = log_set.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (*batch, C)
    log_whole, log_without_one = log_kept[..., 0], log_kept[..., 1 : k + 1]
    log_ratio = log_without_one - log_whole.unsqueeze(-1)
    log_without_pair = log_kept.new_zeros(*batch, k, k)
    index = k + 1
    for i in range(k):
        for j in range(i + 1, k):
            log_without_pair[..., i, j] = log_without_pair[..., j, i] = log_kept[..., index]
            index += 1
    log_pair_ratio = log_without_pair - log_without_one.unsqueeze(-1)
    log_pair_ratio = log_pair_ratio.masked_fill(torch.eye(k, dtype=torch.bool, device=device), 0.0)
    return log_ratio, log_pair_ratio


class UnorderedSet(MultiSampleEstimator):
    r"""The unordered set estimator with its built-in baseline (Kool et al., ICLR 2020).

    The ``k = num_samples`` configurations ``S`` of the N variables are drawn without
    replacement from the joint distribution ``q(z) = prod_n q_n(z_n)`` (no duplicates,
    so no wasted cost evaluations when q is peaked). With the leave-one-out ratio
    ``R(S, s) = q^{D-s}(S - s) / q(S)`` (the probability of the other elements once
    ``s`` is removed, over that of the set),

    ``grad = sum_{s in S} grad q(s) R(S, s) (f(s) - b(s))``,
    ``b(s) = q(s) f(s) + sum_{t in S, t != s} q(t) R^{D-s}(S - s, t) f(t)``:

    ``b(s)`` is an unbiased estimate of ``E[f]`` from ``s`` and the others, whose mean
    does not depend on ``s``, so the estimate stays unbiased and needs no cost
    evaluations beyond the k. ``objective`` returns ``sum_s q(s) R(S, s) f(s)``, an
    unbiased estimate of ``E[f]``. The set probabilities are computed exactly, summing
    over orders by a recursion over the ``2^k`` subsets, so k is at most 8.

    When fewer than k configurations have nonzero probability (few variables and
    categories, or a mask), ``S`` is all of them and the estimate is exact; the extra
    rows of ``z`` repeat the first configuration with weight 0.

    Args:
        num_samples: k, configurations without replacement, 2 to 8.

    Raises:
        ValueError: if ``num_samples`` is not an int in [2, 8].

    Shapes:
        - log_probs: ``(*batch, N, K)``
        - z: ``(k, *batch, N, K)`` one-hot
        - cost (argument of ``objective``): ``(k, *batch)``
    """

    _min_samples = 2

    def __init__(self, num_samples: int = 4) -> None:
        super().__init__(num_samples)
        if num_samples > _MAX_SAMPLES:
            raise ValueError(
                f"UnorderedSet: num_samples must be an int in [2, {_MAX_SAMPLES}] (the set "
                f"probabilities cost 2^k), got {num_samples!r}"
            )

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_samples={self.num_samples}"

    def forward(self, log_probs: Tensor) -> LatentSample:
        """Draw k configurations without replacement; see the class docstring."""
        num_categories = log_probs.shape[-1]
        configs, set_log_p = gumbel_top_k_configurations(log_probs, self.num_samples)
        in_set = set_log_p > -math.inf  # (*batch, k)
        configs = torch.where(in_set.unsqueeze(-1), configs, configs[..., :1, :])
        configs = configs.movedim(-2, 0)  # (k, *batch, N)
        expanded = log_probs.expand(self.num_samples, *log_probs.shape)
        joint = expanded.gather(-1, configs.unsqueeze(-1)).squeeze(-1).sum(-1)  # (k, *batch)
        log_ratio, log_pair_ratio = set_probability_ratios(set_log_p)
        value_weights = (set_log_p + log_ratio).exp()  # q(s) R(S, s), 0 outside the set
        baseline_weights = (set_log_p.unsqueeze(-2) + log_pair_ratio).exp()  # [s, t]

        def objective(cost: Tensor) -> Tensor:
            cost = cost.float().movedim(0, -1).masked_fill(~in_set, 0.0)  # (*batch, k)
            costs = cost.detach().double()
            baseline = (baseline_weights * costs.unsqueeze(-2)).sum(-1)
            score_weights = (value_weights * (costs - baseline)).float().movedim(-1, 0)
            value = (value_weights.float() * cost).sum(-1)
            return value + (score_weights * (joint - joint.detach())).sum(0)

        return LatentSample(log_probs, one_hot(configs, num_categories), objective)
