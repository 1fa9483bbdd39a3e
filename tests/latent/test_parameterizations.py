"""Softmax and Catnat: normalisation, tree layout, Fisher information, numerics."""

import math
import pickle
import shutil

import pytest
import torch
from torch.autograd.functional import jacobian

from catlight.latent import Catnat, Parameterization, Softmax
from catlight.latent.binary_tree import BalancedTree

ACTIVATIONS = ["natural", "sigmoid"]


def branch_right(activation, scores, center=0.0, width=2 * math.pi):
    """Probability ``a`` of going right, from the REFERENCE formulas (float64)."""
    scores = scores.double()
    if activation == "sigmoid":
        return torch.sigmoid(scores)
    phase = (math.pi * (scores - center) / width).clamp(-math.pi / 2, math.pi / 2)
    return (1 + torch.sin(phase)) / 2


def right_shares(num_categories):
    """Per node, the share of its leaves on its right, read off the Jacobian's signs.

    Raising ``s_i`` raises the leaves below its right edge and lowers those below its
    left edge; leaves elsewhere do not depend on it.
    """
    jac = jacobian(Catnat("sigmoid", uniform_start=False), torch.zeros(num_categories - 1))
    on_right = (jac > 0).sum(0).double()
    return on_right / (on_right + (jac < 0).sum(0))


def uniform_offsets(activation, num_categories, width=2 * math.pi):
    """The score shifts that make zero scores uniform: act(offset) = right share.

    For the natural activation the shift is from its center.
    """
    share = right_shares(num_categories)
    if activation == "sigmoid":
        return torch.log(share / (1 - share))
    return width / math.pi * torch.asin(2 * share - 1)


def fisher(parameterization, scores):
    """``F = sum_k p_k grad log p_k grad log p_k^T`` in the scores, by autograd."""
    jac = jacobian(parameterization, scores).double()  # [K, M]
    probs = parameterization(scores).exp().double()
    return jac.T @ (probs[:, None] * jac)


def reach_probabilities_heap(right):
    """P(reach node i) in a perfect tree numbered breadth first (children 2i+1, 2i+2)."""
    reach = [torch.ones((), dtype=right.dtype)]
    for node in range(1, right.shape[-1]):
        parent = (node - 1) // 2
        went_right = node == 2 * parent + 2
        branch = right[parent] if went_right else 1 - right[parent]
        reach.append(reach[parent] * branch)
    return torch.stack(reach)


# --- both parameterizations --------------------------------------------------------


@pytest.mark.parametrize("shape", [(7,), (4, 7), (2, 3, 7)])
def test_softmax_matches_log_softmax(shape):
    torch.manual_seed(0)
    scores = torch.randn(shape) * 3
    torch.testing.assert_close(Softmax()(scores), torch.log_softmax(scores, -1))


@pytest.mark.parametrize("num_categories", [2, 3, 10, 100])
def test_parameterization_num_scores(num_categories):
    assert Softmax().num_scores(num_categories) == num_categories
    assert Softmax().num_categories(num_categories) == num_categories
    assert Catnat().num_scores(num_categories) == num_categories - 1
    assert Catnat().num_categories(num_categories - 1) == num_categories


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize(
    "parameterization", [Softmax(), Catnat(), Catnat("sigmoid")], ids=["softmax", "nu", "sig"]
)
def test_parameterization_output_is_float32(parameterization, dtype):
    assert isinstance(parameterization, Parameterization)
    scores = torch.randn(3, 5).to(dtype)
    log_probs = parameterization(scores)
    assert log_probs.dtype == torch.float32
    torch.testing.assert_close(log_probs.logsumexp(-1), torch.zeros(3), atol=1e-5, rtol=0)


