"""DisARMTree: antithetic pairs down catnat's tree, correct marginals, lower variance than LOO.

Its unbiasedness against enumeration is checked with every other unbiased estimator in
``test_unbiased.py`` (registry examples with n = 2 and n = 4).
"""

import pytest
import torch

from catlight.latent import Catnat, DisARMTree, DiscreteLatent, LeaveOneOut, Softmax

PARAMETERIZATIONS = {"softmax": Softmax, "catnat": Catnat}


def gradients(estimator, parameterization, scores, cost_vectors, replicates):
    """R estimates for the linear toy ``f(z) = sum_n z_n . c_n``. Shape ``(R, N * scores)``."""
    layer = DiscreteLatent(cost_vectors.shape[-1], parameterization, estimator)
    batch = scores.expand(replicates, *scores.shape).clone().requires_grad_()
    out = layer(batch)
    out.objective((out.z * cost_vectors).sum((-2, -1))).sum().backward()
    return batch.grad.reshape(replicates, -1)


def test_disarm_tree_pairs_are_antithetic_for_two_categories():
    # K = 2: one node, u and 1 - u. Both walks agree exactly when u falls where
    # u < a and 1 - u < a (or neither), with probability |2a - 1|.
    torch.manual_seed(0)
    right = torch.tensor([0.1, 0.35, 0.5, 0.8])
    log_probs = torch.stack([(1 - right).log(), right.log()], -1)  # [4, 2]
    rows = 50_000
    sample = DisARMTree(num_samples=2)(log_probs.expand(rows, 1, 4, 2).reshape(rows, 4, 2))
    agree = (sample.z[0] == sample.z[1]).all(-1).double().mean(0)  # [4]
    expected = (2 * right - 1).abs().double()
    assert torch.allclose(agree, expected, atol=0.01)


@pytest.mark.parametrize("param_name", list(PARAMETERIZATIONS))
@pytest.mark.parametrize("num_samples", [2, 4])
def test_disarm_tree_every_sample_has_the_right_marginal(param_name, num_samples):
    # K = 7 (not a power of two: the tree has leaves at two depths); each of the n
    # samples, coupled or not, must be distributed as q.
    torch.manual_seed(1)
    layer = DiscreteLatent(7, PARAMETERIZATIONS[param_name](), DisARMTree(num_samples))
    scores = torch.randn(1, 1, layer.num_scores)
    rows = 40_000
    out = layer(scores.expand(rows, 1, -1))
    probs = out.probs[0, 0].double()
    frequencies = out.z.double().mean(1)[:, 0]  # [n, K]
    standard_error = (probs * (1 - probs) / rows).sqrt()
    assert ((frequencies - probs).abs() / standard_error).max() < 5


@pytest.mark.parametrize("param_name", list(PARAMETERIZATIONS))
def test_disarm_tree_has_lower_variance_than_leave_one_out(param_name):
    # Two evaluations each, K = 3, one variable, three seeded (scores, costs) draws.
    # Measured ratios DisARMTree / LeaveOneOut: 0.43 (softmax) and 0.52 (catnat) on the
    # first draw; a ratio >= 0.8 on any draw fails (R = 20000: the ratio's relative
    # standard error is ~1-2 %).
    torch.manual_seed(2)
    parameterization = PARAMETERIZATIONS[param_name]()
    num_scores = parameterization.num_scores(3)
    for _ in range(3):
        scores = torch.randn(1, num_scores)
        cost_vectors = torch.randn(1, 3)
        tree = gradients(DisARMTree(2), parameterization, scores, cost_vectors, 20_000)
        loo = gradients(LeaveOneOut(2), parameterization, scores, cost_vectors, 20_000)
        assert tree.var(0).sum() < 0.8 * loo.var(0).sum()


@pytest.mark.parametrize("num_samples", [1, 3, 5])
def test_disarm_tree_needs_an_even_number_of_samples(num_samples):
    with pytest.raises(ValueError, match="num_samples"):
        DisARMTree(num_samples=num_samples)
