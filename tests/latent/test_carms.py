"""CARMS: antithetic samples, importance weights, lower variance than leave-one-out."""

import pytest
import torch

from catlight.latent import CARMS, Catnat, DiscreteLatent, LeaveOneOut, Softmax


def per_replicate_gradients(estimator, probs, cost_vectors, replicates, calls=1):
    """Gradient estimates for the CARMS paper's toy: N = 1, Softmax, f(z) = z . c.

    Each of the D problems ``(probs[d], cost_vectors[d])`` is replicated ``replicates``
    times along the batch in one forward pass per call. CARMS draws its family of
    orderings once per call, shared by the batch, so estimates are pooled over
    ``calls`` passes to average over families. Returns ``(R, D, K)``.
    """
    num_problems, num_categories = probs.shape
    layer = DiscreteLatent(num_categories, Softmax(), estimator)
    grads = []
    for _ in range(calls):
        scores = probs.log().view(1, num_problems, 1, num_categories)
        scores = scores.expand(replicates // calls, -1, -1, -1).clone().requires_grad_()
        out = layer(scores)
        cost = (out.z * cost_vectors.view(num_problems, 1, num_categories)).sum((-2, -1))
        out.objective(cost).sum().backward()
        grads.append(scores.grad.squeeze(2))
    return torch.cat(grads)


def total_variance(grads):
    """Trace of the covariance over replicates and its relative standard error. ``(D,)``."""
    squared = (grads - grads.mean(0)).pow(2).sum(-1)  # [R, D]
    variance = squared.mean(0)
    relative_se = squared.std(0) / variance / grads.shape[0] ** 0.5
    return variance, relative_se


def dirichlet_draws(num_categories, count, min_prob=0.05):
    """p ~ Dirichlet(1, ..., 1), keeping draws with every p_k >= min_prob."""
    dirichlet = torch.distributions.Dirichlet(torch.ones(num_categories))
    draws = []
    while len(draws) < count:
        probs = dirichlet.sample()
        if probs.min() >= min_prob:
            draws.append(probs)
    return torch.stack(draws)


@pytest.mark.parametrize(("num_categories", "calls"), [(2, 1), (3, 20)])
def test_carms_has_lower_variance_than_leave_one_out(num_categories, calls):
    # The CARMS paper's toy at n = 4 for 4 seeded (p, c) draws. Draws with some
    # p_k < 0.05 are skipped: as q becomes deterministic both variances vanish and
    # their ratio tends to 1, too close to resolve. Measured ratios CARMS/LOO here:
    # 0.25-0.9 (K = 2), 0.6-0.9 (K = 3). Test: log ratio + 3 SE < 0 per draw, with SE
    # from the per-replicate spread (R = 20000). Were the ratio >= 1 this passes with
    # probability < 1.3e-3 per draw; for a true ratio <= 0.93 it fails with < 1e-4.
    torch.manual_seed(0)
    probs = dirichlet_draws(num_categories, 4)
    cost_vectors = torch.randn(4, num_categories)
    replicates = 20000
    carms = per_replicate_gradients(CARMS(num_samples=4), probs, cost_vectors, replicates, calls)
    loo = per_replicate_gradients(LeaveOneOut(4), probs, cost_vectors, replicates, calls)
    carms_var, carms_se = total_variance(carms)
    loo_var, loo_se = total_variance(loo)
    log_ratio = (carms_var / loo_var).log()
    bound = log_ratio + 3 * (carms_se**2 + loo_se**2).sqrt()
    assert (bound < 0).all(), (probs, log_ratio.exp())


@pytest.mark.parametrize("p0", [0.1, 0.3, 0.5, 0.8])
def test_carms_k2_n2_samples_are_antithetic(p0):
    # With K = 2 and n = 2 the uniforms are countermonotone (u2 = 1 - u1), so the two
    # samples differ with probability 2 min(p0, p1), more than 2 p0 p1 for independent
    # samples. R = 20000, |error| < 4.5 SE: false failure ~7e-6 per p0.
    torch.manual_seed(0)
    replicates = 20000
    probs = torch.tensor([p0, 1 - p0])
    layer = DiscreteLatent(2, Softmax(), CARMS(num_samples=2))
    with torch.no_grad():
        z = layer(probs.log().expand(replicates, 1, 2)).z
    differ = (z[0].argmax(-1) != z[1].argmax(-1)).double().mean()
    expected = 2 * min(p0, 1 - p0)
    stderr = (expected * (1 - expected) / replicates) ** 0.5
    assert abs(differ - expected) <= 4.5 * stderr + 1e-9
    independent = 2 * p0 * (1 - p0)
    assert differ > independent + 4.5 * (independent * (1 - independent) / replicates) ** 0.5


@pytest.mark.parametrize("parameterization", [Softmax(), Catnat()], ids=["softmax", "catnat"])
def test_carms_k2_n2_matches_disarm_closed_form(parameterization):
    # Countermonotone pair, family = {natural order, reverse}. Pair probabilities:
    # P(0, 1) = P(1, 0) = min(p0, p1) and P(k, k) = max(2 p_k - 1, 0) under both
    # orderings, so w = p(z1) p(z2) / P(z1, z2) is max(p0, p1) for distinct categories
    # and p_k^2 / (2 p_k - 1) for a repeated one. With n = 2, for each variable:
    # grad = w (f1 - f2) / 2 * (grad log q(z1) - grad log q(z2)).
    torch.manual_seed(0)
    num_variables = 3
    layer = DiscreteLatent(2, parameterization, CARMS(num_samples=2))
    scores = torch.randn(64, num_variables, layer.num_scores).requires_grad_()
    weights = torch.randn(num_variables, 2)
    out = layer(scores)
    values = (out.z * weights).sum(-1)
    cost = (values.sum(-1) - 0.3) ** 2 + values.prod(-1)  # [2, B]
    out.objective(cost).sum().backward()

    reference_scores = scores.detach().clone().requires_grad_()
    log_probs = parameterization(reference_scores)  # [B, N, 2]
    probs = log_probs.detach().exp()
    first, second = out.z.detach()  # [B, N, 2] each
    distinct = (first != second).any(-1)
    repeated_prob = (first * probs).sum(-1)
    weight = torch.where(distinct, probs.max(-1).values, repeated_prob**2 / (2 * repeated_prob - 1))
    coefficient = weight * ((cost[0] - cost[1]) / 2).unsqueeze(-1)  # [B, N]
    score_difference = ((first - second) * log_probs).sum(-1)
    (coefficient * score_difference).sum().backward()
    torch.testing.assert_close(scores.grad, reference_scores.grad, atol=1e-5, rtol=1e-4)
    assert scores.grad.abs().sum() > 0


def test_carms_unlikely_categories_can_be_drawn_together():
    # Under one ordering two unlikely categories at its start can never be drawn
    # together; the family holds each ordering's reverse, so every pair of distinct
    # categories occurs. Expected count of (0, 1) pairs here is in the hundreds.
    torch.manual_seed(0)
    probs = torch.tensor([0.04, 0.05, 0.91])
    layer = DiscreteLatent(3, Softmax(), CARMS(num_samples=4))
    with torch.no_grad():
        indices = layer(probs.log().expand(20000, 1, 3)).z.argmax(-1)[:, :, 0]  # [n, R]
    for a in range(3):
        for b in range(3):
            if a != b:
                together = ((indices == a).any(0) & (indices == b).any(0)).sum()
                assert together > 0, (a, b)


@pytest.mark.parametrize("num_samples", [2, 3, 4, 7])
@pytest.mark.parametrize("num_categories", [2, 3, 10])
def test_carms_gradient_is_finite_for_peaked_distributions(num_samples, num_categories):
    torch.manual_seed(0)
    layer = DiscreteLatent(num_categories, Softmax(), CARMS(num_samples=num_samples))
    scores = (torch.randn(2000, 3, num_categories) * 20).requires_grad_()
    out = layer(scores)
    cost = (out.z * torch.randn(num_categories)).sum((-2, -1))
    out.objective(cost).sum().backward()
    assert torch.isfinite(scores.grad).all()


# --- errors ------------------------------------------------------------------------


@pytest.mark.parametrize("num_samples", [1, 0, -1, 2.0])
def test_carms_rejects_fewer_than_two_samples(num_samples):
    with pytest.raises(ValueError, match="num_samples"):
        CARMS(num_samples=num_samples)


@pytest.mark.parametrize("copula", ["gaussian", "Dirichlet", "", None])
def test_carms_rejects_unknown_copula(copula):
    with pytest.raises(ValueError, match="copula"):
        CARMS(copula=copula)


@pytest.mark.parametrize("num_orderings", [3, 7, 1, 0, -2, 4.0])
def test_carms_rejects_bad_num_orderings(num_orderings):
    with pytest.raises(ValueError, match="num_orderings"):
        CARMS(num_orderings=num_orderings)


@pytest.mark.parametrize("num_samples", [2, 4])
def test_carms_samples_have_the_marginals_of_q(num_samples):
    # Each of the n samples is marginally Cat(p), whichever rotation (forward or
    # reversed) of the base order carried it; a category of probability 0 (a -inf
    # score) is never drawn. R = 40000 rows, |frequency - p| < 4.5 SE per category
    # and sample: false failure < 1e-4 in all.
    torch.manual_seed(0)
    probs = torch.tensor([0.05, 0.3, 0.0, 0.15, 0.4, 0.1])
    replicates = 40000
    layer = DiscreteLatent(6, Softmax(), CARMS(num_samples=num_samples))
    with torch.no_grad():
        z = layer(probs.log().expand(replicates, 1, 6)).z[:, :, 0]  # [n, R, K]
    frequencies = z.double().mean(1)  # [n, K]
    stderr = (probs * (1 - probs) / replicates).double().sqrt()
    assert (frequencies[:, 2] == 0).all()
    assert ((frequencies - probs.double()).abs() <= 4.5 * stderr + 1e-12).all(), frequencies
