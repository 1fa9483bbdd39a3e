import math

import pytest
import torch

from catlight.latent.structured import Permutation, TopK
from tests.latent.structured.enumeration import all_traces, structure_probabilities


def test_top_k_takes_the_k_smallest_perturbations_in_order():
    structure = TopK(5, 2)
    trace = structure.trace(torch.tensor([0.3, 0.1, 0.5, 0.2, 0.4]))
    assert trace.selected.tolist() == [1, 3]
    assert trace.active.tolist() == [[True] * 5, [True, False, True, True, True]]
    assert structure.encode(trace).tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]


def test_top_k_subset_probability_by_hand():
    # P({0, 1}) = p0 p1 / (1 - p0) + p1 p0 / (1 - p1): the two orders of the pair
    probs = torch.tensor([0.5, 0.3, 0.2])
    subsets = structure_probabilities(TopK(3, 2), probs.log())
    expected = 0.5 * 0.3 / 0.5 + 0.3 * 0.5 / 0.7
    assert subsets[(1.0, 1.0, 0.0)] == pytest.approx(expected, rel=1e-5)


def test_top_k_with_k_equal_n_is_plackett_luce():
    scores = torch.randn(4)
    traces = all_traces(TopK(4, 4))
    assert torch.allclose(
        TopK(4, 4).log_prob(scores, traces), Permutation(4).log_prob(scores, traces)
    )


def test_top_k_one_is_the_categorical():
    scores = torch.randn(6)
    traces = all_traces(TopK(6, 1))
    order = traces.selected[:, 0].argsort()
    log_probs = TopK(6, 1).log_prob(scores, traces)[order]
    assert torch.allclose(log_probs, scores.log_softmax(-1), atol=1e-6)
    assert math.isclose(log_probs.exp().sum().item(), 1.0, abs_tol=1e-6)


@pytest.mark.parametrize("k", [0, 6, 2.5, True])
def test_top_k_rejects_k_out_of_range(k):
    with pytest.raises(ValueError, match=r"TopK: k must be an int in \[1, num_items = 5\]"):
        TopK(5, k)


def test_top_k_rejects_fewer_than_two_items():
    with pytest.raises(ValueError, match="TopK: num_items must be an int >= 2, got 1"):
        TopK(1, 1)


def test_top_k_rejects_scores_of_the_wrong_size():
    with pytest.raises(ValueError, match=r"TopK: scores must have shape \(\*batch, num_scores\)"):
        TopK(5, 2).check_scores(torch.zeros(3, 4))
