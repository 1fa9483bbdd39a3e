import pytest
import torch
from jsonargparse import ArgumentParser

from catlight.latent import LeaveOneOut
from catlight.latent.structured import (
    BinaryTree,
    MLPCritic,
    Permutation,
    Relax,
    SpanningTree,
    StructuredLatent,
    TopK,
    TraceReinforce,
)

# structure, shape of one sample's encoding
ENCODINGS = [
    (TopK(6, 3), (6,)),
    (Permutation(6), (6, 6)),
    (SpanningTree(4), (6,)),
    (BinaryTree(6), (6, 6)),
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
