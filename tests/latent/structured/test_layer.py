import math

import pytest
import torch
from jsonargparse import ArgumentParser

from catlight.latent import LeaveOneOut
from catlight.latent.structured import (
    Arborescence,
    BinaryTree,
    MLPCritic,
    Permutation,
    Relax,
    SpanningTree,
    StructuredLatent,
    TopK,
    TraceReinforce,
)
from tests.latent.structured.enumeration import all_traces

# structure, shape of one sample's encoding
ENCODINGS = [
    (TopK(6, 3), (6,)),
    (Permutation(6), (6, 6)),
    (SpanningTree(4), (6,)),
    (BinaryTree(6), (6, 6)),
    (Arborescence(4), (12,)),
]


@pytest.mark.parametrize(("structure", "encoding"), ENCODINGS, ids=lambda x: type(x).__name__)
def test_layer_shapes(structure, encoding):
    layer = StructuredLatent(structure, TraceReinforce(num_samples=3))
    assert layer.num_scores == structure.num_scores
    scores = torch.randn(2, 5, layer.num_scores, requires_grad=True)
    out = layer(scores)
    assert out.num_samples == 3
    assert out.z.shape == (3, 2, 5, *encoding) and out.z.dtype == torch.float32
    assert out.exponentials.shape == (3, 2, 5, layer.num_scores)
    assert out.log_prob.shape == (3, 2, 5)
    assert torch.allclose(layer.log_prob(scores, out.trace), out.log_prob)
    out.objective(out.z.flatten(3).sum(-1)).sum().backward()
    assert torch.isfinite(scores.grad).all()


