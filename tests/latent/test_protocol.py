"""The one latent protocol: both layers satisfy it and share the sample base."""

import pytest
import torch

from catlight.latent import (
    DiscreteLatent,
    Latent,
    LatentSample,
    LeaveOneOut,
    Sample,
    Softmax,
    leave_one_out_weights,
    score_function_surrogate,
)
from catlight.latent.structured import Permutation, StructuredLatent, TopK, TraceReinforce

LAYERS = {
    "discrete": lambda: DiscreteLatent(4, Softmax(), LeaveOneOut(num_samples=3)),
    "structured": lambda: StructuredLatent(TopK(5, 2), TraceReinforce(num_samples=3)),
}


def scores_for(layer, batch=2):
    if isinstance(layer, DiscreteLatent):
        return torch.randn(batch, 6, layer.num_scores, requires_grad=True)
    return torch.randn(batch, layer.num_scores, requires_grad=True)


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_satisfies_the_protocol_and_trains_through_it(name):
    torch.manual_seed(0)
    layer = LAYERS[name]()
    assert isinstance(layer, Latent)
    scores = scores_for(layer)
    out = layer(scores)
    assert isinstance(out, Sample)
    assert out.num_samples == 3 and out.batch_shape == (2,)
    flat = out.z.flatten(2)
    cost = flat @ torch.arange(flat.shape[-1], dtype=torch.float32)  # (S, B)
    objective = out.objective(cost)
    assert objective.shape == (2,)
    assert torch.allclose(objective, cost.mean(0))
    objective.sum().backward()
    assert torch.isfinite(scores.grad).all() and scores.grad.abs().sum() > 0
    mode = layer.mode(scores.detach())
    assert mode.shape == out.z.shape[1:] and mode.dtype == torch.float32


def test_a_plain_module_is_not_a_latent():
    assert not isinstance(torch.nn.Linear(2, 3), Latent)


@pytest.mark.parametrize(
    ("name", "owner"), [("discrete", "LatentSample"), ("structured", "StructuredSample")]
)
def test_cost_shape_error_is_shared(name, owner):
    layer = LAYERS[name]()
    out = layer(scores_for(layer, batch=5))
    with pytest.raises(
        ValueError,
        match=rf"{owner}\.objective: cost must have shape \(S, \*batch\) = \(3, 5\), "
        r"got \(3, 5, 7\); reduce over everything but the sample and batch dimensions first",
    ):
        out.objective(torch.zeros(3, 5, 7))


@pytest.mark.parametrize("name", list(LAYERS))
def test_objective_runs_in_float32_under_autocast(name):
    layer = LAYERS[name]()
    scores = scores_for(layer)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(scores)
        objective = out.objective(out.z.flatten(2).sum(-1).to(torch.bfloat16))
    assert objective.dtype == torch.float32


def test_leave_one_out_weights_subtract_the_mean_of_the_others():
    cost = torch.tensor([[1.0, 4.0], [3.0, 0.0], [8.0, 2.0]])  # (S=3, B=2)
    others = (cost.sum(0) - cost) / 2
    assert torch.allclose(leave_one_out_weights(cost), (cost - others) / 3)


@pytest.mark.parametrize("per_variable", [False, True])
def test_score_function_surrogate_value_and_gradient(per_variable):
    torch.manual_seed(0)
    shape = (3, 2, 4) if per_variable else (3, 2)
    theta = torch.randn(shape, requires_grad=True)
    log_density = theta * 2.0
    cost = torch.randn(3, 2)
    weights = torch.randn(shape)
    surrogate = score_function_surrogate(cost, weights, log_density)
    assert torch.allclose(surrogate, cost.mean(0))
    surrogate.sum().backward()
    assert torch.allclose(theta.grad, 2.0 * weights)


def test_categorical_and_structured_leave_one_out_agree():
    # one categorical variable over K items and a top-1 subset are the same law: the
    # two leave-one-out estimators give the same gradient on the same draws
    torch.manual_seed(0)
    scores = torch.randn(3, 5)
    cost_of_item = torch.randn(5)
    categorical = DiscreteLatent(5, Softmax(), LeaveOneOut(num_samples=4))
    top_one = StructuredLatent(TopK(5, 1), TraceReinforce(num_samples=4))
    gradients = []
    for layer, item_scores in [(categorical, scores.unsqueeze(-2)), (top_one, scores)]:
        item_scores = item_scores.clone().requires_grad_()
        out = layer(item_scores)
        items = out.z.reshape(4, 3, 5)
        out.objective(items @ cost_of_item).sum().backward()
        gradients.append((item_scores.grad.reshape(3, 5), items))
    (categorical_grad, categorical_items), (structured_grad, structured_items) = gradients
    assert categorical_items.shape == structured_items.shape
    # same estimator formula: check it on the structured draws directly
    log_probs = scores.log_softmax(-1)
    costs = structured_items @ cost_of_item  # (S, B)
    weights = leave_one_out_weights(costs)
    expected = (weights.unsqueeze(-1) * (structured_items - log_probs.exp())).sum(0)
    assert torch.allclose(structured_grad, expected, atol=1e-6)
    costs = categorical_items @ cost_of_item
    weights = leave_one_out_weights(costs)
    expected = (weights.unsqueeze(-1) * (categorical_items - log_probs.exp())).sum(0)
    assert torch.allclose(categorical_grad, expected, atol=1e-6)


def test_latent_sample_is_a_sample():
    out = LatentSample(
        torch.zeros(2, 3, 4).log_softmax(-1), torch.zeros(5, 2, 3, 4), lambda c: c.mean(0)
    )
    assert isinstance(out, Sample) and out.num_samples == 5 and out.batch_shape == (2,)


def test_permutation_sample_kl_rejects_a_prior():
    out = StructuredLatent(Permutation(3), TraceReinforce())(torch.randn(2, 3))
    with pytest.raises(ValueError, match="prior_log_probs must be None"):
        out.kl(torch.zeros(3))
