import math

import pytest
import torch

from catlight.latent.structured import BinaryTree


def reference_parents(weights, low, high, parent, parents):
    """Recursive split of ``weights[low:high]`` at its argmin: the parent of every item."""
    if low >= high:
        return
    root = min(range(low, high), key=lambda i: weights[i])
    parents[root] = parent
    reference_parents(weights, low, root, root, parents)
    reference_parents(weights, root + 1, high, root, parents)


def test_binary_tree_by_hand():
    # root 3 (0.1); its left span [0, 3) splits at 1 (0.2) into 0 and 2; its right span is 4
    structure = BinaryTree(5)
    trace = structure.trace(torch.tensor([0.5, 0.2, 0.9, 0.1, 0.7]))
    assert trace.selected.tolist() == [3, 1, 4, 0, 2]  # by depth, then position
    assert trace.active.int().tolist() == [
        [1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0],
        [0, 0, 0, 0, 1],
        [1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0],
    ]
    parents = structure.encode(trace)
    assert parents.argmax(-1).tolist() == [1, 3, 1, 0, 3]
    assert parents.sum(-1).tolist() == [1.0, 1.0, 1.0, 0.0, 1.0]  # item 3 is the root


def test_binary_tree_log_prob_by_hand():
    scores = torch.randn(5)
    structure = BinaryTree(5)
    trace = structure.trace(torch.tensor([0.5, 0.2, 0.9, 0.1, 0.7]))
    probs = scores.exp()
    expected = (
        math.log(probs[3] / probs.sum())
        + math.log(probs[1] / probs[:3].sum())
        + math.log(probs[0] / probs[0])
        + math.log(probs[2] / probs[2])
        + math.log(probs[4] / probs[4])
    )
    assert structure.log_prob(scores, trace).item() == pytest.approx(expected, rel=1e-5)


def test_binary_tree_matches_the_recursive_split():
    torch.manual_seed(0)
    structure = BinaryTree(8)
    weights = torch.rand(40, 8)
    encoded = structure.encode(structure.trace(weights))
    for index in range(40):
        parents = [-1] * 8
        reference_parents(weights[index].tolist(), 0, 8, -1, parents)
        has_parent = encoded[index].sum(-1).bool()
        found = torch.where(has_parent, encoded[index].argmax(-1), -1)
        assert found.tolist() == parents


def test_binary_tree_rejects_fewer_than_two_items():
    with pytest.raises(ValueError, match="BinaryTree: num_items must be an int >= 2, got 0"):
        BinaryTree(0)
