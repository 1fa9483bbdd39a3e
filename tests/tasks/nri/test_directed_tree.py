"""NRI on directed-tree springs: the arborescence data, the edge latent and its configs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from catlight.latent.structured import (
    Arborescence,
    MLPCritic,
    Relax,
    SpanningTree,
    StructuredLatent,
    TraceReinforce,
)
from catlight.tasks.nri import NRI
from catlight.tasks.nri.data import ParticlesDataModule
from catlight.tasks.nri.edge_latents import ArborescenceEdges, IndependentEdges, edge_latent
from catlight.tasks.nri.simulation import ParticleSystem, random_arborescences
from tests.latent.structured.enumeration import all_traces
from tests.tasks.nri.tree_helpers import fit_on_tiny_data, replicated_gradients

REPO = Path(__file__).resolve().parents[3]
DIRECTED_CONFIGS = sorted((REPO / "configs" / "nri" / "directed_tree").glob("*.yaml"))
NUM_DIMS, HIDDEN = 4, 8


def arborescence_edges(num_nodes: int, estimator=None) -> ArborescenceEdges:
    estimator = estimator or TraceReinforce(num_samples=2)
    return ArborescenceEdges(StructuredLatent(Arborescence(num_nodes), estimator))


def test_random_arborescences_are_rooted_at_zero_and_uniform_over_k4():
    # 16 arborescences of K4 rooted at 0 (one per spanning tree). Chi-square with 15
    # degrees of freedom has P(> 37.7) = 0.001; the draw is seeded.
    draws = 8000
    parent_of = random_arborescences(draws, 4, np.random.default_rng(0))
    assert not parent_of[:, :, 0].any() and (parent_of[:, :, 1:].sum(1) == 1).all()
    reach = np.linalg.matrix_power(parent_of.astype(int) + np.eye(4, dtype=int), 3)
    assert (reach[:, 0] > 0).all()  # every particle descends from the root
    _, counts = np.unique(parent_of.reshape(draws, -1), axis=0, return_counts=True)
    assert len(counts) == 16
    expected = draws / 16
    assert ((counts - expected) ** 2 / expected).sum() < 37.7


def test_directed_springs_pull_the_child_only():
    physics = ParticleSystem("springs", num_particles=3, graph="directed_tree")
    coupling, labels = physics.sample_interactions(50, np.random.default_rng(1))
    positions = np.random.default_rng(2).standard_normal((50, 3, 2))
    forces = physics.forces(positions, coupling)
    np.testing.assert_allclose(forces[:, 0], 0.0)  # the root feels no spring
    parent = labels.argmax(1)[:, 1:]  # (50, 2): the parents of particles 1 and 2
    pulled = positions[:, 1:] - np.take_along_axis(positions, parent[..., None], 1)
    bound = physics.max_force
    expected = np.clip(-physics.interaction_strength * pulled, -bound, bound)
    np.testing.assert_allclose(forces[:, 1:], expected)


def test_directed_tree_data_labels_are_arborescences_in_their_own_cache(tmp_path):
    settings = {"num_train": 6, "num_valid": 2, "num_test": 2, "train_steps": 5}
    settings.update(test_steps=5, batch_size=6, sample_interval=10)
    data = ParticlesDataModule(str(tmp_path), graph="directed_tree", **settings)
    assert "_directed_tree_" in data.cache_path.name
    tree = ParticlesDataModule(str(tmp_path), graph="tree", **settings)
    assert tree.cache_path != data.cache_path
    data.setup()
    _, labels = next(iter(data.train_dataloader()))
    structure = Arborescence(5)
    assert labels.shape == (6, 20)
    assert (labels[:, structure.edges[1] == 0] == 0).all()  # nothing enters the root
    into = torch.zeros(6, 5).index_add_(1, structure.edges[1], labels.float())
    assert (into[:, 1:] == 1).all()


def test_particle_system_rejects_directed_trees_of_charges():
    with pytest.raises(ValueError, match="graph='directed_tree' needs system='springs'"):
        ParticleSystem("charged", graph="directed_tree")
    with pytest.raises(ValueError, match="'random', 'tree' or 'directed_tree', got 'star'"):
        ParticleSystem(graph="star")


def test_arborescence_scores_are_the_pair_scores_and_types_mark_parent_to_child():
    adapter = arborescence_edges(3)
    scores = torch.arange(6.0).view(1, 6, 1)
    assert adapter.edge_scores(scores).tolist() == [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]
    types = adapter.edge_types(torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]))  # 0 -> 1 -> 2
    assert types[:, 1].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert types.sum(-1).tolist() == [1.0] * 6


@pytest.mark.parametrize(
    "estimator",
    [TraceReinforce(num_samples=4), Relax(MLPCritic(12), num_samples=2)],
    ids=["t_reinforce_loo", "relax"],
)
def test_negative_elbo_gradient_is_unbiased_by_enumeration(estimator):
    """Mean of R = 20000 estimates vs the enumerated gradient; 4 standard errors."""
    torch.manual_seed(0)
    adapter = arborescence_edges(4, estimator)
    weights = torch.linspace(-1.0, 2.0, 12)  # a cost per ordered pair in the graph
    kl_weight = 0.5
    scores = torch.tensor([0.3, -0.7, 1.1, 0.2, -0.4, 0.9, 0.0, -1.3, 0.6, 0.5, -0.2, 0.8])

    mean, error = replicated_gradients(adapter, scores, weights, kl_weight)

    theta = scores.clone().requires_grad_()
    traces = all_traces(adapter.latent.structure)
    log_q = adapter.latent.structure.log_prob(theta, traces)
    log_prior = adapter.latent.structure.log_prob(torch.zeros(12), traces)
    costs = adapter.edge_types(adapter.latent.structure.encode(traces))[..., 1] @ weights
    negative_elbo = (log_q.exp() * (costs + kl_weight * (log_q - log_prior))).sum()
    (exact,) = torch.autograd.grad(negative_elbo, theta)
    assert ((mean - exact).abs() <= 4 * error + 1e-4).all(), (mean, exact, error)


def test_posterior_mode_and_marginals_of_an_arborescence():
    torch.manual_seed(0)
    adapter = arborescence_edges(4)
    scores = torch.full((1, 12, 1), -6.0)
    scores[0, [0, 4, 8]] = 6.0  # the chain 0 -> 1 -> 2 -> 3: pairs (0,1) (1,2) (2,3)
    posterior = adapter.posterior(scores)
    chain = torch.zeros(12)
    chain[[0, 4, 8]] = 1.0
    torch.testing.assert_close(posterior.mode[0], adapter.edge_types(chain))
    probs = posterior.log_probs.exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(1, 12))
    assert probs[0, :, 1].sum().item() == pytest.approx(3)  # N - 1 directed edges
    assert posterior.kl.shape == (1,) and posterior.kl.item() > 0


def test_nri_with_an_arborescence_latent_trains_the_encoder():
    torch.manual_seed(0)
    model = NRI(
        StructuredLatent(Arborescence(4), TraceReinforce(num_samples=2)),
        num_timesteps=4,
        encoder_hidden_size=HIDDEN,
        decoder_hidden_size=HIDDEN,
        skip_first=True,
        prediction_steps=2,
        test_horizons=[1, 2],
    )
    assert isinstance(model.edge_latent, ArborescenceEdges)
    loss, kl = model.loss(torch.randn(3, 4, 4, NUM_DIMS))
    assert loss.shape == kl.shape == (3,)
    loss.mean().backward()
    assert model.encoder.refinement.output.weight.grad.abs().sum() > 0


def test_arborescence_edges_reject_another_structure_and_a_wrong_size():
    with pytest.raises(ValueError, match="ArborescenceEdges: the StructuredLatent needs"):
        ArborescenceEdges(StructuredLatent(SpanningTree(4), TraceReinforce()))
    with pytest.raises(ValueError, match="num_marginal_samples must be >= 1, got 0"):
        ArborescenceEdges(StructuredLatent(Arborescence(4), TraceReinforce()), 0)
    with pytest.raises(ValueError, match=r"\(B, 20, 1\) for Arborescence\(num_nodes=5\)"):
        arborescence_edges(5)(torch.zeros(2, 12, 1))
    latent = StructuredLatent(Arborescence(4), TraceReinforce())
    assert isinstance(edge_latent(latent, "uniform", 0.9), ArborescenceEdges)


def test_directed_tree_configs_differ_only_in_the_latent():
    names = [path.name for path in DIRECTED_CONFIGS]
    assert names == [
        "springs5_directed_tree_arborescence.yaml",
        "springs5_directed_tree_independent.yaml",
    ]
    tree, independent = (yaml.safe_load(path.read_text()) for path in DIRECTED_CONFIGS)
    assert independent["data"]["init_args"]["graph"] == "directed_tree"
    structure = tree["model"]["init_args"]["latent"]["init_args"]["structure"]
    assert structure["class_path"] == "Arborescence"
    for config in (independent, tree):
        del config["model"]["init_args"]["latent"]
    assert independent == tree


@pytest.mark.parametrize("path", DIRECTED_CONFIGS, ids=[path.stem for path in DIRECTED_CONFIGS])
def test_directed_tree_config_trains_a_step_on_tiny_data(path, run_cli, tmp_path):
    cli = fit_on_tiny_data(run_cli, path, tmp_path)
    expected = ArborescenceEdges if "arborescence" in path.name else IndependentEdges
    assert isinstance(cli.model.edge_latent, expected)
    assert math.isfinite(cli.trainer.callback_metrics["train/loss"].item())
