"""Unbiasedness: the mean of many gradient estimates is the exact gradient of E[f(z)].

The exact gradient is computed here independently of the Exact estimator: every
configuration of the N variables is enumerated with itertools.product and autograd
differentiates ``sum_config prod_n q_n(config_n) f(config)``.
"""

import itertools

import pytest
import torch

from catlight.latent import DiscreteLatent, Estimator, Exact, LatentSample, LeaveOneOut
from tests.latent.registry import EXAMPLES, PARAMETERIZATIONS, UNBIASED_SAMPLING

# replicates per test: R * N rows per forward pass (CARMS's cost grows with the rows)
REPLICATES = {1: 20000, 3: 15000}
# Bonferroni-style bound: each test compares N * M <= 24 coordinates; under a normal
# approximation P(|Z| > 5) = 5.7e-7 each, so a false failure rate below ~1.4e-5 per test
# and ~1.5e-3 over the ~100 cases. Score-function estimates of rare categories are
# skewed (a coordinate jumps when a category of probability ~0.01 is drawn), which
# makes the tails at a few SE heavier than normal (~2-3x by an Edgeworth estimate), so
# the bound is 5 rather than 4.5; a 30 % bias still gives |Z| > 10 (see below).
Z_BOUND = 5.0
# for coordinates whose spread is ~0 (e.g. a natural-activation node outside its support)
ABS_TOL = 1e-5


def coupled_cost(z, weights, target=0.5):
    """``f(z) = (sum_n v_n - c)^2 + prod_n v_n``, ``v_n = z_n . w_n``: ``(..., N, K) -> (...)``."""
    values = (z * weights).sum(-1)
    return (values.sum(-1) - target) ** 2 + values.prod(-1)


def enumerated_gradient(parameterization, scores, weights):
    """Exact ``d/dscores E_q[f(z)]`` by enumerating all K^N configurations."""
    scores = scores.detach().clone().requires_grad_()
    log_probs = parameterization(scores)  # [N, K]
    num_variables, num_categories = log_probs.shape
    configs = torch.tensor(list(itertools.product(range(num_categories), repeat=num_variables)))
    z = torch.nn.functional.one_hot(configs, num_categories).float()  # [K^N, N, K]
    log_joint = log_probs[torch.arange(num_variables), configs].sum(-1)  # [K^N]
    expectation = (log_joint.exp() * coupled_cost(z, weights)).sum()
    (grad,) = torch.autograd.grad(expectation, scores)
    return grad


def replicated_gradients(layer, scores, weights, replicates):
    """``replicates`` independent gradient estimates in one forward pass: ``(R, N, M)``."""
    batch = scores.expand(replicates, *scores.shape).clone().requires_grad_()
    out = layer(batch)
    out.objective(coupled_cost(out.z, weights)).sum().backward()
    return batch.grad


def max_excess(estimates, exact):
    """The largest ``|mean - exact| / SE`` (0 where within ABS_TOL), and the means."""
    mean = estimates.mean(0)
    stderr = estimates.std(0) / estimates.shape[0] ** 0.5
    excess = ((mean - exact).abs() - ABS_TOL).clamp(min=0) / stderr.clamp(min=1e-12)
    return excess.max().item(), mean


def problem(example_build, param_name, num_categories, num_variables, seed):
    torch.manual_seed(seed)
    layer = DiscreteLatent(num_categories, PARAMETERIZATIONS[param_name](), example_build())
    scores = torch.randn(num_variables, layer.num_scores)
    weights = torch.randn(num_variables, num_categories)
    return layer, scores, weights


over_problems = [
    pytest.mark.parametrize("param_name", ["softmax", "catnat"]),
    pytest.mark.parametrize("num_variables", [1, 3]),
    pytest.mark.parametrize("num_categories", [2, 3, 5, 8]),
]


def over_problem(test):
    for mark in over_problems:
        test = mark(test)
    return test


@over_problem
@pytest.mark.parametrize("example", UNBIASED_SAMPLING, ids=lambda ex: ex.id)
def test_unbiased_estimator_matches_exact_gradient(
    example, param_name, num_variables, num_categories
):
    layer, scores, weights = problem(example.build, param_name, num_categories, num_variables, 0)
    # one warm-up step, so that state (a moving-average baseline) is not at its default
    replicated_gradients(layer, scores, weights, 16)
    exact = enumerated_gradient(layer.parameterization, scores, weights)
    estimates = replicated_gradients(layer, scores, weights, REPLICATES[num_variables])
    excess, mean = max_excess(estimates, exact)
    assert excess < Z_BOUND, (mean, exact)


