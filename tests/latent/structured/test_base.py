"""Properties every structure shares: exact enumeration, sampling, and E | T.

Statistical checks are seeded; each compares with a bound of 5 standard errors (under a
normal approximation P(|Z| > 5) = 5.7e-7 per compared number, so below 1e-4 over the
file's ~150 numbers).
"""

import math

import pytest
import torch

from catlight.latent.structured import (
    Arborescence,
    BinaryTree,
    Permutation,
    SpanningTree,
    TopK,
    Trace,
    trace_kl_to_uniform,
)
from catlight.latent.structured.base import (
    chain_trace,
    conditional_exponentials,
    exponential_log_density,
    trace_log_prob,
    unit_exponentials,
)
from tests.latent.structured.enumeration import (
    all_traces,
    structure_keys,
    structure_probabilities,
)

Z_BOUND = 5.0
EULER_GAMMA = 0.5772156649015329

# structure, number of traces, number of distinct structures
STRUCTURES = {
    "top_k": (lambda: TopK(5, 2), 20, 10),  # ordered pairs; subsets of size 2 of 5
    "permutation": (lambda: Permutation(4), 24, 24),
    "spanning_tree": (lambda: SpanningTree(4), 96, 16),  # 16 trees x 3! edge orders
    "binary_tree": (lambda: BinaryTree(4), 14, 14),  # Catalan(4)
    # 4^2 arborescences rooted at 0, built by 82 traces (not as many for each)
    "arborescence": (lambda: Arborescence(4), 82, 16),
}
over_structures = pytest.mark.parametrize("name", list(STRUCTURES))
# the structures whose KL compares with the uniform prior over traces
over_uniform_prior = pytest.mark.parametrize(
    "name", [name for name in STRUCTURES if name != "arborescence"]
)


def scores_for(structure, seed=0):
    return torch.randn(structure.num_scores, generator=torch.Generator().manual_seed(seed))


@over_structures
def test_enumeration_finds_every_trace_and_structure(name):
    make, num_traces, num_structures = STRUCTURES[name]
    structure = make()
    traces = all_traces(structure)
    assert traces.selected.shape[0] == num_traces
    assert len(set(structure_keys(structure, traces))) == num_structures


@over_structures
def test_trace_probabilities_sum_to_one(name):
    structure = STRUCTURES[name][0]()
    for seed in range(3):
        probs = structure.log_prob(2 * scores_for(structure, seed), all_traces(structure)).exp()
        assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)


@over_structures
def test_sampled_structure_frequencies_match_enumeration(name):
    torch.manual_seed(1)
    structure = STRUCTURES[name][0]()
    scores = scores_for(structure, 1)
    expected = structure_probabilities(structure, scores)
    num_draws = 20000
    exponentials = unit_exponentials((num_draws, structure.num_scores), scores.device)
    keys = structure_keys(structure, structure.trace(exponentials * torch.exp(-scores)))
    assert set(keys) <= set(expected)
    for key, prob in expected.items():
        frequency = keys.count(key) / num_draws
        stderr = math.sqrt(prob * (1 - prob) / num_draws)
        assert abs(frequency - prob) <= Z_BOUND * stderr + 1e-6, (key, frequency, prob)


@over_structures
def test_conditional_sample_reproduces_the_trace(name):
    torch.manual_seed(2)
    structure = STRUCTURES[name][0]()
    scores = 2 * torch.randn(3, structure.num_scores)
    exponentials = unit_exponentials((500, 3, structure.num_scores), scores.device)
    trace = structure.trace(exponentials * torch.exp(-scores))
    rerun = structure.trace(structure.conditional(scores, trace))
    assert torch.equal(rerun.selected, trace.selected)
    assert torch.equal(rerun.active, trace.active)


