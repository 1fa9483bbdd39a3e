"""Pathwise estimators: Gumbel-Softmax, straight-through GS, ST and ReinMax."""

import itertools
import math

import pytest
import torch

from catlight.latent import (
    Catnat,
    DiscreteLatent,
    GumbelSoftmax,
    ReinMax,
    Softmax,
    StraightThrough,
    StraightThroughGumbelSoftmax,
)

RELAXED = [GumbelSoftmax, StraightThroughGumbelSoftmax, StraightThrough, ReinMax]


def softmax_jvp(probs, vector):
    """``J(q)^T v = q * v - q * (q . v)``."""
    weighted = probs * vector
    return weighted - probs * weighted.sum(-1, keepdim=True)


def scores_grad(layer, scores, upstream, seed):
    """Forward under ``seed``, backprop ``upstream`` into z; returns (z, grad)."""
    scores = scores.detach().clone().requires_grad_()
    torch.manual_seed(seed)
    z = layer(scores).z
    (z * upstream).sum().backward()
    return z.detach(), scores.grad


def is_one_hot(z):
    return bool(((z == 0) | (z == 1)).all() and (z.sum(-1) == 1).all())


# --- Gumbel-Softmax ----------------------------------------------------------------


@pytest.mark.parametrize("parameterization", [Softmax(), Catnat()], ids=["softmax", "catnat"])
def test_gumbel_softmax_low_tau_argmax_matches_probabilities(parameterization):
    # argmax of z over R = 40000 samples vs q; |error| < 4.5 SE on 2 x 6 cells:
    # false failure rate ~1e-4 under a normal approximation
    torch.manual_seed(0)
    replicates, num_categories = 40000, 6
    layer = DiscreteLatent(num_categories, parameterization, GumbelSoftmax(tau=0.1))
    scores = torch.randn(2, layer.num_scores)
    with torch.no_grad():
        out = layer(scores.expand(replicates, *scores.shape))
    probs = out.probs[0]
    freq = torch.nn.functional.one_hot(out.z[0].argmax(-1), num_categories).float().mean(0)
    stderr = (probs * (1 - probs) / replicates).sqrt()
    assert ((freq - probs).abs() < 4.5 * stderr).all(), (freq, probs)
    # and at tau = 0.1 the relaxed sample is already close to one-hot
    assert out.z.max(-1).values.median() > 0.99


def test_gumbel_softmax_relaxed_sample_has_the_concrete_distribution():
    # tau log z_k - log p_k = g_k - const, so differences of it between two categories
    # are differences of two Gumbels: Logistic(0, 1) with CDF sigmoid(x).
    # Empirical CDF at 5 points over R = 40000, |error| < 4.5 SE: false failure ~3e-5.
    torch.manual_seed(0)
    replicates, tau = 40000, 0.7
    layer = DiscreteLatent(3, Softmax(), GumbelSoftmax(tau=tau))
    scores = torch.tensor([[0.5, -1.0, 0.2]])
    with torch.no_grad():
        out = layer(scores.expand(replicates, 1, 3))
    gumbel = tau * out.z.log() - out.log_probs
    difference = (gumbel[..., 1] - gumbel[..., 0]).flatten().double()
    for x in [-2.0, -1.0, 0.0, 1.0, 2.0]:
        expected = torch.sigmoid(torch.tensor(x, dtype=torch.float64))
        empirical = (difference <= x).double().mean()
        stderr = (expected * (1 - expected) / replicates).sqrt()
        assert abs(empirical - expected) < 4.5 * stderr, (x, empirical, expected)


