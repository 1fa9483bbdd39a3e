import math

import pytest
import torch

from catlight.latent.structured import Permutation


def test_permutation_sorts_the_perturbations():
    structure = Permutation(3)
    trace = structure.trace(torch.tensor([0.3, 0.1, 0.2]))
    assert trace.selected.tolist() == [1, 2, 0]
    matrix = structure.encode(trace)
    assert (matrix @ torch.tensor([10.0, 20.0, 30.0])).tolist() == [20.0, 30.0, 10.0]
    assert matrix.sum(-1).tolist() == [1.0] * 3 and matrix.sum(-2).tolist() == [1.0] * 3


def test_permutation_plackett_luce_probability_by_hand():
    probs = [0.5, 0.3, 0.2]
    structure = Permutation(3)
    trace = structure.trace(torch.tensor([0.1, 0.2, 0.3]))  # the order 0, 1, 2
    expected = 0.5 * (0.3 / 0.5) * 1.0
    assert structure.log_prob(torch.tensor(probs).log(), trace).item() == pytest.approx(
        math.log(expected)
    )


def test_permutation_batched_encoding_is_a_permutation_matrix():
    structure = Permutation(6)
    matrix = structure.encode(structure.trace(torch.rand(4, 3, 6)))
    assert matrix.shape == (4, 3, 6, 6)
    assert (matrix.sum(-1) == 1).all() and (matrix.sum(-2) == 1).all()


def test_permutation_rejects_fewer_than_two_items():
    with pytest.raises(ValueError, match="Permutation: num_items must be an int >= 2, got 1"):
        Permutation(1)
