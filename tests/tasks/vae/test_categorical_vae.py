"""CategoricalVAE: its loss against enumeration, its bounds, prior and shapes."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from catlight.latent import DiscreteLatent, Exact, GumbelSoftmax, LeaveOneOut, Softmax
from catlight.tasks.vae import CategoricalVAE
from tests.logged_steps import logged_steps

NUM_LATENTS, NUM_CATEGORIES, PIXELS = 2, 3, 12


def small_vae(estimator=None, **kwargs) -> CategoricalVAE:
    latent = DiscreteLatent(NUM_CATEGORIES, Softmax(), estimator or Exact())
    settings = {
        "num_latents": NUM_LATENTS,
        "input_size": PIXELS,
        "encoder_sizes": [8],
        "decoder_sizes": [8],
        **kwargs,
    }
    return CategoricalVAE(latent=latent, **settings)


def binary_images(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((count, PIXELS), 0.5), generator=generator)


def enumerate_configurations(model: CategoricalVAE, images: torch.Tensor):
    """Every joint z: its log q(z|x) (B,), log p(z) (), log p(x|z) (B,)."""
    log_q = torch.log_softmax(model.encoder(images).view(-1, NUM_LATENTS, NUM_CATEGORIES), -1)
    log_prior = torch.log_softmax(model.prior_logits, -1)
    for categories in itertools.product(range(NUM_CATEGORIES), repeat=NUM_LATENTS):
        z = F.one_hot(torch.tensor(categories), NUM_CATEGORIES).float()  # (N, K)
        logits = model.decoder(z.flatten()).expand_as(images)
        pixel_nll = F.binary_cross_entropy_with_logits(logits, images, reduction="none")
        log_likelihood = -pixel_nll.sum(-1)
        yield (
            log_q[:, range(NUM_LATENTS), categories].sum(-1),
            log_prior[range(NUM_LATENTS), categories].sum(),
            log_likelihood,
        )


def exact_neg_elbo(model: CategoricalVAE, images: torch.Tensor) -> torch.Tensor:
    """sum_z q(z) (-log p(x|z)) + KL(q || p), with the KL summed over the N variables."""
    expected_nll = sum(
        log_q.exp() * -log_lik for log_q, _, log_lik in enumerate_configurations(model, images)
    )
    log_q = torch.log_softmax(model.encoder(images).view(-1, NUM_LATENTS, NUM_CATEGORIES), -1)
    log_prior = torch.log_softmax(model.prior_logits, -1)
    kl = (log_q.exp() * (log_q - log_prior)).sum((-2, -1))
    return expected_nll + kl


def exact_nll(model: CategoricalVAE, images: torch.Tensor) -> torch.Tensor:
    """-log p(x) = -log sum_z p(z) p(x|z)."""
    terms = [log_p + log_lik for _, log_p, log_lik in enumerate_configurations(model, images)]
    return -torch.logsumexp(torch.stack(terms), 0)


@pytest.mark.parametrize("prior", ["uniform", "learned"])
def test_vae_exact_loss_equals_the_enumerated_negative_elbo(prior):
    torch.manual_seed(0)
    model = small_vae(prior=prior)
    if prior == "learned":
        with torch.no_grad():
            model.prior_logits.copy_(torch.randn(NUM_LATENTS, NUM_CATEGORIES))
    images = binary_images(4)
    loss = model.loss(images)
    expected = exact_neg_elbo(model, images)
    assert loss.shape == (4,)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)

    # Exact differentiates the expectation itself: the gradients agree too
    params = [p for p in model.parameters() if p.requires_grad]
    got = torch.autograd.grad(loss.sum(), params)
    want = torch.autograd.grad(expected.sum(), params)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def test_vae_importance_weighted_nll_is_below_the_negative_elbo():
    torch.manual_seed(0)
    model = small_vae(eval_num_samples=4000, eval_chunk_size=1000)
    with torch.no_grad():  # a sharper decoder: a clear gap between -ELBO and -log p(x)
        model.decoder[-1].weight.mul_(20)
    images = binary_images(3)
    nll = exact_nll(model, images).detach()
    neg_elbo = exact_neg_elbo(model, images).detach()
    assert (neg_elbo - nll > 1).all()  # the test below can tell the two apart

    iw_nll = model.importance_weighted_nll(images)
    assert iw_nll.shape == (3,) and torch.isfinite(iw_nll).all()
    # the IW estimate of -log p(x) with 4000 of the 9 configurations: close to exact
    torch.testing.assert_close(iw_nll, nll, rtol=0, atol=0.2)

    repeats = 4000
    draws = model.discrete_neg_elbo(images.repeat(repeats, 1)).detach().view(repeats, 3)
    assert torch.isfinite(draws).all()
    average = draws.mean(0)
    # the one-sample estimate is unbiased for -ELBO: 5 standard errors (seeded)
    standard_error = draws.std(0) / math.sqrt(repeats)
    assert ((average - neg_elbo).abs() < 5 * standard_error + 1e-4).all()
    assert (iw_nll <= average).all()


def test_vae_importance_weighted_nll_is_exact_when_q_is_the_posterior():
    # q uniform = the prior, and a decoder that ignores z: every importance weight is
    # p(x), so the bound is exact for any number of samples and any chunking
    model = small_vae(estimator=GumbelSoftmax(), eval_num_samples=7, eval_chunk_size=3)
    with torch.no_grad():
        model.encoder[-1].weight.zero_()
        model.encoder[-1].bias.zero_()
        model.decoder[0].weight.zero_()
    images = binary_images(5)
    nll = exact_nll(model, images).detach()
    torch.testing.assert_close(model.importance_weighted_nll(images), nll)
    torch.testing.assert_close(model.importance_weighted_nll(images, num_samples=1), nll)
    torch.testing.assert_close(model.discrete_neg_elbo(images).detach(), nll)


def test_vae_learned_prior_is_a_parameter_that_gets_gradients():
    model = small_vae(estimator=GumbelSoftmax(), prior="learned")
    assert isinstance(model.prior_logits, torch.nn.Parameter)
    assert "prior_logits" in dict(model.named_parameters())
    loss = model.loss(binary_images(4))
    loss.mean().backward()
    assert model.prior_logits.grad is not None
    assert model.prior_logits.grad.abs().sum() > 0


def test_vae_uniform_prior_is_a_buffer():
    model = small_vae(estimator=GumbelSoftmax())
    assert "prior_logits" in dict(model.named_buffers())
    assert "prior_logits" not in dict(model.named_parameters())
    assert "prior_logits" in model.state_dict()
    torch.testing.assert_close(
        model.prior_log_probs().exp(), torch.full((NUM_LATENTS, NUM_CATEGORIES), 1 / 3)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prior": "gaussian"}, "prior must be 'uniform' or 'learned', got 'gaussian'"),
        ({"num_latents": 0}, "num_latents must be >= 1, got 0"),
        ({"eval_num_samples": 0}, "eval_num_samples must be >= 1, got 0"),
        ({"eval_chunk_size": 0}, "eval_chunk_size must be >= 1, got 0"),
    ],
    ids=["prior", "num_latents", "eval_num_samples", "eval_chunk_size"],
)
def test_vae_rejects_invalid_settings(kwargs, message):
    with pytest.raises(ValueError, match=f"CategoricalVAE: {message}"):
        small_vae(**kwargs)


def test_vae_default_latent_is_gumbel_softmax_over_ten_categories():
    model = CategoricalVAE(num_latents=2, input_size=PIXELS, encoder_sizes=[], decoder_sizes=[])
    assert model.num_categories == 10
    assert isinstance(model.latent.estimator, GumbelSoftmax)
    assert model.encode(binary_images(3)).shape == (3, 2, 10)


def test_vae_reconstruct_and_sample_shapes():
    model = small_vae(estimator=GumbelSoftmax())
    reconstructions = model.reconstruct(binary_images(5))
    assert reconstructions.shape == (5, PIXELS)
    assert ((reconstructions > 0) & (reconstructions < 1)).all()
    samples = model.sample(7)
    assert samples.shape == (7, PIXELS)
    assert ((samples > 0) & (samples < 1)).all()


def test_vae_sample_draws_z_from_the_prior():
    model = small_vae(estimator=GumbelSoftmax(), prior="learned")
    with torch.no_grad():  # a prior sure of category 1 for every variable
        model.prior_logits.copy_(torch.tensor([-50.0, 50.0, -50.0]).expand(NUM_LATENTS, -1))
    z = F.one_hot(torch.ones(NUM_LATENTS, dtype=torch.long), NUM_CATEGORIES).float()
    expected = torch.sigmoid(model.decoder(z.flatten()))
    torch.testing.assert_close(model.sample(4), expected.expand(4, -1))


def test_vae_training_loss_is_finite_for_a_score_function_estimator():
    model = small_vae(estimator=LeaveOneOut(num_samples=3))
    loss = model.loss(binary_images(4))
    assert torch.isfinite(loss).all()
    loss.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_vae_logs_the_training_loss_only_on_the_steps_lightning_writes(tmp_path):
    # a self.log costs ~0.5 ms on a CPU (3% of a VAE step): the VAE logs train/neg_elbo
    # on the steps Lightning writes to the logger, every log_every_n_steps
    batches = [(images,) for images in binary_images(24).split(4)]
    steps, trainer = logged_steps(small_vae(), "train/neg_elbo", batches, tmp_path, every=3)
    assert steps == [2, 5]
    assert "train/neg_elbo" in trainer.callback_metrics