@over_structures
def test_conditional_sample_has_the_unconditional_marginal(name):
    # T ~ p(T), then E~ ~ E | T, must be distributed as E: E[E_i] = exp(-theta_i) and
    # E[log E_i] = -theta_i - Euler's gamma
    torch.manual_seed(3)
    structure = STRUCTURES[name][0]()
    scores = scores_for(structure, 3)
    exponentials = unit_exponentials((40000, structure.num_scores), scores.device)
    trace = structure.trace(exponentials * torch.exp(-scores))
    resampled = structure.conditional(scores, trace)
    for statistic, expected in [
        (resampled, torch.exp(-scores)),
        (resampled.log(), -scores - EULER_GAMMA),
    ]:
        stderr = statistic.std(0) / statistic.shape[0] ** 0.5
        assert ((statistic.mean(0) - expected).abs() <= Z_BOUND * stderr).all()


def test_conditional_sample_is_differentiable_in_the_scores():
    scores = torch.randn(2, 6, requires_grad=True)
    structure = SpanningTree(4)
    trace = structure.trace(unit_exponentials((5, 2, 6), scores.device) * torch.exp(-scores))
    conditional_exponentials(scores, trace).sum().backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0
    assert torch.isfinite(scores.grad).all()


def test_trace_log_prob_by_hand():
    # theta = log(1, 2, 3): choose item 2 among all (3/6), then item 0 among {0, 1} (1/3)
    scores = torch.tensor([1.0, 2.0, 3.0]).log()
    trace = chain_trace(torch.tensor([2, 0]), 3)
    assert trace.active.tolist() == [[True, True, True], [True, True, False]]
    assert trace_log_prob(scores, trace).item() == pytest.approx(math.log(3 / 6 * 1 / 3))


def test_trace_log_prob_broadcasts_scores_over_samples():
    scores = torch.randn(4, 5)
    selected = torch.stack([torch.randperm(5)[:3] for _ in range(2 * 4)]).view(2, 4, 3)
    trace = chain_trace(selected, 5)
    batched = trace_log_prob(scores, trace)
    assert batched.shape == (2, 4)
    assert batched[1, 2].item() == pytest.approx(trace_log_prob(scores[2], trace[1, 2]).item())


def test_exponential_log_density_by_hand():
    scores = torch.tensor([0.0, math.log(2.0)])
    exponentials = torch.tensor([0.5, 0.25])
    # Exp(1) at 0.5 and Exp(2) at 0.25: -0.5 + (log 2 - 0.5)
    expected = math.log(2.0) - 1.0
    assert exponential_log_density(scores, exponentials).item() == pytest.approx(expected)


def test_trace_indexing_keeps_both_fields():
    trace = Trace(torch.zeros(3, 2, dtype=torch.long), torch.ones(3, 2, 4, dtype=torch.bool))
    assert trace[1:].selected.shape == (2, 2) and trace[1:].active.shape == (2, 2, 4)


@over_uniform_prior
def test_log_num_traces_counts_the_enumerated_traces(name):
    make, num_traces, _ = STRUCTURES[name]
    assert make().log_num_traces == pytest.approx(math.log(num_traces), abs=1e-12)


@over_uniform_prior
def test_trace_kl_estimate_has_the_exact_kl_as_expectation(name):
    structure = STRUCTURES[name][0]()
    scores = 2 * scores_for(structure, 3)
    traces = all_traces(structure)
    log_q = structure.log_prob(scores, traces)
    exact = (log_q.exp() * log_q).sum() + structure.log_num_traces
    estimates = trace_kl_to_uniform(scores, traces, structure.log_num_traces)
    assert (log_q.exp() * estimates).sum().item() == pytest.approx(exact.item(), abs=1e-5)
    assert exact.item() > 0.01
    uniform = trace_kl_to_uniform(torch.zeros_like(scores), traces, structure.log_num_traces)
    if name in ("top_k", "permutation"):  # equal scores: every trace equally likely
        assert torch.allclose(uniform, torch.zeros_like(uniform), atol=1e-5)
