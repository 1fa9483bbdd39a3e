"""Score-function estimators: REINFORCE (with its moving-average baseline) and LOO."""

import pytest
import torch

from catlight.latent import Catnat, DiscreteLatent, LeaveOneOut, Reinforce, Softmax

PARAMETERIZATIONS = [Softmax(), Catnat(), Catnat("sigmoid")]
PARAM_IDS = ["softmax", "catnat", "catnat-sigmoid"]


def coupled_cost(z, weights):
    """A cost of the whole example that couples the N variables. ``(S, B, N, K) -> (S, B)``."""
    values = (z * weights).sum(-1)
    return (values.sum(-1) - 0.5) ** 2 + values.prod(-1)


def run(layer, scores, cost_fn):
    """One forward/backward; returns (one-hot samples, costs, gradient for the scores)."""
    scores = scores.detach().clone().requires_grad_()
    out = layer(scores)
    cost = cost_fn(out.z)
    out.objective(cost).sum().backward()
    return out.z.detach(), cost.detach(), scores.grad


def score_gradient(parameterization, scores, samples, coefficients):
    """``sum_s c_s grad log q(z_s)`` by autograd. coefficients: ``(S, B)``."""
    scores = scores.detach().clone().requires_grad_()
    log_probs = parameterization(scores)  # [B, N, K]
    sample_log_probs = (samples * log_probs).sum(-1).sum(-1)  # [S, B]: log q(z_s)
    (coefficients * sample_log_probs).sum().backward()
    return scores.grad


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS, ids=PARAM_IDS)
@pytest.mark.parametrize("num_samples", [1, 3])
def test_reinforce_gradient_is_cost_times_score(parameterization, num_samples):
    torch.manual_seed(0)
    layer = DiscreteLatent(5, parameterization, Reinforce(num_samples=num_samples))
    scores, weights = torch.randn(16, 3, layer.num_scores), torch.randn(3, 5)
    samples, cost, grad = run(layer, scores, lambda z: coupled_cost(z, weights))
    expected = score_gradient(parameterization, scores, samples, cost / num_samples)
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS, ids=PARAM_IDS)
@pytest.mark.parametrize("num_samples", [2, 5])
def test_leave_one_out_gradient_formula(parameterization, num_samples):
    # grad = 1/(n-1) sum_i (f_i - mean_j f_j) grad log q(z_i)
    torch.manual_seed(0)
    layer = DiscreteLatent(5, parameterization, LeaveOneOut(num_samples=num_samples))
    scores, weights = torch.randn(16, 3, layer.num_scores), torch.randn(3, 5)
    samples, cost, grad = run(layer, scores, lambda z: coupled_cost(z, weights))
    coefficients = (cost - cost.mean(0)) / (num_samples - 1)
    expected = score_gradient(parameterization, scores, samples, coefficients)
    torch.testing.assert_close(grad, expected)
    assert grad.abs().sum() > 0


def test_leave_one_out_constant_cost_gives_zero_gradient():
    torch.manual_seed(0)
    layer = DiscreteLatent(5, Softmax(), LeaveOneOut(num_samples=3))
    _, _, grad = run(layer, torch.randn(16, 3, 5), lambda z: z.sum((-2, -1)) * 0 + 7.0)
    assert (grad == 0).all()


# --- REINFORCE moving-average baseline ---------------------------------------------


def test_reinforce_baseline_is_a_checkpointed_buffer():
    layer = DiscreteLatent(4, Softmax(), Reinforce(baseline="moving_average"))
    state = layer.state_dict()
    assert "estimator.baseline_value" in state
    assert float(state["estimator.baseline_value"]) == 0.0
    layer.estimator.baseline_value.fill_(3.0)
    restored = DiscreteLatent(4, Softmax(), Reinforce(baseline="moving_average"))
    restored.load_state_dict(layer.state_dict())
    assert float(restored.estimator.baseline_value) == 3.0


