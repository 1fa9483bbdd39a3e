"""Structured estimators: unbiasedness against exact enumeration, the RELAX critic, errors.

Unbiasedness: R = 16000 independent gradient estimates (one forward pass over a batch of
R copies of the scores) are compared coordinate by coordinate with the exact gradient of
``sum_T p(T) f(encode(T))`` (enumeration of every trace, tests/.../enumeration.py), with a
bound of 5 standard errors: P(|Z| > 5) = 5.7e-7 under a normal approximation, so with the
~100 compared coordinates of this file a false failure has probability below 1e-4 (the
tests are seeded, so a run either always passes or always fails).
"""

import pytest
import torch
from torch import nn

from catlight.latent.structured import (
    Arborescence,
    BinaryTree,
    ExponentialReinforce,
    MLPCritic,
    Permutation,
    Relax,
    SpanningTree,
    StructuredLatent,
    TopK,
    TraceReinforce,
)
from tests.latent.structured.enumeration import exact_gradient

Z_BOUND = 5.0
REPLICATES = 16000

STRUCTURES = {
    "top_k": lambda: TopK(5, 2),
    "permutation": lambda: Permutation(4),
    "spanning_tree": lambda: SpanningTree(4),
    "binary_tree": lambda: BinaryTree(4),
    "arborescence": lambda: Arborescence(4),
}


def random_critic(num_inputs):
    critic = MLPCritic(num_inputs, hidden_size=8)
    nn.init.normal_(critic.output.weight, std=0.5)
    return critic


ESTIMATORS = {
    "T-REINFORCE": lambda n: TraceReinforce(1, "none"),
    "T-REINFORCE+": lambda n: TraceReinforce(4, "leave_one_out"),
    "E-REINFORCE": lambda n: ExponentialReinforce(1, "none"),
    "E-REINFORCE+": lambda n: ExponentialReinforce(4, "leave_one_out"),
    "RELAX": lambda n: Relax(random_critic(n), num_samples=2),
}


def quadratic_cost(weights):
    """``f(z) = (sum z * w - 1/2)^2`` over the structure's encoding."""

    def cost(z):
        dims = tuple(range(-weights.dim(), 0))
        return ((z * weights).sum(dims) - 0.5).square()

    return cost


@pytest.mark.parametrize("structure_name", list(STRUCTURES))
@pytest.mark.parametrize("estimator_name", list(ESTIMATORS))
def test_estimator_is_unbiased(structure_name, estimator_name):
    torch.manual_seed(0)
    structure = STRUCTURES[structure_name]()
    layer = StructuredLatent(structure, ESTIMATORS[estimator_name](structure.num_scores))
    scores = torch.randn(structure.num_scores)
    probe = structure.encode(structure.trace(torch.rand(structure.num_scores)))
    cost = quadratic_cost(torch.randn(probe.shape))
    batch = scores.expand(REPLICATES, -1).clone().requires_grad_()
    out = layer(batch)
    out.objective(cost(out.z)).sum().backward()
    estimates = batch.grad
    exact = exact_gradient(structure, scores, cost)
    stderr = estimates.std(0) / REPLICATES**0.5
    constant = stderr == 0  # the scores of edges no step chooses (into an arborescence's root)
    assert torch.equal(estimates.mean(0)[constant], exact[constant])
    excess = ((estimates.mean(0) - exact).abs() / stderr)[~constant]
    assert excess.max() <= Z_BOUND, (estimates.mean(0), exact)


@pytest.mark.parametrize("estimator_name", list(ESTIMATORS))
def test_objective_value_is_the_mean_cost_and_trains_the_decoder(estimator_name):
    structure = SpanningTree(4)
    layer = StructuredLatent(structure, ESTIMATORS[estimator_name](6))
    decoder = torch.randn(6, requires_grad=True)
    out = layer(torch.randn(3, 6, requires_grad=True))
    cost = (out.z * decoder).sum(-1)
    objective = out.objective(cost)
    assert objective.shape == (3,)
    assert torch.allclose(objective, cost.mean(0))
    objective.sum().backward()
    assert torch.allclose(decoder.grad, out.z.mean(0).sum(0))


def test_relax_with_a_zero_critic_is_t_reinforce_without_baseline():
    # MLPCritic's output layer starts at zero: c = 0, so g = mean_s f_s grad log p(T_s)
    grads = []
    for estimator in (Relax(MLPCritic(6), num_samples=3), TraceReinforce(3, "none")):
        torch.manual_seed(4)
        scores = torch.randn(5, 6, requires_grad=True)
        out = StructuredLatent(SpanningTree(4), estimator)(scores)
        out.objective(out.z[..., :3].sum(-1)).sum().backward()
        grads.append(scores.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


class ScaledCritic(nn.Module):
    """``c_a(E) = a * sum_i -log E_i``: the RELAX estimate is affine in ``a``."""

    def __init__(self, scale):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, exponentials):
        return -self.scale * exponentials.log().sum(-1)


def relax_gradients(scale):
    torch.manual_seed(5)
    critic = ScaledCritic(scale)
    scores = torch.randn(4, 5, requires_grad=True)
    out = StructuredLatent(TopK(5, 2), Relax(critic, num_samples=2))(scores)
    out.objective(out.z[..., 0] + 2 * out.z[..., 3]).sum().backward()
    return scores.grad, critic.scale.grad


def test_relax_trains_the_critic_on_the_squared_estimate():
    # g(a) = g0 + a g1 with the same noise, so d/da sum_b |g_b(a)|^2 = 2 sum_b g_b(a) . g1
    at_zero, _ = relax_gradients(0.0)
    at_one, _ = relax_gradients(1.0)
    halfway, critic_grad = relax_gradients(0.5)
    assert torch.allclose(halfway, (at_zero + at_one) / 2, atol=1e-5)
    expected = 2 * (halfway * (at_one - at_zero)).sum()
    assert critic_grad.item() == pytest.approx(expected.item(), rel=1e-4)


def test_relax_without_autograd_returns_the_mean_cost():
    layer = StructuredLatent(TopK(5, 2), Relax(MLPCritic(5)))
    with torch.no_grad():
        out = layer(torch.randn(3, 5))
        cost = out.z.sum(-1) * 2.0
        assert torch.equal(out.objective(cost), cost.mean(0))


@pytest.mark.parametrize("cls", [TraceReinforce, ExponentialReinforce])
def test_leave_one_out_needs_two_samples(cls):
    with pytest.raises(ValueError, match="baseline='leave_one_out' needs num_samples >= 2, got 1"):
        cls(num_samples=1, baseline="leave_one_out")


@pytest.mark.parametrize("cls", [TraceReinforce, ExponentialReinforce])
def test_unknown_baseline_is_rejected(cls):
    with pytest.raises(ValueError, match="baseline must be 'none' or 'leave_one_out', got 'mean'"):
        cls(num_samples=2, baseline="mean")


def test_num_samples_must_be_positive():
    with pytest.raises(ValueError, match="TraceReinforce: num_samples must be an int >= 1, got 0"):
        TraceReinforce(num_samples=0, baseline="none")
    with pytest.raises(ValueError, match="Relax: num_samples must be an int >= 1, got 0"):
        Relax(MLPCritic(3), num_samples=0)


def test_relax_critic_must_be_a_module():
    with pytest.raises(ValueError, match=r"Relax: critic must be an nn\.Module"):
        Relax(lambda exponentials: exponentials.sum(-1))


def test_mlp_critic_rejects_bad_sizes():
    with pytest.raises(ValueError, match="MLPCritic: hidden_size must be an int >= 1, got 0"):
        MLPCritic(4, hidden_size=0)
