"""GumbelRao: exact conditional Gumbels, ST-GS's mean gradient with less variance."""

import math

import pytest
import torch

from catlight.latent import (
    Catnat,
    DiscreteLatent,
    GumbelRao,
    Softmax,
    StraightThroughGumbelSoftmax,
)
from catlight.latent.estimators.base import sample_categories
from catlight.latent.estimators.gumbel_rao import conditional_gumbel_logits

EULER_GAMMA = 0.5772156649015329
# two-sided z bound per coordinate; with 4 coordinates a false alarm rate of 3e-5
Z_BOUND = 4.5


def per_example_gradients(estimator, logits, weights, batch, seed):
    """Gradient estimates of ``E[(z . w)^2]`` w.r.t. logits, one per row of a batch.

    Shapes: ``(N, K), (N, K) -> (batch, N * K)``.
    """
    torch.manual_seed(seed)
    scores = logits.expand(batch, *logits.shape).clone().requires_grad_()
    z = estimator(torch.log_softmax(scores, -1)).z
    (z * weights).sum((-2, -1)).square().sum().backward()
    return scores.grad.reshape(batch, -1)


def test_conditional_gumbels_have_the_sample_as_argmax_and_the_right_shape():
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(6, 3, 5), -1)
    samples = sample_categories(log_probs, 4)
    perturbed = conditional_gumbel_logits(log_probs, samples, num_gumbels=7)
    assert perturbed.shape == (7, 4, 6, 3, 5)
    assert torch.isfinite(perturbed).all()
    assert torch.equal(perturbed.argmax(-1), samples.argmax(-1).expand(7, 4, 6, 3))


def test_conditional_gumbels_with_a_sample_from_p_are_independent_gumbels():
    """Marginally over D ~ p the draws are log p + Gumbel: mean log p + gamma, var pi^2/6."""
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.tensor([1.0, -0.5, 0.3, -2.0]), -1)
    samples = sample_categories(log_probs, 200_000)
    perturbed = conditional_gumbel_logits(log_probs, samples, num_gumbels=1)[0]
    noise = perturbed - log_probs
    variance = math.pi**2 / 6
    standard_error = math.sqrt(variance / samples.shape[0])
    assert (noise.mean(0) - EULER_GAMMA).abs().max() < Z_BOUND * standard_error
    assert (noise.var(0) / variance - 1).abs().max() < 0.03
    correlation = torch.corrcoef(noise.T) - torch.eye(4)
    assert correlation.abs().max() < 0.02


def test_conditional_gumbels_give_masked_categories_minus_infinity():
    log_probs = torch.log(torch.tensor([[0.5, 0.0, 0.5]]))
    samples = torch.tensor([[[1.0, 0.0, 0.0]]])
    perturbed = conditional_gumbel_logits(log_probs, samples, num_gumbels=3)
    assert (perturbed[..., 1] == -math.inf).all()
    assert torch.isfinite(perturbed[..., [0, 2]]).all()


@pytest.mark.parametrize("parameterization", [Softmax(), Catnat()], ids=["softmax", "catnat"])
def test_gumbel_rao_forward_is_one_hot_with_the_category_frequencies(parameterization):
    torch.manual_seed(0)
    estimator = GumbelRao(tau=0.5, num_samples=4, num_gumbels=3)
    layer = DiscreteLatent(5, parameterization, estimator)
    scores = torch.randn(1, 1, layer.num_scores).expand(20_000, 1, -1)
    out = layer(scores)
    z = out.z.detach()
    assert ((z == 0) | (z == 1)).all() and (z.sum(-1) == 1).all()
    probs = out.log_probs[0, 0].exp()
    frequencies = z.mean((0, 1, 2))
    standard_error = (probs * (1 - probs) / 80_000).sqrt()
    assert ((frequencies - probs).abs() < Z_BOUND * standard_error).all()


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_gumbel_rao_mean_gradient_is_that_of_st_gs_with_lower_variance(tau):
    """Same estimator in expectation; measured variance ratios 0.51, 0.73, 0.89 (R = 10)."""
    torch.manual_seed(0)
    logits, weights = torch.randn(1, 4), torch.randn(1, 4)
    batch = 40_000
    st_gs = per_example_gradients(StraightThroughGumbelSoftmax(tau), logits, weights, batch, 1)
    rao = per_example_gradients(GumbelRao(tau, num_gumbels=10), logits, weights, batch, 2)
    standard_error = ((st_gs.var(0) + rao.var(0)) / batch).sqrt()
    assert ((st_gs.mean(0) - rao.mean(0)).abs() < Z_BOUND * standard_error).all()
    assert rao.var(0).sum() < 0.95 * st_gs.var(0).sum()


def test_gumbel_rao_with_one_draw_has_the_variance_of_st_gs():
    torch.manual_seed(0)
    logits, weights = torch.randn(1, 4), torch.randn(1, 4)
    st_gs = per_example_gradients(StraightThroughGumbelSoftmax(1.0), logits, weights, 40_000, 1)
    rao = per_example_gradients(GumbelRao(1.0, num_gumbels=1), logits, weights, 40_000, 2)
    assert 0.95 < rao.var(0).sum() / st_gs.var(0).sum() < 1.05


def test_gumbel_rao_more_draws_lower_the_variance():
    torch.manual_seed(0)
    logits, weights = torch.randn(1, 4), torch.randn(1, 4)
    variances = [
        per_example_gradients(GumbelRao(0.5, num_gumbels=r), logits, weights, 20_000, 1)
        .var(0)
        .sum()
        for r in (1, 4, 32)
    ]
    assert variances[0] > variances[1] > variances[2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tau": 0.0}, r"GumbelRao: tau must be a finite number > 0, got 0.0"),
        ({"num_samples": 0}, r"GumbelRao: num_samples must be an int >= 1, got 0"),
        ({"num_gumbels": 0}, r"GumbelRao: num_gumbels must be an int >= 1, got 0"),
        ({"num_gumbels": 2.5}, r"GumbelRao: num_gumbels must be an int >= 1, got 2.5"),
    ],
)
def test_gumbel_rao_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GumbelRao(**kwargs)
