"""Input checks of DiscreteLatent: non-finite scores raise unless switched off."""

import math

import pytest
import torch

import catlight.latent
from catlight.latent import (
    Catnat,
    DiscreteLatent,
    GumbelSoftmax,
    LeaveOneOut,
    ReinMax,
    Softmax,
    StraightThrough,
)
from tests.latent.registry import PARAMETERIZATIONS


@pytest.fixture
def default_validation_restored():
    yield
    catlight.latent.set_default_validate_args(True)


@pytest.mark.parametrize("param_name", list(PARAMETERIZATIONS))
@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("estimator", [StraightThrough, ReinMax, LeaveOneOut])
def test_validation_rejects_nan_and_positive_infinity(param_name, bad, estimator):
    layer = DiscreteLatent(4, PARAMETERIZATIONS[param_name](), estimator())
    scores = torch.zeros(2, 3, layer.num_scores)
    scores[1, 2, 0] = bad
    scores[1, 2, 1] = bad
    name = type(layer.parameterization).__name__
    match = rf"DiscreteLatent\(K=4, {name}\): 2 of .* \(the first at index \(1, 2, 0\)\)"
    with pytest.raises(ValueError, match=match):
        layer(scores)
    with pytest.raises(ValueError, match=match):
        layer.distribution(scores)


def test_validation_catnat_negative_infinity_points_to_mask():
    layer = DiscreteLatent(4, Catnat("sigmoid"), LeaveOneOut(2))
    scores = torch.tensor([[0.0, -math.inf, 0.0]])
    with pytest.raises(ValueError, match="pass mask= to the layer"):
        layer(scores)


def test_validation_softmax_row_of_negative_infinity_raises():
    layer = DiscreteLatent(3, Softmax(), GumbelSoftmax())
    scores = torch.zeros(2, 3)
    scores[1] = -math.inf
    with pytest.raises(ValueError, match=r"1 of 2 rows of scores .* \(1,\)"):
        layer(scores)


def test_validation_can_be_switched_off_per_layer_and_globally(default_validation_restored):
    scores = torch.full((1, 3), math.nan)
    DiscreteLatent(3, Softmax(), LeaveOneOut(2), validate_args=False)(scores)
    catlight.latent.set_default_validate_args(False)
    DiscreteLatent(3, Softmax(), LeaveOneOut(2))(scores)
    with pytest.raises(ValueError, match="NaN"):
        DiscreteLatent(3, Softmax(), LeaveOneOut(2), validate_args=True)(scores)


def test_validation_default_switch_rejects_non_bool():
    with pytest.raises(ValueError, match="value must be a bool, got 1"):
        catlight.latent.set_default_validate_args(1)


def test_layer_rejects_integer_scores():
    layer = DiscreteLatent(3, Softmax(), LeaveOneOut(2))
    with pytest.raises(ValueError, match=r"scores must be floating point, got torch\.int64"):
        layer(torch.zeros(2, 3, dtype=torch.int64))


def test_relaxed_estimator_rejects_bool_tau():
    with pytest.raises(ValueError, match="tau must be a finite number > 0, got True"):
        GumbelSoftmax(tau=True)


@pytest.mark.parametrize("parameterization", [Catnat, Softmax])
def test_validation_accepts_huge_finite_scores(parameterization):
    # their sum overflows to inf, which alone must not count as a bad score
    layer = DiscreteLatent(4, parameterization(), LeaveOneOut(2))
    out = layer(torch.full((2, layer.num_scores), 3e38))
    assert torch.isfinite(out.log_probs).all()
