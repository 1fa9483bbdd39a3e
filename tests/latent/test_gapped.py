"""GappedStraightThrough: the sample leads the perturbed logits by the gap."""

import math

import pytest
import torch

from catlight.latent import (
    Catnat,
    DiscreteLatent,
    GappedStraightThrough,
    Softmax,
    StraightThrough,
)
from catlight.latent.estimators.base import sample_categories
from catlight.latent.estimators.gapped import gapped_logits

Z_BOUND = 4.5  # two-sided z bound per category; with 5 categories a false alarm rate of 4e-5


@pytest.mark.parametrize("gap", [0.5, 1.0, 3.0])
def test_gapped_logits_lead_with_the_sample_by_the_gap(gap):
    torch.manual_seed(0)
    log_probs = torch.log_softmax(2 * torch.randn(50, 3, 6), -1)
    samples = sample_categories(log_probs, 4)
    perturbed = gapped_logits(log_probs, samples, gap)
    chosen = (perturbed * samples).sum(-1)
    others = perturbed.masked_fill(samples.bool(), -math.inf).amax(-1)
    assert torch.equal(perturbed.argmax(-1), samples.argmax(-1))
    assert (chosen - others >= gap - 1e-5).all()
    torch.testing.assert_close(chosen, log_probs.amax(-1).expand_as(chosen))


def test_gapped_logits_move_only_what_breaks_the_gap():
    log_probs = torch.tensor([[0.0, -0.5, -3.0, -math.inf]])
    samples = torch.tensor([[[0.0, 0.0, 1.0, 0.0]]])
    perturbed = gapped_logits(log_probs, samples, gap=1.0)
    expected = torch.tensor([[[-1.0, -1.0, 0.0, -math.inf]]])
    torch.testing.assert_close(perturbed, expected)


@pytest.mark.parametrize("parameterization", [Softmax(), Catnat()], ids=["softmax", "catnat"])
def test_gapped_forward_is_one_hot_with_the_category_frequencies(parameterization):
    torch.manual_seed(0)
    layer = DiscreteLatent(5, parameterization, GappedStraightThrough(num_samples=4))
    scores = torch.randn(1, 1, layer.num_scores).expand(20_000, 1, -1)
    out = layer(scores)
    z = out.z.detach()
    assert ((z == 0) | (z == 1)).all() and (z.sum(-1) == 1).all()
    probs = out.log_probs[0, 0].exp()
    standard_error = (probs * (1 - probs) / 80_000).sqrt()
    assert ((z.mean((0, 1, 2)) - probs).abs() < Z_BOUND * standard_error).all()


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("gap", [0.5, 1.0])
def test_gapped_gradient_is_the_softmax_jacobian_at_the_gapped_logits(tau, gap):
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(8, 3, 5), -1).requires_grad_()
    upstream = torch.randn(2, 8, 3, 5)
    torch.manual_seed(1)
    z = GappedStraightThrough(tau, num_samples=2, gap=gap)(log_probs).z
    (z * upstream).sum().backward()
    torch.manual_seed(1)
    samples = sample_categories(log_probs, 2)
    assert torch.equal(z.detach(), samples)
    reference = log_probs.detach().clone().requires_grad_()
    offset = gapped_logits(reference, samples, gap) - reference.detach()
    (torch.softmax((reference + offset) / tau, -1) * upstream).sum().backward()
    torch.testing.assert_close(log_probs.grad, reference.grad)


def test_gapped_is_straight_through_when_the_mode_already_leads_by_the_gap():
    log_probs = torch.log_softmax(torch.tensor([[8.0, 0.5, 0.0, -1.0]]), -1)
    upstream = torch.randn(3, 1, 4)
    gradients = []
    for estimator in (GappedStraightThrough(0.7, num_samples=3), StraightThrough(0.7, 3)):
        scores = log_probs.clone().requires_grad_()
        torch.manual_seed(0)  # the mode, p = 0.999, is drawn three times with this seed
        z = estimator(scores).z
        assert (z.argmax(-1) == 0).all()
        (z * upstream).sum().backward()
        gradients.append(scores.grad)
    torch.testing.assert_close(gradients[0], gradients[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tau": -1.0}, r"GappedStraightThrough: tau must be a finite number > 0, got -1.0"),
        ({"num_samples": 0}, r"GappedStraightThrough: num_samples must be an int >= 1, got 0"),
        ({"gap": 0.0}, r"GappedStraightThrough: gap must be a finite number > 0, got 0.0"),
        ({"gap": math.inf}, r"GappedStraightThrough: gap must be a finite number > 0, got inf"),
    ],
)
def test_gapped_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GappedStraightThrough(**kwargs)
