"""NRI with a spanning-tree edge latent: pair mapping, ELBO by enumeration, metrics, configs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from catlight.latent import DiscreteLatent, GumbelSoftmax, Softmax
from catlight.latent.structured import (
    MLPCritic,
    Permutation,
    Relax,
    SpanningTree,
    StructuredLatent,
    TraceReinforce,
    trace_kl_to_uniform,
)
from catlight.tasks.nri import NRI
from catlight.tasks.nri.edge_latents import IndependentEdges, SpanningTreeEdges
from catlight.tasks.nri.graph import fully_connected_edge_index
from tests.latent.structured.enumeration import all_traces
from tests.tasks.nri.tree_helpers import fit_on_tiny_data, replicated_gradients

REPO = Path(__file__).resolve().parents[3]
TREE_CONFIGS = sorted((REPO / "configs" / "nri" / "tree").glob("*.yaml"))
NUM_DIMS, HIDDEN = 4, 8


def tree_edges(num_nodes: int, num_samples: int = 2) -> SpanningTreeEdges:
    return SpanningTreeEdges(
        StructuredLatent(SpanningTree(num_nodes), TraceReinforce(num_samples=num_samples))
    )


def tiny_tree_nri(num_particles: int = 4) -> NRI:
    return NRI(
        StructuredLatent(SpanningTree(num_particles), TraceReinforce(num_samples=2)),
        num_timesteps=4,
        encoder_hidden_size=HIDDEN,
        decoder_hidden_size=HIDDEN,
        skip_first=True,
        prediction_steps=2,
        test_horizons=[1, 2],
    )


def test_tree_mask_maps_to_both_directions_of_each_tree_edge_by_hand():
    # 3 particles: ordered pairs (0,1) (0,2) (1,0) (1,2) (2,0) (2,1); undirected (0,1) (0,2) (1,2)
    adapter = tree_edges(3)
    types = adapter.edge_types(torch.tensor([1.0, 0.0, 1.0]))  # the path 0 - 1 - 2
    assert types[:, 1].tolist() == [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    assert types.sum(-1).tolist() == [1.0] * 6  # one-hot (1 - a, a)


def test_edge_types_equal_the_adjacency_read_at_the_ordered_pairs():
    adapter = tree_edges(5)
    masks = (torch.rand(7, 3, 10) < 0.5).float()
    senders, receivers = fully_connected_edge_index(5)
    adjacency = adapter.structure.adjacency(masks)[..., senders, receivers]
    torch.testing.assert_close(adapter.edge_types(masks)[..., 1], adjacency)


def test_tree_scores_are_the_mean_of_both_directions_by_hand():
    adapter = tree_edges(3)
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).view(1, 6, 1)
    # (0,1): (s01 + s10) / 2 = (1 + 3) / 2; (0,2): (2 + 5) / 2; (1,2): (4 + 6) / 2
    assert adapter.tree_scores(scores).tolist() == [[2.0, 3.5, 5.0]]


def test_sampled_graphs_are_symmetric_spanning_trees_whatever_the_direction_of_scores():
    torch.manual_seed(0)
    adapter = tree_edges(5, num_samples=3)
    senders, receivers = fully_connected_edge_index(5)
    scores = torch.randn(4, 20, 1)
    reversed_scores = torch.zeros_like(scores)
    pair_index = torch.zeros(5, 5, dtype=torch.long)
    pair_index[senders, receivers] = torch.arange(20)
    reversed_scores[:, pair_index[receivers, senders]] = scores  # s'_(i,j) = s_(j,i)
    torch.testing.assert_close(adapter.tree_scores(reversed_scores), adapter.tree_scores(scores))

    z = adapter(scores).z
    assert z.shape == (3, 4, 20, 2)
    adjacency = torch.zeros(3, 4, 5, 5)
    adjacency[..., senders, receivers] = z[..., 1]
    assert torch.equal(adjacency, adjacency.transpose(-1, -2))
    assert (adjacency.sum((-2, -1)) == 2 * 4).all()  # N - 1 edges, both directions
    assert (torch.linalg.matrix_power(adjacency + torch.eye(5), 4) > 0).all()  # connected


def test_trace_kl_is_zero_for_equal_scores_of_three_nodes():
    # 3 nodes, equal scores: 3 choices, then 2 (both remaining edges join the third
    # node): every one of the 3 * 2 = 6 traces has probability 1/6, the uniform prior
    structure = SpanningTree(3)
    traces = all_traces(structure)
    adapter = tree_edges(3)
    assert math.exp(adapter.log_num_traces) == pytest.approx(traces.selected.shape[0])
    kl = trace_kl_to_uniform(torch.zeros(3), traces, adapter.log_num_traces)
    torch.testing.assert_close(kl, torch.zeros(6))


def test_trace_kl_estimate_has_the_exact_kl_as_expectation():
    """Exact expectation over the 96 traces of K4 (4^2 trees x 3! orders)."""
    structure = SpanningTree(4)
    traces = all_traces(structure)
    log_num_traces = tree_edges(4).log_num_traces
    assert traces.selected.shape[0] == round(math.exp(log_num_traces)) == 96
    theta = torch.tensor([1.5, -0.5, 0.3, 0.0, -1.2, 0.8])
    log_q = structure.log_prob(theta, traces)
    exact_kl = (log_q.exp() * log_q).sum() + log_num_traces
    estimates = trace_kl_to_uniform(theta, traces, log_num_traces)
    torch.testing.assert_close((log_q.exp() * estimates).sum(), exact_kl)
    assert exact_kl > 0


@pytest.mark.parametrize(
    "estimator",
    [TraceReinforce(num_samples=4), Relax(MLPCritic(6), num_samples=2)],
    ids=["t_reinforce_loo", "relax"],
)
def test_negative_elbo_gradient_is_unbiased_by_enumeration(estimator):
    """Mean of R = 20000 estimates vs the enumerated gradient; 4 standard errors."""
    torch.manual_seed(0)
    adapter = SpanningTreeEdges(StructuredLatent(SpanningTree(4), estimator))
    weights = torch.linspace(-1.0, 2.0, 12)  # a cost per ordered pair in the graph
    kl_weight = 0.5
    scores = torch.tensor([0.3, -0.7, 1.1, 0.2, -0.4, 0.9, 0.0, -1.3, 0.6, 0.5, -0.2, 0.8])

    mean, error = replicated_gradients(adapter, scores, weights, kl_weight)

    exact_scores = scores.clone().requires_grad_()
    theta = adapter.tree_scores(exact_scores.view(1, 12, 1))[0]
    traces = all_traces(adapter.structure)
    log_q = adapter.structure.log_prob(theta, traces)
    costs = adapter.edge_types(adapter.structure.encode(traces))[..., 1] @ weights
    negative_elbo = (log_q.exp() * costs).sum() + kl_weight * (
        (log_q.exp() * log_q).sum() + adapter.log_num_traces
    )
    (exact,) = torch.autograd.grad(negative_elbo, exact_scores)
    assert ((mean - exact).abs() <= 4 * error + 1e-4).all(), (mean, exact, error)


def test_posterior_mode_is_the_maximum_spanning_tree_and_marginals_are_tree_frequencies():
    torch.manual_seed(0)
    adapter = tree_edges(4)
    # tree scores of (0,1) (0,2) (0,3) (1,2) (1,3) (2,3); the best tree is 0-1, 0-2, 2-3
    theta = torch.tensor([9.0, 8.0, -9.0, 7.0, -8.0, 6.0])
    scores = theta[adapter.undirected_edges].view(1, 12, 1)
    posterior = adapter.posterior(scores)
    best_tree = adapter.edge_types(torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 1.0]))
    torch.testing.assert_close(posterior.mode[0], best_tree)
    probs = posterior.log_probs.exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(1, 12))
    assert probs[0, :, 1].sum().item() == pytest.approx(2 * 3)  # N - 1 edges, both ways
    assert posterior.kl.shape == (1,)


def test_nri_with_a_tree_latent_trains_the_encoder_through_the_estimator():
    torch.manual_seed(0)
    model = tiny_tree_nri()
    assert isinstance(model.edge_latent, SpanningTreeEdges)
    assert isinstance(model.latent, StructuredLatent)
    x = torch.randn(3, 4, 4, NUM_DIMS)
    loss, kl = model.loss(x)
    assert loss.shape == kl.shape == (3,)
    loss.mean().backward()
    # the scores reach the loss only through the sampled trees' log-probabilities
    assert model.encoder.refinement.output.weight.grad.abs().sum() > 0
    assert model.decoder.output[-1].weight.grad.abs().sum() > 0


def test_edge_accuracy_of_a_tree_latent_counts_both_directions():
    torch.manual_seed(0)
    model = tiny_tree_nri().eval()
    model.log = lambda *args, **kwargs: None
    x = torch.randn(2, 4, 4, NUM_DIMS)
    with torch.no_grad():
        _, mode = model.most_probable_edges(x)
        predicted = mode[0].argmax(-1)
        model.validation_step((x, predicted), 0)
        assert model.val_accuracy.compute_identity().item() == 1.0
        model.val_accuracy.reset()
        star = model.edge_latent.edge_types(torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]))
        star_types = star[:, 1].long().expand(2, -1)  # the star around particle 0
        model.validation_step((x, star_types), 0)
    expected = (predicted == star_types).double().mean().item()
    assert model.val_accuracy.compute_identity().item() == pytest.approx(expected)


def test_tree_latent_rejects_a_sparse_prior_another_structure_and_a_wrong_size():
    latent = StructuredLatent(SpanningTree(4), TraceReinforce())
    with pytest.raises(ValueError, match="prior must be 'uniform' with a StructuredLatent"):
        NRI(latent, prior="sparse")
    with pytest.raises(ValueError, match="needs structure SpanningTree"):
        NRI(StructuredLatent(Permutation(4), TraceReinforce()))
    model = tiny_tree_nri(num_particles=4)
    with pytest.raises(ValueError, match=r"\(B, 20, 1\) for SpanningTree\(num_nodes=5\)"):
        tree_edges(5)(torch.zeros(2, 12, 1))
    with pytest.raises(ValueError, match="num_nodes must be the number of particles"):
        model.loss(torch.randn(2, 3, 4, NUM_DIMS))


def test_independent_latent_is_adapted_with_its_prior():
    model = NRI(DiscreteLatent(4, Softmax(), GumbelSoftmax(0.5)), prior="sparse")
    assert isinstance(model.edge_latent, IndependentEdges)
    probs = model.edge_latent.prior_log_probs.exp()
    torch.testing.assert_close(probs, torch.tensor([0.91, 0.03, 0.03, 0.03]))


def test_tree_configs_differ_only_in_the_latent():
    names = [path.name for path in TREE_CONFIGS]
    assert names == ["springs5_tree_independent.yaml", "springs5_tree_spanning_tree.yaml"]
    independent, tree = (yaml.safe_load(path.read_text()) for path in TREE_CONFIGS)
    assert independent["data"]["init_args"]["graph"] == "tree"
    assert independent["model"]["init_args"]["skip_first"] is True
    assert tree["model"]["init_args"]["latent"]["class_path"] == "StructuredLatent"
    for config in (independent, tree):
        del config["model"]["init_args"]["latent"]
    assert independent == tree


@pytest.mark.parametrize("path", TREE_CONFIGS, ids=[path.stem for path in TREE_CONFIGS])
def test_tree_config_trains_a_step_on_tiny_tree_data(path, run_cli, tmp_path):
    cli = fit_on_tiny_data(run_cli, path, tmp_path)
    assert cli.datamodule.physics.graph == "tree"
    expected = SpanningTreeEdges if "spanning_tree" in path.name else IndependentEdges
    assert isinstance(cli.model.edge_latent, expected)
    metrics = cli.trainer.callback_metrics
    assert math.isfinite(metrics["train/loss"].item())
    assert 0 <= metrics["val/edge_acc"].item() <= metrics["val/edge_acc_best"].item() <= 1