def test_gumbel_softmax_gradient_is_pathwise_through_the_relaxed_sample():
    # z = softmax((log p + g) / tau) so, for a fixed sample, d(z . v)/d theta equals
    # J(z)^T v / tau (Softmax parameterization: it sums to 0, so log_softmax passes it)
    torch.manual_seed(0)
    tau = 0.6
    layer = DiscreteLatent(5, Softmax(), GumbelSoftmax(tau=tau, num_samples=2))
    scores = torch.randn(4, 3, 5)
    upstream = torch.randn(2, 4, 3, 5)
    z, grad = scores_grad(layer, scores, upstream, seed=1)
    expected = (softmax_jvp(z, upstream) / tau).sum(0)
    torch.testing.assert_close(grad, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("parameterization", [Softmax(), Catnat()], ids=["softmax", "catnat"])
@pytest.mark.parametrize(
    "make_hard",
    [lambda tau: GumbelSoftmax(tau=tau, hard=True), StraightThroughGumbelSoftmax],
    ids=["hard=True", "ST-GS"],
)
def test_straight_through_gumbel_softmax_is_one_hot_with_soft_gradient(parameterization, make_hard):
    torch.manual_seed(0)
    tau, num_categories = 0.5, 6
    hard_layer = DiscreteLatent(num_categories, parameterization, make_hard(tau))
    soft_layer = DiscreteLatent(num_categories, parameterization, GumbelSoftmax(tau=tau))
    scores = torch.randn(32, 3, hard_layer.num_scores)
    upstream = torch.randn(1, 32, 3, num_categories)
    hard_z, hard_grad = scores_grad(hard_layer, scores, upstream, seed=7)
    soft_z, soft_grad = scores_grad(soft_layer, scores, upstream, seed=7)
    assert is_one_hot(hard_z)
    assert not is_one_hot(soft_z)
    # same noise: the one-hot is the argmax of the relaxed sample
    assert torch.equal(hard_z.argmax(-1), soft_z.argmax(-1))
    torch.testing.assert_close(hard_grad, soft_grad)
    assert hard_grad.abs().sum() > 0


# --- straight-through --------------------------------------------------------------


@pytest.mark.parametrize("parameterization", [Softmax(), Catnat()], ids=["softmax", "catnat"])
@pytest.mark.parametrize("tau", [0.3, 1.0, 2.5])
def test_straight_through_gradient_is_tempered_softmax(parameterization, tau):
    torch.manual_seed(0)
    layer = DiscreteLatent(5, parameterization, StraightThrough(tau=tau, num_samples=2))
    scores = torch.randn(8, 3, layer.num_scores)
    upstream = torch.randn(2, 8, 3, 5)
    z, grad = scores_grad(layer, scores, upstream, seed=3)
    assert is_one_hot(z)
    reference_scores = scores.clone().requires_grad_()
    tempered = torch.softmax(parameterization(reference_scores) / tau, -1)
    (tempered * upstream.sum(0)).sum().backward()
    torch.testing.assert_close(grad, reference_scores.grad)


# --- ReinMax -----------------------------------------------------------------------


@pytest.mark.parametrize("tau", [1.0, 1.3, 3.0])
@pytest.mark.parametrize("num_samples", [1, 3])
def test_reinmax_gradient_matches_reference_formula(tau, num_samples):
    # theta = scores (Softmax), pi = softmax(theta), D = the forward one-hot sample,
    # pi_1 = (softmax(theta / tau) + D) / 2,
    # grad = 2 J(pi_1)^T g - J(pi)^T g / 2, centred over the K categories
    torch.manual_seed(0)
    layer = DiscreteLatent(6, Softmax(), ReinMax(tau=tau, num_samples=num_samples))
    scores = torch.randn(8, 3, 6) * 1.5
    upstream = torch.randn(num_samples, 8, 3, 6)
    sample, grad = scores_grad(layer, scores, upstream, seed=5)
    assert is_one_hot(sample)
    pi = torch.softmax(scores, -1)
    pi_1 = (torch.softmax(scores / tau, -1) + sample) / 2
    expected = 2 * softmax_jvp(pi_1, upstream) - softmax_jvp(pi, upstream) / 2
    expected = (expected - expected.mean(-1, keepdim=True)).sum(0)
    torch.testing.assert_close(grad, expected, atol=1e-5, rtol=1e-4)


def test_reinmax_with_catnat_uses_log_probs_as_logits():
    # theta = log p: the rule gives d/d(log p); the scores get it through Catnat
    torch.manual_seed(0)
    tau, parameterization = 1.5, Catnat()
    layer = DiscreteLatent(5, parameterization, ReinMax(tau=tau))
    scores = torch.randn(8, 3, 4)
    upstream = torch.randn(1, 8, 3, 5)
    sample, grad = scores_grad(layer, scores, upstream, seed=5)
    reference_scores = scores.clone().requires_grad_()
    theta = parameterization(reference_scores)
    pi = torch.softmax(theta.detach(), -1)
    pi_1 = (torch.softmax(theta.detach() / tau, -1) + sample) / 2
    rule = 2 * softmax_jvp(pi_1, upstream) - softmax_jvp(pi, upstream) / 2
    rule = (rule - rule.mean(-1, keepdim=True)).sum(0)
    (expected,) = torch.autograd.grad(theta, reference_scores, rule)
    torch.testing.assert_close(grad, expected, atol=1e-5, rtol=1e-4)


def test_reinmax_differs_from_straight_through():
    torch.manual_seed(0)
    scores = torch.randn(8, 3, 6)
    upstream = torch.randn(1, 8, 3, 6)
    _, reinmax = scores_grad(DiscreteLatent(6, Softmax(), ReinMax(1.0)), scores, upstream, 2)
    _, st = scores_grad(DiscreteLatent(6, Softmax(), StraightThrough(1.0)), scores, upstream, 2)
    assert not torch.allclose(reinmax, st, atol=1e-3)


# --- temperature -------------------------------------------------------------------


@pytest.mark.parametrize("cls", RELAXED)
def test_relaxed_set_tau_updates_the_checkpointed_buffer(cls):
    estimator = cls(tau=1.5)
    layer = DiscreteLatent(4, Softmax(), estimator)
    assert "estimator.tau" in layer.state_dict()
    assert float(layer.state_dict()["estimator.tau"]) == 1.5
    estimator.set_tau(2.25)
    assert float(estimator.tau) == 2.25
    assert estimator.tau.dtype == torch.float32
    assert float(layer.state_dict()["estimator.tau"]) == 2.25
    restored = cls(tau=1.0)
    restored.load_state_dict(estimator.state_dict())
    assert float(restored.tau) == 2.25


def test_relaxed_set_tau_changes_the_gradient():
    torch.manual_seed(0)
    estimator = StraightThrough(tau=1.0)
    layer = DiscreteLatent(5, Softmax(), estimator)
    scores, upstream = torch.randn(4, 2, 5), torch.randn(1, 4, 2, 5)
    _, before = scores_grad(layer, scores, upstream, seed=0)
    estimator.set_tau(0.25)
    _, after = scores_grad(layer, scores, upstream, seed=0)
    _, fresh = scores_grad(DiscreteLatent(5, Softmax(), StraightThrough(0.25)), scores, upstream, 0)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, fresh)


