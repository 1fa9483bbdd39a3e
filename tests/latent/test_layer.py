"""Generic DiscreteLatent tests: every registry estimator x parameterization x K."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import Categorical, kl_divergence

from catlight.latent import (
    DiscreteLatent,
    Estimator,
    Exact,
    IndeCateR,
    LatentSample,
    LeaveOneOut,
    ReinMax,
    RelaxedEstimator,
    Softmax,
    UnorderedSet,
)
from tests.latent.registry import EXAMPLES, MARGINAL_SAMPLING, PARAMETERIZATIONS
from tests.latent.without_replacement import set_probability

BATCH, NUM_VARIABLES = 4, 3

over_examples = pytest.mark.parametrize("example", EXAMPLES, ids=lambda ex: ex.id)
over_parameterizations = pytest.mark.parametrize("param_name", list(PARAMETERIZATIONS))
over_categories = pytest.mark.parametrize("num_categories", [2, 5])


def over_registry(test):
    """Registry x {Softmax, Catnat, Catnat('sigmoid')} x K in {2, 5}."""
    return over_examples(over_parameterizations(over_categories(test)))


def make_layer(example, param_name, num_categories, **overrides):
    parameterization = PARAMETERIZATIONS[param_name]()
    return DiscreteLatent(num_categories, parameterization, example.build(**overrides))


def random_scores(layer, *batch, dtype=torch.float32, scale=1.0):
    shape = (*batch, NUM_VARIABLES, layer.num_scores)
    return (scale * torch.randn(shape)).to(dtype).requires_grad_()


def decoder_cost(decoder, z):
    """A nonlinear per-sample cost of the whole example: ``(S, *batch, N, K) -> (S, *batch)``."""
    hidden = decoder(z).squeeze(-1)  # [S, *batch, N]
    return (hidden - 0.3).pow(2).sum(-1) + hidden.prod(-1)


def expected_value(example, out, cost):
    """What ``objective(cost)`` must equal: an estimate of E[cost] named by the estimator.

    The mean cost; the exact expectation (Exact); the average over every substituted
    row weighted by the substituted category's probability (IndeCateR); the sum of
    ``q(s) R(S, s) f(s)`` over the set, enumerating its orders (UnorderedSet).
    """
    joint = (out.z * out.probs).sum(-1).prod(-1)  # q(config), shape (S, *batch)
    if example.cls is Exact:
        return (joint * cost).sum(0)
    if example.cls is IndeCateR:
        row_probs = out.probs.flatten(-2).movedim(-1, 0)  # (N K, *batch)
        num_samples = cost.shape[0] // row_probs.shape[0]
        row_probs = row_probs.repeat(num_samples, *[1] * (row_probs.dim() - 1))
        return (row_probs * cost).sum(0) / (num_samples * out.probs.shape[-2])
    if example.cls is UnorderedSet:
        weights = []  # q(s) R(S, s), shape (batch, k), batch flattened
        for q in joint.flatten(1).T.tolist():
            members = range(len(q))
            whole = set_probability(q, members)
            others = [[t for t in members if t != s] for s in members]
            weights.append([q[s] * set_probability(q, others[s], [s]) / whole for s in members])
        return (torch.tensor(weights).T.reshape(cost.shape) * cost).sum(0)
    return cost.mean(0)


# --- the registry itself -----------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda ex: ex.id)
def test_registry_flags_match_estimator_family(example):
    estimator = example.build()
    assert isinstance(estimator, Estimator)
    assert example.pathwise == isinstance(estimator, RelaxedEstimator)
    if example.pathwise:
        assert not example.unbiased
        assert float(estimator.tau) == pytest.approx(example.kwargs["tau"])


# --- shapes, values and gradients --------------------------------------------------


@over_registry
def test_layer_log_probs_shape_dtype_and_normalized(example, param_name, num_categories):
    torch.manual_seed(0)
    layer = make_layer(example, param_name, num_categories)
    out = layer(random_scores(layer, BATCH))
    assert isinstance(out, LatentSample)
    assert out.log_probs.shape == (BATCH, NUM_VARIABLES, num_categories)
    assert out.log_probs.dtype == torch.float32
    torch.testing.assert_close(
        out.log_probs.logsumexp(-1), torch.zeros(BATCH, NUM_VARIABLES), atol=1e-5, rtol=0
    )


@over_registry
def test_layer_z_has_leading_sample_dim(example, param_name, num_categories):
    torch.manual_seed(0)
    layer = make_layer(example, param_name, num_categories)
    out = layer(random_scores(layer, BATCH))
    num_samples = example.num_samples(num_categories, NUM_VARIABLES)
    assert out.z.shape == (num_samples, BATCH, NUM_VARIABLES, num_categories)
    assert out.num_samples == num_samples
    assert out.z.dtype == torch.float32
    assert (out.z >= 0).all()
    torch.testing.assert_close(out.z.sum(-1), torch.ones(out.z.shape[:-1]))


@over_registry
def test_layer_objective_value_is_estimate_of_expected_cost(example, param_name, num_categories):
    torch.manual_seed(0)
    layer = make_layer(example, param_name, num_categories)
    decoder = nn.Linear(num_categories, 1)
    out = layer(random_scores(layer, BATCH))
    cost = decoder_cost(decoder, out.z)
    value = out.objective(cost)
    assert value.shape == (BATCH,)
    torch.testing.assert_close(value, expected_value(example, out, cost))


@over_registry
def test_layer_gradient_reaches_scores_and_decoder(example, param_name, num_categories):
    torch.manual_seed(0)
    layer = make_layer(example, param_name, num_categories)
    decoder = nn.Linear(num_categories, 1)
    scores = random_scores(layer, BATCH)
    out = layer(scores)
    out.objective(decoder_cost(decoder, out.z)).sum().backward()
    assert scores.grad is not None
    assert torch.isfinite(scores.grad).all()
    assert scores.grad.abs().sum() > 0
    for parameter in decoder.parameters():
        assert parameter.grad is not None
        assert torch.isfinite(parameter.grad).all()
        assert parameter.grad.abs().sum() > 0


@over_registry
def test_layer_decoder_gradient_is_that_of_the_value(example, param_name, num_categories):
    # the score-function surrogate must not leak into whatever produced the cost
    torch.manual_seed(0)
    layer = make_layer(example, param_name, num_categories)
    decoder = nn.Linear(num_categories, 1)
    out = layer(random_scores(layer, BATCH))
    cost = decoder_cost(decoder, out.z)
    parameters = list(decoder.parameters())
    got = torch.autograd.grad(out.objective(cost).sum(), parameters, retain_graph=True)
    want = torch.autograd.grad(expected_value(example, out, cost).sum(), parameters)
    for got_grad, want_grad in zip(got, want, strict=True):
        torch.testing.assert_close(got_grad, want_grad)


@over_registry
def test_layer_extra_batch_dims(example, param_name, num_categories):
    torch.manual_seed(0)
    layer = make_layer(example, param_name, num_categories)
    decoder = nn.Linear(num_categories, 1)
    scores = random_scores(layer, 2, 3)
    out = layer(scores)
    num_samples = example.num_samples(num_categories, NUM_VARIABLES)
    assert out.log_probs.shape == (2, 3, NUM_VARIABLES, num_categories)
    assert out.z.shape == (num_samples, 2, 3, NUM_VARIABLES, num_categories)
    cost = decoder_cost(decoder, out.z)
    value = out.objective(cost)
    assert value.shape == (2, 3)
    torch.testing.assert_close(value, expected_value(example, out, cost))
    value.sum().backward()
    assert torch.isfinite(scores.grad).all() and scores.grad.abs().sum() > 0
    assert out.kl().shape == out.entropy().shape == (2, 3, NUM_VARIABLES)


@over_registry
def test_layer_no_batch_dims(example, param_name, num_categories):
    torch.manual_seed(0)
    layer = make_layer(example, param_name, num_categories)
    decoder = nn.Linear(num_categories, 1)
    scores = random_scores(layer)  # [N, M]
    out = layer(scores)
    num_samples = example.num_samples(num_categories, NUM_VARIABLES)
    assert out.z.shape == (num_samples, NUM_VARIABLES, num_categories)
    value = out.objective(decoder_cost(decoder, out.z))
    assert value.shape == ()
    value.backward()
    assert torch.isfinite(scores.grad).all()


@over_registry
def test_layer_batch_elements_are_independent(example, param_name, num_categories):
    # the gradient of one example's objective reaches only that example's scores
    torch.manual_seed(0)
    layer = make_layer(example, param_name, num_categories)
    decoder = nn.Linear(num_categories, 1)
    scores = random_scores(layer, BATCH)
    out = layer(scores)
    out.objective(decoder_cost(decoder, out.z))[1].backward()
    assert (scores.grad[[0, 2, 3]] == 0).all()


@over_registry
def test_layer_autocast_bf16_stays_float32_and_finite(example, param_name, num_categories):
    torch.manual_seed(0)
    layer = make_layer(example, param_name, num_categories)
    decoder = nn.Linear(num_categories, 1)
    scores = random_scores(layer, BATCH, dtype=torch.bfloat16, scale=3.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(scores)
        assert decoder(out.z).dtype == torch.bfloat16  # autocast is really on
        cost = decoder_cost(decoder, out.z)
        value = out.objective(cost)
        kl = out.kl()
    assert out.log_probs.dtype == torch.float32
    assert out.z.dtype == torch.float32
    assert torch.isfinite(out.z).all() and torch.isfinite(value).all()
    assert torch.isfinite(kl).all()
    (value.sum() + kl.sum()).backward()
    assert scores.grad.dtype == torch.bfloat16
    assert torch.isfinite(scores.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in decoder.parameters())


@over_registry
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_layer_low_tau_half_precision_is_finite(example, param_name, num_categories, dtype):
    # tau = 0.1 (ReinMax: its minimum, 1; a schedule's floor too) with large half-precision
    # scores
    overrides = {"tau": 1.0 if example.cls is ReinMax else 0.1} if example.pathwise else {}
    if "tau_min" in example.kwargs:
        overrides["tau_min"] = overrides["tau"]
    torch.manual_seed(0)
    layer = make_layer(example, param_name, num_categories, **overrides)
    decoder = nn.Linear(num_categories, 1)
    scores = random_scores(layer, 64, dtype=dtype, scale=8.0)
    out = layer(scores)
    assert torch.isfinite(out.log_probs).all()
    assert torch.isfinite(out.z).all()
    value = out.objective(decoder_cost(decoder, out.z))
    assert torch.isfinite(value).all()
    value.sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in decoder.parameters())


@over_registry
def test_layer_kl_and_entropy_shapes(example, param_name, num_categories):
    torch.manual_seed(0)
    layer = make_layer(example, param_name, num_categories)
    out = layer(random_scores(layer, BATCH))
    kl, entropy = out.kl(), out.entropy()
    assert kl.shape == entropy.shape == (BATCH, NUM_VARIABLES)
    assert (kl >= -1e-6).all()
    assert (entropy >= -1e-6).all() and (entropy <= math.log(num_categories) + 1e-5).all()


@pytest.mark.parametrize("example", MARGINAL_SAMPLING, ids=lambda ex: ex.id)
@pytest.mark.parametrize("param_name", ["softmax", "catnat"])
def test_layer_every_sample_is_marginally_distributed_as_q(example, param_name):
    # Each of the S samples (antithetic ones included) must be marginally Cat(q).
    # Frequencies over R = 8000 examples vs q, |error| < 4.5 SE for each of at most
    # S * N * K = 40 cells: a false failure rate of ~3e-4 under a normal approximation.
    torch.manual_seed(0)
    num_categories, replicates = 5, 8000
    layer = make_layer(example, param_name, num_categories)
    base = torch.randn(2, layer.num_scores)
    with torch.no_grad():
        out = layer(base.expand(replicates, *base.shape))
    probs = out.probs[0]  # [N, K]
    counts = torch.nn.functional.one_hot(out.z.argmax(-1), num_categories).float()
    freq = counts.mean(1)  # [S, N, K]
    stderr = (probs * (1 - probs) / replicates).sqrt()
    assert ((freq - probs).abs() <= 4.5 * stderr + 1e-6).all(), (freq, probs)


# --- the rest of the layer contract ------------------------------------------------


def test_layer_num_scores_follows_parameterization():
    assert DiscreteLatent(7, Softmax(), LeaveOneOut(2)).num_scores == 7
    assert DiscreteLatent(7, PARAMETERIZATIONS["catnat"](), LeaveOneOut(2)).num_scores == 6


@pytest.mark.parametrize("param_name", list(PARAMETERIZATIONS))
def test_layer_kl_matches_torch_distributions(param_name):
    torch.manual_seed(0)
    layer = DiscreteLatent(6, PARAMETERIZATIONS[param_name](), LeaveOneOut(2))
    out = layer(torch.randn(BATCH, NUM_VARIABLES, layer.num_scores))
    q = Categorical(logits=out.log_probs)
    uniform = Categorical(logits=torch.zeros(6))
    torch.testing.assert_close(out.kl(), kl_divergence(q, uniform))
    prior_log_probs = torch.log_softmax(torch.randn(NUM_VARIABLES, 6), -1)
    torch.testing.assert_close(
        out.kl(prior_log_probs), kl_divergence(q, Categorical(logits=prior_log_probs))
    )
    torch.testing.assert_close(out.entropy(), q.entropy())


def test_layer_kl_and_entropy_with_zero_probabilities():
    # Softmax underflows to exactly zero probability: 0 log 0 must count as 0
    layer = DiscreteLatent(3, Softmax(), LeaveOneOut(2))
    out = layer(torch.tensor([[0.0, 0.0, -1e4]]))
    assert out.probs[0, 2] == 0
    torch.testing.assert_close(out.entropy(), torch.tensor([math.log(2)]))
    torch.testing.assert_close(out.kl(), torch.tensor([math.log(3) - math.log(2)]))


def test_layer_entropy_gradient_is_finite_with_masked_category():
    # a -inf score (e.g. an invalid action) gives a category of probability exactly 0;
    # torch.distributions.Categorical(logits=...).entropy() has a finite gradient here
    scores = torch.tensor([[[0.0, 1.0, float("-inf")]]], requires_grad=True)
    out = DiscreteLatent(3, Softmax(), LeaveOneOut(2))(scores)
    (out.entropy().sum() + out.kl().sum()).backward()
    assert torch.isfinite(scores.grad).all()


def test_layer_kl_gradient_is_finite():
    torch.manual_seed(0)
    layer = DiscreteLatent(5, PARAMETERIZATIONS["catnat"](), LeaveOneOut(2))
    scores = (torch.randn(BATCH, NUM_VARIABLES, layer.num_scores) * 3).requires_grad_()
    out = layer(scores)
    (out.kl().sum() + out.kl(torch.log_softmax(torch.randn(5), -1)).sum()).backward()
    assert torch.isfinite(scores.grad).all() and scores.grad.abs().sum() > 0


@pytest.mark.parametrize("param_name", list(PARAMETERIZATIONS))
def test_layer_distribution_is_categorical_over_batch_and_variables(param_name):
    torch.manual_seed(0)
    layer = DiscreteLatent(5, PARAMETERIZATIONS[param_name](), LeaveOneOut(2))
    scores = torch.randn(BATCH, NUM_VARIABLES, layer.num_scores)
    distribution = layer.distribution(scores)
    assert isinstance(distribution, Categorical)
    assert distribution.batch_shape == (BATCH, NUM_VARIABLES)
    actions = distribution.sample()
    log_probs = layer.log_probs(scores)
    torch.testing.assert_close(
        distribution.log_prob(actions), log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    )
    torch.testing.assert_close(distribution.logits, log_probs)


@pytest.mark.parametrize("param_name", list(PARAMETERIZATIONS))
def test_layer_mode_is_the_most_probable_category_one_hot(param_name):
    torch.manual_seed(0)
    layer = DiscreteLatent(5, PARAMETERIZATIONS[param_name]())
    scores = torch.randn(BATCH, NUM_VARIABLES, layer.num_scores)
    mode = layer.mode(scores)
    assert mode.shape == (BATCH, NUM_VARIABLES, 5) and mode.dtype == torch.float32
    assert torch.equal(mode.argmax(-1), layer.log_probs(scores).argmax(-1))
    assert torch.equal(mode.sum(-1), torch.ones(BATCH, NUM_VARIABLES))
    mask = torch.tensor([True, False, True, True, True]).expand(BATCH, NUM_VARIABLES, 5)
    assert (layer.mode(scores, mask)[..., 1] == 0).all()


@pytest.mark.parametrize("param_name", ["softmax", "catnat"])
def test_layer_sample_with_log_prob_draws_from_q(param_name):
    # Frequencies over R = 20000 draws vs q, |error| < 4.5 SE for each of N * K = 15
    # cells: a false failure rate of ~1e-4 under a normal approximation.
    torch.manual_seed(0)
    layer = DiscreteLatent(5, PARAMETERIZATIONS[param_name]())
    scores = torch.randn(NUM_VARIABLES, layer.num_scores, requires_grad=True)
    replicates = 20000
    categories, log_probs, all_log_probs = layer.sample_with_log_prob(
        scores.expand(replicates, *scores.shape)
    )
    assert categories.shape == log_probs.shape == (replicates, NUM_VARIABLES)
    assert categories.dtype == torch.int64 and log_probs.dtype == torch.float32
    assert all_log_probs.shape == (replicates, NUM_VARIABLES, 5)
    torch.testing.assert_close(
        log_probs, all_log_probs.gather(-1, categories.unsqueeze(-1)).squeeze(-1)
    )
    probs = layer.log_probs(scores).exp().detach()
    freq = torch.nn.functional.one_hot(categories, 5).float().mean(0)
    stderr = (probs * (1 - probs) / replicates).sqrt()
    assert ((freq - probs).abs() <= 4.5 * stderr + 1e-6).all(), (freq, probs)
    log_probs.sum().backward()  # the log-probabilities keep their gradient
    assert scores.grad.abs().sum() > 0


def test_layer_sample_with_log_prob_never_draws_a_masked_category():
    torch.manual_seed(0)
    layer = DiscreteLatent(4, Softmax())
    mask = torch.tensor([True, False, True, False])
    categories, log_probs, _ = layer.sample_with_log_prob(torch.zeros(5000, 1, 4), mask)
    assert set(categories.unique().tolist()) == {0, 2}
    torch.testing.assert_close(log_probs, torch.full((5000, 1), math.log(0.5)))


# --- errors ------------------------------------------------------------------------


@pytest.mark.parametrize("num_categories", [1, 0, -3, 2.0, 3.5, "4", True, None])
def test_layer_rejects_bad_num_categories(num_categories):
    with pytest.raises(ValueError, match="num_categories"):
        DiscreteLatent(num_categories, Softmax(), LeaveOneOut(2))


@pytest.mark.parametrize("parameterization", [None, "softmax", torch.nn.Softmax(-1)])
def test_layer_rejects_non_parameterization(parameterization):
    with pytest.raises(ValueError, match="parameterization"):
        DiscreteLatent(4, parameterization, LeaveOneOut(2))


@pytest.mark.parametrize("estimator", ["reinforce", LeaveOneOut])
def test_layer_rejects_non_estimator(estimator):
    with pytest.raises(ValueError, match="estimator"):
        DiscreteLatent(4, Softmax(), estimator)


@pytest.mark.parametrize("param_name", list(PARAMETERIZATIONS))
@pytest.mark.parametrize("shape", [(2, 3, 6), (2, 3, 4), (3, 0), (5,)])
def test_layer_rejects_scores_not_ending_in_num_scores(param_name, shape):
    layer = DiscreteLatent(5, PARAMETERIZATIONS[param_name](), LeaveOneOut(2))
    if shape[-1] == layer.num_scores:
        shape = (*shape[:-1], shape[-1] + 1)
    with pytest.raises(ValueError, match="num_scores"):
        layer(torch.randn(shape))
    with pytest.raises(ValueError, match="num_scores"):
        layer.distribution(torch.randn(shape))


def test_layer_rejects_one_dimensional_scores():
    layer = DiscreteLatent(5, Softmax(), LeaveOneOut(2))
    with pytest.raises(ValueError, match="num_scores"):
        layer(torch.randn(5))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda ex: ex.id)
def test_layer_objective_rejects_cost_of_wrong_shape(example):
    torch.manual_seed(0)
    layer = DiscreteLatent(3, Softmax(), example.build())
    out = layer(torch.randn(BATCH, 2, 3))
    num_samples = out.num_samples
    for shape in [
        (BATCH,),
        (num_samples + 1, BATCH),
        (num_samples, BATCH, 2),
        (num_samples, BATCH + 1),
        (BATCH, num_samples) if BATCH != num_samples else (1, 1, 1),
    ]:
        with pytest.raises(ValueError, match="cost"):
            out.objective(torch.zeros(shape))


def test_layer_without_estimator_gives_probabilities_but_refuses_to_sample():
    layer = DiscreteLatent(3, Softmax())
    scores = torch.tensor([[[0.0, 1.0, 2.0]]])
    expected = torch.log_softmax(scores, -1)
    torch.testing.assert_close(layer.log_probs(scores), expected)
    torch.testing.assert_close(layer.distribution(scores).logits, expected)
    with pytest.raises(ValueError, match="has no estimator"):
        layer(scores)
