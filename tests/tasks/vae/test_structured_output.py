"""StructuredOutputPrediction: losses against enumeration, gradients, layer copies."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from catlight.latent import (
    Catnat,
    DiscreteLatent,
    Exact,
    GumbelSoftmax,
    LeaveOneOut,
    ReinMax,
    Softmax,
)
from catlight.tasks.vae import StructuredOutputPrediction

PIXELS = 12  # 6 on top, 6 to predict


def binary_images(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((count, PIXELS), 0.5), generator=generator)


def small_sbn(estimator, num_layers=2, num_latents=2, num_categories=3, parameterization=None):
    latent = DiscreteLatent(num_categories, parameterization or Softmax(), estimator)
    return StructuredOutputPrediction(
        latent=latent, num_latents=num_latents, num_layers=num_layers, image_size=PIXELS
    )


def one_layer_terms(model, images):
    """For a one-layer model, every z: log q(z | top) (B,) and log p(bottom | z) (B,)."""
    top, bottom = images[:, : PIXELS // 2], images[:, PIXELS // 2 :]
    num_latents, num_categories = model.num_latents, model.latents[0].num_categories
    log_q = torch.log_softmax(model.score_nets[0](top).view(-1, num_latents, num_categories), -1)
    for categories in itertools.product(range(num_categories), repeat=num_latents):
        z = F.one_hot(torch.tensor(categories), num_categories).float().flatten()
        logits = model.decoder(z).expand_as(bottom)
        pixel_nll = F.binary_cross_entropy_with_logits(logits, bottom, reduction="none")
        log_likelihood = -pixel_nll.sum(-1)
        yield log_q[:, range(num_latents), categories].sum(-1), log_likelihood


@pytest.mark.parametrize(
    "estimator",
    [GumbelSoftmax(tau=0.7), LeaveOneOut(num_samples=3)],
    ids=["pathwise_gumbel_softmax", "score_function_leave_one_out"],
)
def test_sbn_two_layers_give_every_parameter_a_gradient(estimator):
    torch.manual_seed(0)
    model = small_sbn(estimator)
    loss = model.loss(binary_images(4))
    assert loss.shape == (4,)
    assert torch.isfinite(loss).all() and (loss > 0).all()
    loss.mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_sbn_two_layers_sample_every_layer_per_sample_of_the_one_before():
    model = small_sbn(LeaveOneOut(num_samples=3))
    top = binary_images(4)[:, : PIXELS // 2]
    first = model.latents[0](model._scores(0, top))
    second = model.latents[1](model._scores(1, first.z.flatten(-2)))
    assert first.z.shape == (3, 4, 2, 3)
    assert second.z.shape == (3, 3, 4, 2, 3)


@pytest.mark.parametrize("parameterization", [Softmax(), Catnat()], ids=["softmax", "catnat"])
def test_sbn_one_layer_exact_loss_equals_the_enumerated_expectation(parameterization):
    torch.manual_seed(0)
    model = small_sbn(Exact(), num_layers=1, num_categories=2, parameterization=parameterization)
    images = binary_images(5)
    loss = model.loss(images)
    top = images[:, : PIXELS // 2]
    log_q_all = model.latents[0].log_probs(model._scores(0, top))
    expected = 0
    count = 0
    for categories in itertools.product(range(2), repeat=2):
        z = F.one_hot(torch.tensor(categories), 2).float().flatten()
        nll = F.binary_cross_entropy_with_logits(
            model.decoder(z).expand(5, -1), images[:, PIXELS // 2 :], reduction="none"
        ).sum(-1)
        expected = expected + log_q_all[:, range(2), categories].sum(-1).exp() * nll
        count += 1
    assert count == 4
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)


def test_sbn_one_layer_softmax_enumeration_matches_the_score_network():
    # the helper above reads q from the layer; check it against a plain log-softmax
    torch.manual_seed(0)
    model = small_sbn(Exact(), num_layers=1, num_categories=2)
    images = binary_images(3)
    expected = sum(log_q.exp() * -log_lik for log_q, log_lik in one_layer_terms(model, images))
    torch.testing.assert_close(model.loss(images), expected, rtol=1e-5, atol=1e-5)


def test_sbn_sample_nll_shape_and_convergence_to_the_exact_value():
    torch.manual_seed(0)
    model = small_sbn(Exact(), num_layers=1, num_categories=2)
    model.eval_chunk_size = 1000
    images = binary_images(4)
    nll = model.sample_nll(images, num_samples=4000)
    assert nll.shape == (4,)
    assert torch.isfinite(nll).all() and (nll > 0).all()
    # -log E_q[p(bottom | z)] by enumeration; 4000 samples of 4 configurations
    terms = torch.stack([log_q + log_lik for log_q, log_lik in one_layer_terms(model, images)])
    exact = -torch.logsumexp(terms, 0).detach()
    torch.testing.assert_close(nll, exact, rtol=0, atol=0.05)


def test_sbn_sample_nll_two_layers_chunks_give_shape_b():
    model = small_sbn(GumbelSoftmax())
    model.eval_chunk_size = 3
    nll = model.sample_nll(binary_images(4), num_samples=7)
    assert nll.shape == (4,)
    assert torch.isfinite(nll).all()


def test_sbn_layers_hold_distinct_latent_copies():
    model = small_sbn(GumbelSoftmax(tau=1.0), num_layers=3)
    latents = list(model.latents)
    assert len(latents) == 3
    for a, b in itertools.combinations(latents, 2):
        assert a is not b
        assert a.estimator is not b.estimator
        assert a.parameterization is not b.parameterization
        assert a.estimator.tau is not b.estimator.tau
    latents[0].estimator.set_tau(0.3)
    assert latents[1].estimator.tau.item() == pytest.approx(1.0)
    assert latents[2].estimator.tau.item() == pytest.approx(1.0)
    state = model.state_dict()
    assert state["latents.0.estimator.tau"].item() == pytest.approx(0.3)
    assert state["latents.2.estimator.tau"].item() == pytest.approx(1.0)


def test_sbn_layer_copies_keep_the_estimator_settings():
    model = small_sbn(ReinMax(tau=1.7), num_layers=2)
    for latent in model.latents:
        assert isinstance(latent.estimator, ReinMax)
        assert latent.estimator.tau.item() == pytest.approx(1.7)


def test_sbn_reconstruct_keeps_the_top_half():
    model = small_sbn(GumbelSoftmax())
    images = binary_images(5)
    reconstruction = model.reconstruct(images)
    assert reconstruction.shape == (5, PIXELS)
    torch.testing.assert_close(reconstruction[:, : PIXELS // 2], images[:, : PIXELS // 2])
    bottom = reconstruction[:, PIXELS // 2 :]
    assert ((bottom > 0) & (bottom < 1)).all()


def test_sbn_split_halves():
    model = small_sbn(GumbelSoftmax())
    images = torch.arange(2 * PIXELS, dtype=torch.float32).view(2, PIXELS)
    top, bottom = model.split(images)
    assert torch.equal(top, images[:, :6]) and torch.equal(bottom, images[:, 6:])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_layers": 0}, "num_layers and num_latents must be >= 1, got 0 and 20"),
        ({"num_latents": 0}, "num_layers and num_latents must be >= 1, got 2 and 0"),
        ({"image_size": 13}, "image_size must be even, got 13"),
    ],
    ids=["num_layers", "num_latents", "image_size"],
)
def test_sbn_rejects_invalid_settings(kwargs, message):
    with pytest.raises(ValueError, match=f"StructuredOutputPrediction: {message}"):
        StructuredOutputPrediction(**kwargs)


def test_sbn_default_latent_is_gumbel_softmax_over_ten_categories():
    model = StructuredOutputPrediction(num_latents=2, image_size=PIXELS)
    assert len(model.latents) == 2
    assert all(isinstance(latent.estimator, GumbelSoftmax) for latent in model.latents)
    assert model.latents[0].num_categories == 10


def test_sbn_optimizer_factory_builds_the_optimizer_over_every_parameter():
    model = StructuredOutputPrediction(
        image_size=PIXELS,
        optimizer=lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
    )
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["momentum"] == 0.9
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in model.parameters()}


def test_sbn_without_optimizer_uses_adam_with_the_learning_rate():
    optimizer = StructuredOutputPrediction(
        image_size=PIXELS, learning_rate=3e-4
    ).configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.defaults["lr"] == 3e-4
