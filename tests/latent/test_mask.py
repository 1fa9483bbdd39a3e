"""Masking categories: every estimator x parameterization respects an explicit mask."""

import math

import pytest
import torch
from torch.distributions import Categorical, kl_divergence

from catlight.latent import Catnat, DiscreteLatent, Exact, LeaveOneOut, Softmax
from tests.latent.registry import EXAMPLES, PARAMETERIZATIONS

NUM_CATEGORIES = 5
# variable 0 keeps categories {1, 3}, variable 1 only {4}, variable 2 all but 0
MASK = torch.tensor(
    [
        [False, True, False, True, False],
        [False, False, False, False, True],
        [False, True, True, True, True],
    ]
)


def masked_layer(example, param_name):
    return DiscreteLatent(NUM_CATEGORIES, PARAMETERIZATIONS[param_name](), example.build())


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda ex: ex.id)
@pytest.mark.parametrize("param_name", list(PARAMETERIZATIONS))
def test_mask_no_sample_on_masked_category_and_everything_finite(example, param_name):
    torch.manual_seed(0)
    layer = masked_layer(example, param_name)
    scores = (3 * torch.randn(64, 3, layer.num_scores)).requires_grad_()
    out = layer(scores, mask=MASK)
    weights = torch.ones(out.num_samples, 64, 1, 1)
    if example.cls is Exact:  # z enumerates every configuration; weight 0 off the mask
        weights = (out.z * out.probs).sum(-1).prod(-1)[..., None, None]
    assert (out.z.detach() * weights * ~MASK).abs().max() == 0
    assert torch.isfinite(out.log_probs[:, MASK]).all()
    assert (out.log_probs[:, ~MASK] == -math.inf).all()
    cost = (out.z * torch.arange(5.0)).sum((-2, -1)) ** 2
    loss = out.objective(cost).sum() + out.kl().sum() + out.entropy().sum()
    loss.backward()
    assert torch.isfinite(scores.grad).all()
    assert torch.isfinite(out.kl()).all() and torch.isfinite(out.entropy()).all()


@pytest.mark.parametrize("param_name", list(PARAMETERIZATIONS))
def test_mask_renormalizes_over_allowed_categories(param_name):
    torch.manual_seed(0)
    layer = DiscreteLatent(NUM_CATEGORIES, PARAMETERIZATIONS[param_name]())
    scores = torch.randn(2, 3, layer.num_scores)
    unmasked = layer.log_probs(scores)
    masked = layer.log_probs(scores, MASK)
    torch.testing.assert_close(masked.logsumexp(-1), torch.zeros(2, 3))
    expected = unmasked.masked_fill(~MASK, -math.inf).log_softmax(-1)
    torch.testing.assert_close(masked, expected)
    assert layer.distribution(scores, MASK).sample((100,))[..., 1].eq(4).all()


def test_mask_kl_compares_with_prior_restricted_to_allowed_categories():
    torch.manual_seed(0)
    layer = DiscreteLatent(NUM_CATEGORIES, Catnat(), LeaveOneOut(2))
    out = layer(torch.randn(4, 3, layer.num_scores), mask=MASK)
    allowed = MASK.sum(-1).float()
    torch.testing.assert_close(out.kl(), allowed.log() - out.entropy())
    prior = torch.log_softmax(torch.randn(3, NUM_CATEGORIES), -1)
    restricted = prior.masked_fill(~MASK, -math.inf).log_softmax(-1)
    expected = kl_divergence(Categorical(logits=out.log_probs), Categorical(logits=restricted))
    torch.testing.assert_close(out.kl(prior), expected)


def test_mask_exact_ignores_infinite_cost_of_impossible_configurations():
    layer = DiscreteLatent(3, Softmax(), Exact())
    scores = torch.zeros(1, 1, 3, requires_grad=True)
    out = layer(scores, mask=torch.tensor([True, True, False]))
    cost = torch.tensor([[1.0], [3.0], [math.inf]])  # configuration 2 is masked
    value = out.objective(cost)
    value.sum().backward()
    torch.testing.assert_close(value, torch.tensor([2.0]))
    assert torch.isfinite(scores.grad).all()


def test_mask_with_every_category_masked_in_a_row_raises():
    layer = DiscreteLatent(3, Catnat(), LeaveOneOut(2))
    mask = torch.tensor([[True, False, False], [False, False, False]])
    with pytest.raises(ValueError, match=r"1 of 2 rows \(the first at index \(1,\)\) allow no"):
        layer(torch.zeros(2, 2), mask=mask)


def test_mask_and_negative_infinity_scores_leaving_no_category_raise():
    layer = DiscreteLatent(3, Softmax(), LeaveOneOut(2))
    scores = torch.tensor([[-math.inf, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"allow no category once masked"):
        layer(scores, mask=torch.tensor([True, False, False]))


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (torch.ones(3, dtype=torch.int64), "mask must be a bool tensor"),
        (torch.ones(4, 3, dtype=torch.bool), r"does not broadcast .* \(2, 3\)"),
    ],
)
def test_mask_rejects_wrong_dtype_or_shape(mask, match):
    layer = DiscreteLatent(3, Softmax(), LeaveOneOut(2))
    with pytest.raises(ValueError, match=match):
        layer(torch.zeros(2, 3), mask=mask)


def test_softmax_negative_infinity_score_still_masks():
    layer = DiscreteLatent(3, Softmax(), LeaveOneOut(4))
    scores = torch.tensor([[0.0, -math.inf, 1.0]], requires_grad=True)
    out = layer(scores)
    assert out.z[..., 1].sum() == 0
    torch.testing.assert_close(out.kl(), math.log(2) - out.entropy())