# --- catnat: the tree --------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("num_categories", [2, 3, 5, 7, 8, 16, 100])
def test_catnat_probabilities_sum_to_one(activation, num_categories):
    torch.manual_seed(num_categories)
    scores = torch.randn(64, num_categories - 1) * 2
    log_probs = Catnat(activation)(scores)
    assert log_probs.shape == (64, num_categories)
    assert torch.isfinite(log_probs).all() and (log_probs <= 0).all()
    torch.testing.assert_close(log_probs.logsumexp(-1), torch.zeros(64), atol=1e-5, rtol=0)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("num_categories", range(2, 101))
def test_catnat_zero_scores_give_uniform_probabilities(activation, num_categories):
    probs = Catnat(activation)(torch.zeros(num_categories - 1)).exp()
    torch.testing.assert_close(probs, torch.full((num_categories,), 1 / num_categories))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("num_categories", [3, 5, 6, 7, 12, 100])
def test_catnat_offsets_split_in_proportion_to_the_leaves(activation, num_categories):
    # at zero scores (at the center for the natural activation) each node goes right
    # with the share of its leaves on the right
    catnat = Catnat(activation, center=0.5, width=3.0)
    at_center = torch.full((num_categories - 1,), 0.5 if activation == "natural" else 0.0)
    _, log_right = catnat.branch_log_probs(at_center)
    shares = right_shares(num_categories)
    assert ((shares >= 1 / 3) & (shares <= 2 / 3)).all()
    torch.testing.assert_close(BalancedTree(num_categories).right_fractions, shares)
    torch.testing.assert_close(log_right.exp().double(), shares, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("num_categories", [2, 4, 8, 16, 64])
def test_catnat_offsets_vanish_for_powers_of_two(activation, num_categories):
    # a power of two: the same map with or without the offsets, bit for bit
    torch.manual_seed(num_categories)
    scores = torch.randn(32, num_categories - 1) * 3
    with_offsets = Catnat(activation, center=0.3)(scores)
    without = Catnat(activation, center=0.3, uniform_start=False)(scores)
    assert torch.equal(with_offsets, without)
    assert Catnat(activation)._tree(num_categories, torch.device("cpu"))[1] is None


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("num_categories", [3, 5, 12])
def test_catnat_offsets_shift_every_score(activation, num_categories):
    # with offsets, the map at s is the map without them at s + offset
    torch.manual_seed(0)
    scores = torch.rand(16, num_categories - 1) * 4 - 2
    shifted = scores + uniform_offsets(activation, num_categories, width=5.0).float()
    torch.testing.assert_close(
        Catnat(activation, center=0.3, width=5.0)(scores),
        Catnat(activation, center=0.3, width=5.0, uniform_start=False)(shifted),
        atol=1e-5,
        rtol=1e-5,
    )


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("num_categories", [*range(2, 18), 31, 33, 100])
def test_catnat_without_offsets_zero_scores_give_a_balanced_tree(activation, num_categories):
    # a = 1/2 everywhere: p_k = 2^-depth(k), depths are floor/ceil(log2 K)
    catnat = Catnat(activation, uniform_start=False)
    probs = catnat(torch.zeros(num_categories - 1)).exp().double()
    deep = math.ceil(math.log2(num_categories))
    num_deep = 2 * num_categories - 2**deep  # leaves at depth ceil(log2 K)
    num_shallow = 2**deep - num_categories  # leaves at depth ceil(log2 K) - 1
    is_deep = torch.isclose(probs, torch.tensor(2.0**-deep, dtype=torch.float64))
    is_shallow = torch.isclose(probs, torch.tensor(2.0 ** -(deep - 1), dtype=torch.float64))
    assert (is_deep | is_shallow).all(), probs
    assert int(is_deep.sum()) == num_deep
    assert int(is_shallow.sum()) == num_shallow


def test_catnat_natural_center_gives_a_half():
    probs = Catnat(center=1.5, width=3.0)(torch.full((3,), 1.5)).exp()
    torch.testing.assert_close(probs, torch.full((4,), 0.25))


def test_catnat_pickled_before_the_offsets_keeps_its_map():
    # a Catnat pickled without ``uniform_start`` (and with a cached tree) loads without offsets
    catnat = Catnat()
    catnat(torch.zeros(2))
    state = catnat.__getstate__()
    del state["uniform_start"]
    old = Catnat.__new__(Catnat)
    old.__setstate__(state)
    assert not old.uniform_start
    torch.testing.assert_close(old(torch.zeros(2)).exp(), torch.tensor([0.25, 0.25, 0.5]))
    restored = pickle.loads(pickle.dumps(catnat))
    assert restored.uniform_start
    torch.testing.assert_close(restored(torch.zeros(2)).exp(), torch.full((3,), 1 / 3))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_catnat_k8_leaves_follow_heap_order(activation):
    # K = 8: a perfect tree; node i has children 2i+1 (left) and 2i+2 (right);
    # leaf k is reached by the bits of k, most significant first (1 = right)
    torch.manual_seed(0)
    scores = torch.randn(7) * 1.5
    right = branch_right(activation, scores)
    expected = []
    for leaf in range(8):
        node, prob = 0, torch.ones((), dtype=torch.float64)
        for bit in (leaf >> 2 & 1, leaf >> 1 & 1, leaf & 1):
            prob = prob * (right[node] if bit else 1 - right[node])
            node = 2 * node + 1 + bit
        expected.append(prob)
    probs = Catnat(activation)(scores).exp().double()
    torch.testing.assert_close(probs, torch.stack(expected), atol=1e-6, rtol=1e-5)


def test_catnat_k2_is_a_single_branch():
    scores = torch.tensor([[0.7], [-2.0]])
    right = branch_right("sigmoid", scores[:, 0]).float()
    torch.testing.assert_close(Catnat("sigmoid")(scores).exp(), torch.stack([1 - right, right], -1))


# --- catnat: the natural activation ------------------------------------------------


@pytest.mark.parametrize(("center", "width"), [(0.0, 2 * math.pi), (0.7, 5.0), (-1.3, 3.0)])
def test_catnat_natural_k2_matches_the_general_kernel(center, width):
    # K = 2 skips the tree and the autograd function; values and gradients are the same,
    # saturated (zero gradient) outside the support included
    catnat = Catnat("natural", center=center, width=width)
    scores = (center + width * torch.linspace(-0.7, 0.7, 2001)[:, None]).requires_grad_()
    log_probs = catnat(scores)
    expected = torch.cat(catnat.branch_log_probs(scores), -1)
    torch.testing.assert_close(log_probs, expected, atol=2e-4, rtol=1e-5)
    inside = (expected.exp() > 1.1e-6).all(-1)  # away from the clamp at 1e-6
    torch.testing.assert_close(log_probs[inside], expected[inside], atol=1e-5, rtol=1e-5)
    grad_out = torch.randn_like(log_probs)
    (grad,) = torch.autograd.grad(log_probs, scores, grad_out)
    (expected_grad,) = torch.autograd.grad(expected, scores, grad_out)
    torch.testing.assert_close(grad[inside], expected_grad[inside], rtol=1e-3, atol=1e-4)
    clamped = expected.amin(-1) < math.log(1e-6) + 1e-4
    assert clamped.any() and (grad[clamped] == 0).all() and (expected_grad[clamped] == 0).all()


def test_catnat_natural_k2_is_accurate_near_the_clamp():
    # each branch's angle comes from the score, so a branch near 1e-6 keeps its accuracy
    scores = torch.linspace(-3.2, 3.2, 200_001)[:, None]
    phase = (scores.double() * 0.5).clamp(-math.pi / 2, math.pi / 2)
    right = ((1 + torch.sin(phase)) / 2).clamp(1e-6, 1 - 1e-6)
    expected = torch.cat([torch.log1p(-right), torch.log(right)], -1)
    assert (Catnat()(scores).double() - expected).abs().max() < 1e-4


@pytest.mark.parametrize(("center", "width"), [(0.0, 2 * math.pi), (1.5, 1.0), (-3.0, 10.0)])
def test_catnat_natural_matches_closed_form(center, width):
    catnat = Catnat("natural", center=center, width=width)
    scores = center + width * torch.linspace(-0.49, 0.49, 99)[:, None]  # K = 2: no offset
    log_left, log_right = catnat.branch_log_probs(scores)
    expected = (1 + torch.sin(math.pi * (scores.double() - center) / width)) / 2
    torch.testing.assert_close(log_right.exp().double(), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(log_left.exp().double(), 1 - expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("center", "width"), [(0.0, 2 * math.pi), (1.5, 1.0), (-3.0, 10.0)])
def test_catnat_natural_saturates_outside_support(center, width):
    catnat = Catnat("natural", center=center, width=width)
    offsets = width * (0.5 + torch.tensor([1e-3, 0.1, 1.0, 1e3]))
    for side, scores in [("low", center - offsets), ("high", center + offsets)]:
        log_left, log_right = catnat.branch_log_probs(scores[:, None])
        assert torch.isfinite(log_left).all() and torch.isfinite(log_right).all()
        right = log_right.exp()
        if side == "low":
            assert (right <= 1e-5).all()
        else:
            assert (right >= 1 - 1e-5).all()


def test_catnat_natural_default_slope_matches_sigmoid_at_center():
    score = torch.zeros(1, requires_grad=True)
    (slope,) = torch.autograd.grad(Catnat().branch_log_probs(score)[1].exp().sum(), score)
    torch.testing.assert_close(slope, torch.tensor([0.25]))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("num_categories", [2, 5, 8, 33])
def test_catnat_gradients_finite_at_extreme_scores(activation, num_categories):
    torch.manual_seed(0)
    signs = torch.randint(0, 2, (16, num_categories - 1)).float() * 2 - 1
    scores = (1e4 * signs).requires_grad_()
    log_probs = Catnat(activation)(scores)
    assert torch.isfinite(log_probs).all()
    torch.testing.assert_close(log_probs.logsumexp(-1), torch.zeros(16), atol=1e-5, rtol=0)
    (log_probs * torch.randn_like(log_probs)).sum().backward()
    assert torch.isfinite(scores.grad).all()


# --- Fisher information ------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("num_categories", [3, 5, 8])
def test_catnat_fisher_is_diagonal(activation, num_categories):
    torch.manual_seed(num_categories)
    scores = torch.randn(num_categories - 1)
    info = fisher(Catnat(activation), scores)
    off_diagonal = info - torch.diag(info.diagonal())
    assert (info.diagonal() > 0).all()
    assert off_diagonal.abs().max() < 1e-6 * info.diagonal().max()


@pytest.mark.parametrize("num_categories", [3, 5, 8])
def test_softmax_fisher_is_dense(num_categories):
    torch.manual_seed(num_categories)
    scores = torch.randn(num_categories)
    info = fisher(Softmax(), scores)
    probs = torch.softmax(scores.double(), -1)
    torch.testing.assert_close(info, torch.diag(probs) - probs[:, None] * probs[None, :])
    off_diagonal = info - torch.diag(info.diagonal())
    assert off_diagonal.abs().max() > 1e-2 * info.diagonal().max()


@pytest.mark.parametrize(("activation", "width"), [("natural", 2 * math.pi), ("natural", 5.0)])
def test_catnat_fisher_diagonal_natural_k8(activation, width):
    # G_ii = P(reach i) (pi / width)^2
    torch.manual_seed(1)
    scores = torch.rand(7) * width * 0.8 - 0.4 * width  # inside the support
    catnat = Catnat(activation, width=width)
    right = branch_right(activation, scores, width=width)
    expected = reach_probabilities_heap(right) * (math.pi / width) ** 2
    torch.testing.assert_close(fisher(catnat, scores).diagonal(), expected, rtol=1e-4, atol=1e-7)


def test_catnat_fisher_diagonal_sigmoid_k8():
    # G_ii = P(reach i) a_i (1 - a_i)
    torch.manual_seed(2)
    scores = torch.randn(7) * 1.5
    right = branch_right("sigmoid", scores)
    expected = reach_probabilities_heap(right) * right * (1 - right)
    torch.testing.assert_close(
        fisher(Catnat("sigmoid"), scores).diagonal(), expected, rtol=1e-4, atol=1e-7
    )


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("num_categories", [3, 5, 6, 7, 12])
def test_catnat_fisher_diagonal_any_k(activation, num_categories):
    # For any K: P(reach i) is the mass of the leaves below node i, i.e. of the leaves
    # whose log-probability depends on s_i (read off the Jacobian's sparsity).
    # The offsets shift each score by a constant, so G_ii keeps its form at s + o.
    torch.manual_seed(num_categories)
    scores = torch.rand(num_categories - 1) * 4 - 2  # s + o inside the natural support
    catnat = Catnat(activation)
    jac = jacobian(catnat, scores).double()  # [K, K-1]
    probs = catnat(scores).exp().double()
    below = jac.abs() > 0
    reach = (probs[:, None] * below).sum(0)
    right = branch_right(activation, scores + uniform_offsets(activation, num_categories))
    per_node = right * (1 - right) if activation == "sigmoid" else torch.full_like(right, 0.25)
    torch.testing.assert_close(
        fisher(catnat, scores).diagonal(), reach * per_node, rtol=1e-4, atol=1e-7
    )
    # a full binary tree: the root is above every leaf, each leaf has depth >= 1
    assert below[:, 0].all()
    assert (below.sum(1) >= 1).all()


# --- errors ------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "Sigmoid", "", None])
def test_catnat_rejects_bad_activation(activation):
    with pytest.raises(ValueError, match="activation"):
        Catnat(activation)


@pytest.mark.parametrize("width", [0.0, -1.0, float("nan")])
def test_catnat_rejects_bad_width(width):
    with pytest.raises(ValueError, match="width"):
        Catnat(width=width)


def test_catnat_rejects_a_single_category():
    with pytest.raises(ValueError, match="num_categories"):
        Catnat()(torch.zeros(4, 0))


@pytest.mark.parametrize("activation", ["natural", "sigmoid"])
@pytest.mark.parametrize("num_categories", [2, 3, 5, 8, 11, 64, 100])
def test_catnat_closed_form_backward_matches_autograd(activation, num_categories):
    # the custom backward against plain autograd through the same forward ops
    torch.manual_seed(num_categories)
    catnat = Catnat(activation, center=0.3, width=5.0)
    scores = (4 * torch.randn(6, 2, num_categories - 1)).requires_grad_(True)
    upstream = torch.randn(6, 2, num_categories)
    (grad,) = torch.autograd.grad((catnat(scores) * upstream).sum(), scores)

    tree = BalancedTree(num_categories)
    reference = tree.leaf_log_probs(torch.stack(catnat.branch_log_probs(scores), dim=-1))
    (expected,) = torch.autograd.grad((reference * upstream).sum(), scores)
    torch.testing.assert_close(catnat(scores), reference)
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile on CPU needs a C++ compiler")
@pytest.mark.parametrize("activation", ["natural", "sigmoid"])
def test_catnat_compiled_matches_eager(activation):
    # one non-power-of-two K: the compiled passes include the last level's gathers
    torch.manual_seed(0)
    eager, compiled = Catnat(activation), Catnat(activation, compile=True)
    scores = (3 * torch.randn(4, 5, 10)).requires_grad_(True)
    upstream = torch.randn(4, 5, 11)
    (expected,) = torch.autograd.grad((eager(scores) * upstream).sum(), scores)
    (grad,) = torch.autograd.grad((compiled(scores) * upstream).sum(), scores)
    torch.testing.assert_close(compiled(scores), eager(scores))
    torch.testing.assert_close(grad, expected)
    with torch.no_grad():
        torch.testing.assert_close(compiled(scores), eager(scores))