@pytest.mark.parametrize("decay", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("num_samples", [1, 3])
def test_reinforce_baseline_update_and_gradient_use_old_value(decay, num_samples):
    torch.manual_seed(0)
    estimator = Reinforce(num_samples=num_samples, baseline="moving_average", decay=decay)
    estimator.baseline_value.fill_(2.0)
    layer = DiscreteLatent(5, Softmax(), estimator)
    scores, weights = torch.randn(16, 3, 5), torch.randn(3, 5)
    samples, cost, grad = run(layer, scores, lambda z: coupled_cost(z, weights) + 1.0)
    assert float(estimator.baseline_value) == 2.0  # objective() records, step() updates
    layer.step()
    # new = d * old + (1 - d) * mean cost
    expected_baseline = decay * 2.0 + (1 - decay) * cost.mean()
    torch.testing.assert_close(estimator.baseline_value, expected_baseline)
    # the gradient used the baseline from BEFORE the update
    coefficients = (cost - 2.0) / num_samples
    expected = score_gradient(Softmax(), scores, samples, coefficients)
    torch.testing.assert_close(grad, expected)
    updated = (cost - expected_baseline) / num_samples
    assert not torch.allclose(grad, score_gradient(Softmax(), scores, samples, updated))


def test_reinforce_baseline_accumulates_over_steps():
    torch.manual_seed(0)
    estimator = Reinforce(baseline="moving_average", decay=0.75)
    layer = DiscreteLatent(3, Softmax(), estimator)
    expected = 0.0
    for step in range(4):
        out = layer(torch.randn(8, 2, 3))
        cost = torch.full((1, 8), float(step + 1))
        out.objective(cost)
        layer.step()
        expected = 0.75 * expected + 0.25 * (step + 1)
    assert float(estimator.baseline_value) == pytest.approx(expected)


def test_reinforce_baseline_not_updated_in_eval_mode():
    torch.manual_seed(0)
    estimator = Reinforce(num_samples=2, baseline="moving_average", decay=0.5)
    estimator.baseline_value.fill_(1.0)
    layer = DiscreteLatent(4, Softmax(), estimator).eval()
    assert not estimator.training
    scores = torch.randn(8, 2, 4)
    samples, cost, grad = run(layer, scores, lambda z: z[..., 0].sum(-1) + 4.0)
    layer.step()
    assert float(estimator.baseline_value) == 1.0
    # the eval-mode gradient still uses the (unchanged) baseline
    expected = score_gradient(Softmax(), scores, samples, (cost - 1.0) / 2)
    torch.testing.assert_close(grad, expected)
    layer.train()
    run(layer, scores, lambda z: z[..., 0].sum(-1) + 4.0)
    layer.step()
    assert float(estimator.baseline_value) != 1.0


def test_reinforce_without_baseline_keeps_buffer_at_zero():
    torch.manual_seed(0)
    estimator = Reinforce(num_samples=2)
    layer = DiscreteLatent(4, Softmax(), estimator)
    scores = torch.randn(8, 2, 4)
    samples, cost, grad = run(layer, scores, lambda z: z[..., 0].sum(-1) + 4.0)
    layer.step()
    assert float(estimator.baseline_value) == 0.0
    torch.testing.assert_close(grad, score_gradient(Softmax(), scores, samples, cost / 2))


# --- errors ------------------------------------------------------------------------


@pytest.mark.parametrize("baseline", ["mean", "moving-average", "", None])
def test_reinforce_rejects_bad_baseline(baseline):
    with pytest.raises(ValueError, match="baseline"):
        Reinforce(baseline=baseline)


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5, float("nan")])
def test_reinforce_rejects_bad_decay(decay):
    with pytest.raises(ValueError, match="decay"):
        Reinforce(baseline="moving_average", decay=decay)