# --- errors ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", RELAXED)
@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan"), float("inf"), "1.0", None])
def test_relaxed_rejects_bad_tau(cls, tau):
    with pytest.raises(ValueError, match="tau"):
        cls(tau=tau)


@pytest.mark.parametrize("cls", RELAXED)
@pytest.mark.parametrize("tau", [0.0, -0.5, float("nan")])
def test_relaxed_set_tau_rejects_bad_tau(cls, tau):
    estimator = cls(tau=1.0)
    with pytest.raises(ValueError, match="tau"):
        estimator.set_tau(tau)
    assert float(estimator.tau) == 1.0


@pytest.mark.parametrize("tau", [0.5, 0.999])
def test_reinmax_rejects_tau_below_one(tau):
    with pytest.raises(ValueError, match="tau"):
        ReinMax(tau=tau)
    estimator = ReinMax(tau=1.0)
    with pytest.raises(ValueError, match="tau"):
        estimator.set_tau(tau)


@pytest.mark.parametrize("cls", RELAXED)
@pytest.mark.parametrize("num_samples", [0, -1, 1.5])
def test_relaxed_rejects_bad_num_samples(cls, num_samples):
    with pytest.raises(ValueError, match="num_samples"):
        cls(tau=1.0, num_samples=num_samples)


