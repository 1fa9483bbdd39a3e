"""UnorderedSet: draws without replacement, exact set probabilities, exact when all drawn."""

import itertools
from collections import Counter

import pytest
import torch

from catlight.latent import DiscreteLatent, Softmax, UnorderedSet
from catlight.latent.estimators.unordered_set import (
    gumbel_top_k_configurations,
    set_probability_ratios,
)
from tests.latent.without_replacement import set_probability


def test_set_probability_ratios_match_enumerated_orders():
    torch.manual_seed(0)
    probs = torch.rand(12, dtype=torch.float64)
    probs = (probs / probs.sum()).tolist()
    members = [0, 3, 5, 7]
    log_ratio, log_pair_ratio = set_probability_ratios(
        torch.tensor(probs, dtype=torch.float64)[members].log()
    )
    whole = set_probability(probs, members)
    for i, s in enumerate(members):
        others = [t for t in members if t != s]
        without_s = set_probability(probs, others, [s])
        assert log_ratio[i].exp().item() == pytest.approx(without_s / whole, rel=1e-9)
        for j, t in enumerate(members):
            rest = [u for u in others if u != t]
            want = 1.0 if s == t else set_probability(probs, rest, [s, t]) / without_s
            assert log_pair_ratio[i, j].exp().item() == pytest.approx(want, rel=1e-9)


def test_gumbel_top_k_draws_distinct_sets_with_their_probability():
    # N = 2, K = 3, k = 2: 9 configurations, 36 sets; frequencies over 40000 draws
    torch.manual_seed(0)
    replicates = 40000
    log_probs = torch.randn(2, 3).log_softmax(-1)
    configs, _ = gumbel_top_k_configurations(log_probs.expand(replicates, 2, 3), 2)
    index = configs[..., 0] * 3 + configs[..., 1]  # (R, k)
    assert (index[:, 0] != index[:, 1]).all()
    counts = Counter(map(tuple, index.sort(-1).values.tolist()))
    joint = (log_probs[0, :, None] + log_probs[1, None, :]).exp().flatten().tolist()
    for pair in itertools.combinations(range(9), 2):
        want = set_probability(joint, pair)
        stderr = (want * (1 - want) / replicates) ** 0.5
        assert abs(counts[pair] / replicates - want) < 5 * stderr + 1e-4


def test_unordered_set_is_exact_when_k_covers_the_support():
    # N = 1, K = 3, k = 4: the set is all three categories, the extra row has weight 0
    torch.manual_seed(0)
    layer = DiscreteLatent(3, Softmax(), UnorderedSet(4))
    scores = torch.randn(5, 1, 3, requires_grad=True)
    weights = torch.randn(3)
    out = layer(scores)
    cost = (out.z * weights).sum((-2, -1))
    value = out.objective(cost)
    (grad,) = torch.autograd.grad(value.sum(), scores)
    exact_scores = scores.detach().clone().requires_grad_()
    exact = (exact_scores.softmax(-1) * weights).sum((-2, -1))
    (exact_grad,) = torch.autograd.grad(exact.sum(), exact_scores)
    torch.testing.assert_close(value, exact.detach())
    torch.testing.assert_close(grad, exact_grad)


def test_unordered_set_never_draws_a_masked_category():
    torch.manual_seed(0)
    layer = DiscreteLatent(3, Softmax(), UnorderedSet(4))
    out = layer(torch.randn(6, 1, 3), mask=torch.tensor([True, False, True]))
    assert (out.z[..., 1] == 0).all()
    assert torch.isfinite(out.objective(out.z[..., 0].sum(-1))).all()


@pytest.mark.parametrize(
    ("num_samples", "match"),
    [(1, r"num_samples must be an int >= 2"), (9, r"num_samples must be an int in \[2, 8\]")],
)
def test_unordered_set_rejects_bad_num_samples(num_samples, match):
    with pytest.raises(ValueError, match=match):
        UnorderedSet(num_samples)