@over_problem
def test_exact_estimator_matches_enumerated_gradient(param_name, num_variables, num_categories):
    layer, scores, weights = problem(Exact, param_name, num_categories, num_variables, 0)
    (estimate,) = replicated_gradients(layer, scores, weights, 1)
    exact = enumerated_gradient(layer.parameterization, scores, weights)
    torch.testing.assert_close(estimate, exact, atol=1e-5, rtol=1e-5)


def test_unbiased_registry_claims_are_tested():
    claimed = {ex.id for ex in EXAMPLES if ex.unbiased}
    tested = {ex.id for ex in UNBIASED_SAMPLING} | {ex.id for ex in EXAMPLES if ex.cls is Exact}
    assert claimed == tested


class _ShrunkGradient(Estimator):
    """LeaveOneOut with its gradient multiplied by ``factor``: a biased estimator."""

    def __init__(self, factor):
        super().__init__()
        self.inner, self.factor = LeaveOneOut(4), factor

    def forward(self, log_probs):
        out = self.inner(log_probs)

        def objective(cost):
            value = out.objective(cost)
            return self.factor * value + (1 - self.factor) * value.detach()

        return LatentSample(out.log_probs, out.z, objective)


@pytest.mark.parametrize("param_name", ["softmax", "catnat"])
def test_unbiasedness_check_detects_a_biased_estimator(param_name):
    # the check above has power: a 30 % shrinkage of the gradient is caught
    layer, scores, weights = problem(lambda: _ShrunkGradient(0.7), param_name, 5, 3, 0)
    exact = enumerated_gradient(layer.parameterization, scores, weights)
    excess, _ = max_excess(replicated_gradients(layer, scores, weights, REPLICATES[3]), exact)
    assert excess > Z_BOUND


@pytest.mark.parametrize("example", UNBIASED_SAMPLING, ids=lambda ex: ex.id)
def test_unbiased_estimator_with_distinct_examples_in_extra_batch_dims(example):
    # scores (R, P, N, M): P = 3 different problems side by side, so an estimator that
    # mixed up examples of a batch would be biased; same bound as above, P * N * M = 30
    # coordinates
    torch.manual_seed(1)
    num_problems, num_variables, num_categories, replicates = 3, 2, 5, 8000
    layer = DiscreteLatent(num_categories, PARAMETERIZATIONS["softmax"](), example.build())
    scores = torch.randn(num_problems, num_variables, layer.num_scores) * 1.5
    weights = torch.randn(num_variables, num_categories)
    estimates = replicated_gradients(layer, scores, weights, replicates)  # [R, P, N, M]
    for index in range(num_problems):
        exact = enumerated_gradient(layer.parameterization, scores[index], weights)
        excess, mean = max_excess(estimates[:, index], exact)
        assert excess < Z_BOUND, (index, mean, exact)


@pytest.mark.parametrize("example", UNBIASED_SAMPLING, ids=lambda ex: ex.id)
def test_unbiased_estimator_value_is_an_unbiased_estimate_of_the_expected_cost(example):
    # objective's value (not only its gradient) estimates E[f]: the mean cost for most,
    # a weighted sum for IndeCateR and UnorderedSet; |mean - exact| < Z_BOUND SE
    layer, scores, weights = problem(example.build, "softmax", 3, 3, 2)
    replicates = 4000
    out = layer(scores.expand(replicates, *scores.shape))
    with torch.no_grad():
        values = out.objective(coupled_cost(out.z, weights))
        configs = torch.tensor(list(itertools.product(range(3), repeat=3)))
        z = torch.nn.functional.one_hot(configs, 3).float()
        log_joint = out.log_probs[0][torch.arange(3), configs].sum(-1)
        exact = (log_joint.exp() * coupled_cost(z, weights)).sum()
    stderr = values.std() / replicates**0.5
    assert (values.mean() - exact).abs() < Z_BOUND * stderr + 1e-6, (values.mean(), exact)