# --- the temperature schedule of the Gumbel-Softmax estimators ------------------------

ANNEALED = [GumbelSoftmax, StraightThroughGumbelSoftmax]


@pytest.mark.parametrize("cls", ANNEALED)
@pytest.mark.parametrize(
    ("tau", "tau_min", "anneal_rate", "anneal_interval"),
    [(1.0, 0.5, 1e-4, 1000), (2.0, 0.1, 0.3, 3), (1.0, 0.5, 0.0, 1)],
)
def test_gumbel_softmax_schedule_is_piecewise_constant_exponential(
    cls, tau, tau_min, anneal_rate, anneal_interval
):
    estimator = cls(tau, tau_min=tau_min, anneal_rate=anneal_rate, anneal_interval=anneal_interval)
    steps = [*range(40), 999, 1000, 1001, 20000, 10**6]
    values = [estimator.temperature(step) for step in steps]
    for step, value in zip(steps, values, strict=True):
        updated_at = step - step % anneal_interval
        assert value == pytest.approx(max(tau_min, tau * math.exp(-anneal_rate * updated_at)))
    assert values[0] == tau
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert min(values) >= tau_min


def test_gumbel_softmax_paper_schedule_and_floor():
    estimator = GumbelSoftmax(1.0, tau_min=0.5, anneal_rate=3e-5, anneal_interval=500)
    assert estimator.temperature(499) == 1.0
    assert estimator.temperature(500) == pytest.approx(math.exp(-3e-5 * 500))
    assert estimator.temperature(10**6) == 0.5


@pytest.mark.parametrize("cls", ANNEALED)
def test_gumbel_softmax_step_advances_a_checkpointed_schedule(cls):
    estimator = cls(2.0, tau_min=0.5, anneal_rate=0.1, anneal_interval=2)
    layer = DiscreteLatent(3, Softmax(), estimator)
    for _ in range(5):
        layer.step()
    assert estimator.num_steps.item() == 5
    assert estimator.tau.item() == pytest.approx(2.0 * math.exp(-0.4))
    restored = cls(2.0, tau_min=0.5, anneal_rate=0.1, anneal_interval=2)
    restored.load_state_dict(estimator.state_dict())
    restored.step()
    assert restored.num_steps.item() == 6
    assert restored.tau.item() == pytest.approx(2.0 * math.exp(-0.6))


def test_gumbel_softmax_without_schedule_keeps_tau_fixed():
    estimator = GumbelSoftmax(0.7)
    for _ in range(3):
        estimator.step()
    assert estimator.tau.item() == pytest.approx(0.7)
    assert estimator.num_steps.item() == 3


@pytest.mark.parametrize("cls", [StraightThrough, ReinMax])
def test_fixed_temperature_estimators_take_no_schedule(cls):
    estimator = cls(tau=1.5)
    estimator.step()
    assert estimator.tau.item() == 1.5
    with pytest.raises(TypeError, match="anneal_rate"):
        cls(tau=1.5, anneal_rate=0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tau_min": -0.5}, r"tau_min must be a number in \[0, tau = 1.0\], got -0.5"),
        ({"tau_min": 2.0}, r"tau_min must be a number in \[0, tau = 1.0\], got 2.0"),
        ({"tau_min": 0.5, "anneal_rate": -1e-4}, "anneal_rate must be a finite number >= 0"),
        ({"anneal_rate": 1e-4}, "anneal_rate = 0.0001 > 0 needs a floor tau_min > 0"),
        ({"anneal_interval": 0}, "anneal_interval must be an int >= 1"),
    ],
    ids=["tau_min_negative", "tau_min_above_tau", "rate", "no_floor", "interval"],
)
@pytest.mark.parametrize("cls", ANNEALED)
def test_gumbel_softmax_rejects_an_invalid_schedule(cls, kwargs, message):
    with pytest.raises(ValueError, match=f"{cls.__name__}: {message}"):
        cls(1.0, **kwargs)