@pytest.mark.parametrize("num_samples", [0, -2, 1.0, True])
def test_reinforce_rejects_bad_num_samples(num_samples):
    with pytest.raises(ValueError, match="num_samples"):
        Reinforce(num_samples=num_samples)


@pytest.mark.parametrize("num_samples", [1, 0, 2.0, "4"])
def test_leave_one_out_rejects_fewer_than_two_samples(num_samples):
    with pytest.raises(ValueError, match="num_samples"):
        LeaveOneOut(num_samples=num_samples)


def test_reinforce_baseline_changes_only_in_step_and_objective_twice_counts_once():
    torch.manual_seed(0)
    estimator = Reinforce(baseline="moving_average", decay=0.5)
    layer = DiscreteLatent(3, Softmax(), estimator)
    out = layer(torch.randn(8, 2, 3))
    first = out.objective(torch.full((1, 8), 4.0))
    again = out.objective(torch.full((1, 8), 4.0))  # e.g. for logging
    out.objective(torch.full((1, 8), 100.0))  # a second call never counts
    torch.testing.assert_close(first, again)
    assert float(estimator.baseline_value) == 0.0
    layer.step()
    assert float(estimator.baseline_value) == 2.0
    layer.step()  # nothing recorded since: unchanged
    assert float(estimator.baseline_value) == 2.0
    # two samples drawn in one step (gradient accumulation): the mean of both costs
    layer(torch.randn(8, 2, 3)).objective(torch.full((1, 8), 2.0))
    layer(torch.randn(8, 2, 3)).objective(torch.full((1, 8), 6.0))
    layer.step()
    assert float(estimator.baseline_value) == 0.5 * 2.0 + 0.5 * 4.0


@pytest.mark.parametrize("estimator_class", [Reinforce, LeaveOneOut])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_score_function_non_finite_cost_raises_naming_the_estimator_and_count(estimator_class, bad):
    estimator = estimator_class(num_samples=2)
    layer = DiscreteLatent(3, Softmax(), estimator)
    cost = torch.ones(2, 8)
    cost[0, :3] = bad
    with pytest.raises(ValueError, match=rf"{estimator_class.__name__}: .* 3 non-finite entries"):
        layer(torch.randn(8, 2, 3)).objective(cost)


def test_reinforce_skipped_non_finite_cost_never_enters_the_baseline():
    torch.manual_seed(0)
    estimator = Reinforce(baseline="moving_average", decay=0.5, nonfinite_cost="skip")
    layer = DiscreteLatent(3, Softmax(), estimator)
    cost = torch.ones(1, 8)
    cost[0, 2] = float("nan")
    with pytest.warns(UserWarning, match="1 non-finite entries"):
        layer(torch.randn(8, 2, 3)).objective(cost)
    layer.step()
    assert float(estimator.baseline_value) == 0.0
    assert torch.isfinite(estimator.pending_cost).all()
    # later steps are clean: finite baseline and finite gradients
    for _ in range(3):
        scores = torch.randn(8, 2, 3, requires_grad=True)
        layer(scores).objective(torch.full((1, 8), 2.0)).sum().backward()
        layer.step()
        assert torch.isfinite(scores.grad).all()
    assert float(estimator.baseline_value) == pytest.approx(2.0 * (1 - 0.5**3))


def test_score_function_rejects_unknown_nonfinite_cost_option():
    with pytest.raises(ValueError, match="Reinforce: nonfinite_cost must be 'raise' or 'skip'"):
        Reinforce(nonfinite_cost="ignore")
    with pytest.raises(ValueError, match="LeaveOneOut: nonfinite_cost must be 'raise' or 'skip'"):
        LeaveOneOut(nonfinite_cost="ignore")


def test_reinforce_pending_costs_are_not_checkpointed():
    layer = DiscreteLatent(3, Softmax(), Reinforce(baseline="moving_average"))
    layer(torch.randn(8, 2, 3)).objective(torch.ones(1, 8))
    assert set(layer.state_dict()) == {"estimator.baseline_value"}
