"""Exact enumeration of all K^N configurations."""

import itertools

import pytest
import torch

from catlight.latent import Catnat, DiscreteLatent, Exact, Softmax


@pytest.mark.parametrize(("num_categories", "num_variables"), [(2, 1), (3, 2), (4, 3), (2, 5)])
def test_exact_z_enumerates_every_configuration_once(num_categories, num_variables):
    layer = DiscreteLatent(num_categories, Softmax(), Exact())
    out = layer(torch.randn(4, num_variables, num_categories))
    count = num_categories**num_variables
    assert out.z.shape == (count, 4, num_variables, num_categories)
    assert not out.z.requires_grad
    indices = out.z.argmax(-1)  # [K^N, B, N]
    assert ((out.z == 0) | (out.z == 1)).all() and (out.z.sum(-1) == 1).all()
    expected = set(itertools.product(range(num_categories), repeat=num_variables))
    for example in range(4):
        configs = [tuple(row.tolist()) for row in indices[:, example]]
        assert len(configs) == count
        assert set(configs) == expected
    assert (indices == indices[:, :1]).all()  # the same for every example


@pytest.mark.parametrize("parameterization", [Softmax(), Catnat()], ids=["softmax", "catnat"])
def test_exact_objective_is_the_expectation(parameterization):
    torch.manual_seed(0)
    num_categories, num_variables, batch = 3, 2, 5
    layer = DiscreteLatent(num_categories, parameterization, Exact())
    scores = torch.randn(batch, num_variables, layer.num_scores)
    out = layer(scores)
    cost = torch.randn(out.num_samples, batch)
    probs = parameterization(scores).exp()
    expected = torch.zeros(batch)
    for sample, config in enumerate(out.z[:, 0].argmax(-1).tolist()):
        joint = torch.ones(batch)
        for variable, category in enumerate(config):
            joint = joint * probs[:, variable, category]
        expected += joint * cost[sample]
    torch.testing.assert_close(out.objective(cost), expected)


def test_exact_single_variable_is_marginalisation():
    torch.manual_seed(0)
    layer = DiscreteLatent(10, Softmax(), Exact())
    scores = torch.randn(6, 1, 10).requires_grad_()
    out = layer(scores)
    per_class = torch.randn(6, 10)
    cost = (out.z[:, :, 0] * per_class).sum(-1)  # f(k) per example: [K, B]
    value = out.objective(cost)
    reference_scores = scores.detach().clone().requires_grad_()
    expected = (torch.softmax(reference_scores[:, 0], -1) * per_class).sum(-1)
    torch.testing.assert_close(value, expected)
    value.sum().backward()
    expected.sum().backward()
    torch.testing.assert_close(scores.grad, reference_scores.grad)


def test_exact_at_the_enumeration_budget_works():
    layer = DiscreteLatent(5, Softmax(), Exact(max_configurations=125))
    assert layer(torch.randn(2, 3, 5)).z.shape[0] == 125


def test_exact_over_the_enumeration_budget_fails_at_forward():
    layer = DiscreteLatent(5, Softmax(), Exact(max_configurations=124))
    layer(torch.randn(2, 2, 5))  # 25 configurations: fine
    with pytest.raises(ValueError, match="max_configurations"):
        layer(torch.randn(2, 3, 5))


@pytest.mark.parametrize("parameterization", [Softmax(), Catnat()], ids=["softmax", "catnat"])
def test_exact_more_categories_than_budget_fails_at_construction(parameterization):
    with pytest.raises(ValueError, match="max_configurations"):
        DiscreteLatent(5, parameterization, Exact(max_configurations=4))
    DiscreteLatent(4, parameterization, Exact(max_configurations=4))


@pytest.mark.parametrize("max_configurations", [1, 0, -5, 2.5, "100"])
def test_exact_rejects_bad_max_configurations(max_configurations):
    with pytest.raises(ValueError, match="max_configurations"):
        Exact(max_configurations=max_configurations)