def test_layer_samples_in_float32_under_autocast():
    torch.manual_seed(0)
    network = torch.nn.Linear(4, 10)
    layer = StructuredLatent(SpanningTree(5), Relax(MLPCritic(10), num_samples=2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = network(torch.randn(8, 4))
        assert scores.dtype == torch.bfloat16
        out = layer(scores)
        cost = out.z.to(torch.bfloat16).sum(-1) * network(torch.randn(1, 4))[0, 0]
        objective = out.objective(cost)
    assert out.exponentials.dtype == out.log_prob.dtype == objective.dtype == torch.float32
    objective.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in network.parameters())
    assert layer.estimator.critic.output.weight.grad is not None


def test_layer_is_configurable_like_discrete_latent():
    # short class names, as in the configs: the subclasses are found once imported
    parser = ArgumentParser()
    parser.add_argument("--latent", type=StructuredLatent)
    config = parser.parse_object(
        {
            "latent": {
                "class_path": "StructuredLatent",
                "init_args": {
                    "structure": {
                        "class_path": "TopK",
                        "init_args": {"num_items": 7, "k": 2},
                    },
                    "estimator": {
                        "class_path": "Relax",
                        "init_args": {
                            "critic": {
                                "class_path": "MLPCritic",
                                "init_args": {"num_inputs": 7},
                            },
                            "num_samples": 2,
                        },
                    },
                },
            }
        }
    )
    layer = parser.instantiate(config).latent
    assert isinstance(layer.structure, TopK) and layer.structure.k == 2
    assert isinstance(layer.estimator, Relax) and layer.estimator.num_samples == 2


def test_layer_rejects_a_categorical_estimator():
    with pytest.raises(ValueError, match="estimator must be a structured estimator"):
        StructuredLatent(TopK(4, 2), LeaveOneOut(2))


def test_layer_rejects_a_non_structure():
    with pytest.raises(ValueError, match="structure must be a catlight Structure"):
        StructuredLatent(TraceReinforce(), TraceReinforce())


def test_layer_rejects_scores_of_the_wrong_size():
    layer = StructuredLatent(SpanningTree(5), TraceReinforce())
    with pytest.raises(
        ValueError, match=r"SpanningTree: scores must have shape .* num_scores = 10"
    ):
        layer(torch.randn(3, 9))


def test_objective_rejects_a_cost_of_the_wrong_shape():
    out = StructuredLatent(Permutation(4), TraceReinforce(num_samples=2))(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"cost must have shape \(S, \*batch\) = \(2, 3\)"):
        out.objective(torch.zeros(2, 3, 4))


def test_layer_rejects_a_critic_of_the_wrong_size():
    with pytest.raises(ValueError, match=r"MLPCritic\(num_inputs=6\)"):
        StructuredLatent(SpanningTree(num_nodes=4), Relax(MLPCritic(num_inputs=5)))


def batch_of_scores(layer, seed=0):
    return torch.randn(3, layer.num_scores, generator=torch.Generator().manual_seed(seed))


def test_mode_of_top_k_is_the_k_highest_scores_and_the_most_probable_trace():
    layer = StructuredLatent(TopK(5, 2), TraceReinforce())
    scores = batch_of_scores(layer)
    mode = layer.mode(scores)
    top = torch.zeros_like(scores).scatter_(-1, scores.topk(2, -1).indices, 1.0)
    assert torch.equal(mode, top)
    traces = all_traces(layer.structure)  # (U, ...) over every ordered pair
    log_probs = torch.stack([layer.log_prob(row, traces) for row in scores])
    best = layer.structure.encode(traces)[log_probs.argmax(-1)]
    assert torch.equal(mode, best)


def test_mode_of_permutation_is_the_most_probable_permutation():
    layer = StructuredLatent(Permutation(4), TraceReinforce())
    scores = batch_of_scores(layer)
    traces = all_traces(layer.structure)
    log_probs = torch.stack([layer.log_prob(row, traces) for row in scores])  # (3, 24)
    best = layer.structure.encode(traces)[log_probs.argmax(-1)]
    assert torch.equal(layer.mode(scores), best)
    order = layer.mode(scores).argmax(-1)  # the item at each position
    assert torch.equal(order, scores.argsort(-1, descending=True))


def test_mode_of_spanning_tree_is_the_maximum_spanning_tree():
    layer = StructuredLatent(SpanningTree(4), TraceReinforce())
    scores = batch_of_scores(layer)
    trees = layer.structure.encode(all_traces(layer.structure))  # (96, 6) edge masks
    weights = scores @ trees.T  # (3, 96): total score of each tree
    best = trees[weights.argmax(-1)]
    assert torch.equal(layer.mode(scores), best)
    assert (layer.mode(scores) * scores).sum(-1).allclose(weights.amax(-1))


def test_mode_of_binary_tree_is_the_heap_of_the_scores():
    layer = StructuredLatent(BinaryTree(4), TraceReinforce())
    scores = batch_of_scores(layer)
    parents = layer.structure.encode(all_traces(layer.structure))  # (14, n, n)
    has_parent = parents.sum(-1).bool()  # (14, n)
    parent_scores = (parents * scores[:, None, None, :]).sum(-1)  # (3, 14, n)
    heap = ((parent_scores > scores[:, None, :]) | ~has_parent).all(-1)  # (3, 14)
    assert torch.equal(heap.sum(-1), torch.ones(3, dtype=torch.long))  # one heap each
    assert torch.equal(layer.mode(scores), parents[heap.float().argmax(-1)])


def test_mode_rejects_scores_of_the_wrong_size():
    layer = StructuredLatent(TopK(4, 2), TraceReinforce())
    with pytest.raises(ValueError, match=r"TopK: scores must have shape .* num_scores = 4"):
        layer.mode(torch.randn(3, 5))


def test_sample_draws_like_forward_without_an_objective():
    layer = StructuredLatent(SpanningTree(4), TraceReinforce(num_samples=2))
    scores = batch_of_scores(layer)
    torch.manual_seed(0)
    trained = layer(scores)
    torch.manual_seed(0)
    drawn = layer.sample(scores, 2)
    assert torch.equal(drawn.z, trained.z) and torch.equal(drawn.kl(), trained.kl())
    assert layer.sample(scores, 7).z.shape == (7, 3, 6)
    with pytest.raises(
        ValueError, match=r"drawn by StructuredLatent\.sample, without an estimator"
    ):
        drawn.objective(torch.zeros(2, 3))


def test_sample_rejects_a_bad_number_of_samples():
    layer = StructuredLatent(TopK(4, 2), TraceReinforce())
    with pytest.raises(
        ValueError, match=r"StructuredLatent\.sample: num_samples must be an int >= 1, got 0"
    ):
        layer.sample(torch.randn(4), 0)


def test_sample_kl_is_log_num_traces_minus_the_step_entropies():
    layer = StructuredLatent(Permutation(3), TraceReinforce())
    out = layer(torch.zeros(2, 3))
    assert out.kl().shape == (2, 2)
    # equal scores: step t is uniform over 3 - t items, the KL to uniform is 0
    assert torch.allclose(out.kl(), torch.zeros(2, 2), atol=1e-6)
    assert layer.structure.log_num_traces == pytest.approx(math.log(6))
