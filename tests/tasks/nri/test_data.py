"""NRI particles: the physics, the spanning trees, the edge order and the data module."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from catlight.cli import main
from catlight.data import BadDataFileError
from catlight.tasks.nri import (
    ParticlesDataModule,
    ParticleSystem,
    fully_connected_edge_index,
    random_spanning_trees,
)

# a data set that simulates in well under a second
TINY = {
    "num_train": 8,
    "num_valid": 4,
    "num_test": 4,
    "train_steps": 6,
    "test_steps": 9,
    "sample_interval": 10,
    "batch_size": 4,
}


def tiny_data(tmp_path, **overrides) -> ParticlesDataModule:
    return ParticlesDataModule(str(tmp_path), **{**TINY, **overrides})


def pair_forces_loop(physics: ParticleSystem, positions, coupling) -> np.ndarray:
    """The force law written pair by pair: sum_j w_ij (r_i - r_j), clipped."""
    forces = np.zeros_like(positions)
    for s, i, j in itertools.product(*map(range, coupling.shape)):
        if i == j:
            continue
        offset = positions[s, i] - positions[s, j]
        weight = coupling[s, i, j]
        if physics.system == "charged":
            weight /= np.linalg.norm(offset) ** 3
        forces[s, i] += weight * offset
    return np.clip(forces, -physics.max_force, physics.max_force)


# -- edge order ------------------------------------------------------------------------


def test_fully_connected_edge_index_lists_ordered_pairs_sender_major():
    assert fully_connected_edge_index(3).tolist() == [[0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1]]
    index = fully_connected_edge_index(5)
    assert index.dtype == torch.int64 and index.shape == (2, 20)
    dense = torch.arange(25).reshape(5, 5)  # entry (i, j) holds 5 i + j
    assert dense[index[0], index[1]].tolist() == dense[~torch.eye(5, dtype=torch.bool)].tolist()


def test_fully_connected_edge_index_rejects_a_single_particle():
    with pytest.raises(ValueError, match="num_particles must be >= 2, got 1"):
        fully_connected_edge_index(1)


@pytest.mark.parametrize("system", ["springs", "charged"])
def test_simulated_edges_are_the_dense_labels_in_edge_index_order(system):
    physics = ParticleSystem(system, num_particles=4, sample_interval=2)
    _, dense = physics.sample_interactions(6, np.random.default_rng(3))
    _, edges = physics.simulate(6, 2, np.random.default_rng(3))
    senders, receivers = fully_connected_edge_index(4).numpy()
    np.testing.assert_array_equal(edges, dense[:, senders, receivers])


# -- graphs and labels -----------------------------------------------------------------


def test_random_spanning_trees_are_spanning_trees():
    trees = random_spanning_trees(300, 6, np.random.default_rng(0))
    assert trees.shape == (300, 6, 6)
    assert (trees == trees.transpose(0, 2, 1)).all() and not trees.diagonal(0, 1, 2).any()
    assert (trees.sum((1, 2)) == 2 * 5).all()  # N - 1 edges, both directions stored
    laplacians = np.eye(6) * trees.sum(-1)[:, :, None] - trees
    assert (np.linalg.matrix_rank(laplacians) == 5).all()  # rank N - 1: connected


def test_random_spanning_trees_are_uniform_over_the_16_trees_of_k4():
    # Cayley: K4 has 4^2 = 16 spanning trees. Chi-square with 15 degrees of freedom has
    # P(> 37.7) = 0.001; the draw is seeded, so the test is deterministic.
    draws = 8000
    trees = random_spanning_trees(draws, 4, np.random.default_rng(0))
    upper = trees[(slice(None), *np.triu_indices(4, k=1))]
    _, counts = np.unique(upper, axis=0, return_counts=True)
    assert len(counts) == 16
    expected = draws / 16
    assert ((counts - expected) ** 2 / expected).sum() < 37.7


def test_random_graph_joins_each_pair_with_probability_one_half():
    # 4000 x 10 pairs: the frequency's standard deviation is 0.0025; allow 6 of them
    coupling, labels = ParticleSystem("springs").sample_interactions(4000, np.random.default_rng(0))
    assert (labels == labels.transpose(0, 2, 1)).all() and not labels.diagonal(0, 1, 2).any()
    upper = labels[(slice(None), *np.triu_indices(5, k=1))]
    assert abs(upper.mean() - 0.5) < 0.015
    np.testing.assert_array_equal(coupling, -0.1 * labels)


def test_charged_label_is_one_exactly_for_like_charges():
    coupling, labels = ParticleSystem("charged").sample_interactions(500, np.random.default_rng(0))
    off_diagonal = ~np.eye(5, dtype=bool)
    assert set(np.abs(coupling[:, off_diagonal]).ravel().tolist()) == {1.0}
    np.testing.assert_array_equal(labels[:, off_diagonal], coupling[:, off_diagonal] > 0)
    assert abs(labels[(slice(None), *np.triu_indices(5, k=1))].mean() - 0.5) < 0.05


# -- physics ---------------------------------------------------------------------------


def test_forces_match_hookes_and_coulombs_laws_by_hand():
    positions = np.array([[[0.0, 0.0], [1.0, 0.0]]])
    joined = np.array([[[0.0, -0.1], [-0.1, 0.0]]])
    springs = ParticleSystem("springs", num_particles=2).forces(positions, joined)
    np.testing.assert_allclose(springs, [[[0.1, 0.0], [-0.1, 0.0]]])  # pulled together

    charged = ParticleSystem("charged", num_particles=2)
    positions = np.array([[[0.0, 0.0], [0.0, 2.0]]])
    like = np.array([[[0.0, 1.0], [1.0, 0.0]]])
    np.testing.assert_allclose(charged.forces(positions, like), [[[0, -0.25], [0, 0.25]]])
    np.testing.assert_allclose(charged.forces(positions, -like), [[[0, 0.25], [0, -0.25]]])
    close = np.array([[[0.0, 0.0], [0.0, 0.01]]])  # 1 / 0.01^2 = 1e4, clipped to 0.1 / dt
    np.testing.assert_allclose(charged.forces(close, like), [[[0, -100.0], [0, 100.0]]])


@pytest.mark.parametrize("system", ["springs", "charged"])
def test_vectorised_forces_match_the_pair_by_pair_law(system):
    physics = ParticleSystem(system, num_particles=4)
    rng = np.random.default_rng(1)
    coupling, _ = physics.sample_interactions(5, rng)
    positions, _ = physics.sample_initial_state(5, rng)
    np.testing.assert_allclose(
        physics.forces(positions, coupling), pair_forces_loop(physics, positions, coupling)
    )


def test_springs_conserve_energy_without_walls():
    physics = ParticleSystem("springs", dt=1e-4, box_size=math.inf, sample_interval=100)
    rng = np.random.default_rng(0)
    coupling, _ = physics.sample_interactions(16, rng)
    positions, velocities = physics.sample_initial_state(16, rng)
    path, speeds = physics.integrate(positions, velocities, coupling, num_samples=20)
    initial = physics.energy(positions, velocities, coupling)
    energies = np.stack([physics.energy(path[:, t], speeds[:, t], coupling) for t in range(20)])
    kinetic = 0.5 * (speeds**2).sum((-2, -1))
    drift = np.abs(energies - initial).max(0)
    assert (drift < 1e-4 * initial).all()
    # the springs do work: the kinetic energy moves far more than the total does
    assert (kinetic.max(1) - kinetic.min(1) > 50 * drift).all()


def test_reflect_mirrors_positions_and_turns_velocities_inward():
    physics = ParticleSystem("springs", num_particles=2)
    positions = np.array([[[5.2, 0.0], [-5.1, 4.0]]])
    velocities = np.array([[[0.3, 0.1], [-0.2, -0.4]]])
    physics.reflect(positions, velocities)
    np.testing.assert_allclose(positions, [[[4.8, 0.0], [-4.9, 4.0]]])
    np.testing.assert_allclose(velocities, [[[-0.3, 0.1], [0.2, -0.4]]])


def test_walls_keep_particles_in_the_box():
    physics = ParticleSystem("charged", box_size=1.0, sample_interval=10)
    rng = np.random.default_rng(0)
    coupling, _ = physics.sample_interactions(50, rng)
    positions, velocities = physics.sample_initial_state(50, rng)
    assert (np.abs(positions) > 1).any()  # some start outside and are reflected in
    path, _ = physics.integrate(positions, velocities, coupling, num_samples=40)
    assert np.abs(path).max() <= 1.0


def test_trajectories_follow_a_step_by_step_reference_integration():
    physics = ParticleSystem("charged", num_particles=3, box_size=1.5, sample_interval=7)
    rng = np.random.default_rng(2)
    coupling, _ = physics.sample_interactions(2, rng)
    positions, velocities = physics.sample_initial_state(2, rng)
    path, speeds = physics.integrate(positions, velocities, coupling, num_samples=3)
    r, v = positions.copy(), velocities.copy()
    physics.reflect(r, v)
    v += physics.dt * pair_forces_loop(physics, r, coupling)
    for step in range(1, 3 * 7 + 1):
        r += physics.dt * v
        physics.reflect(r, v)
        if step % 7 == 0:
            np.testing.assert_allclose(path[:, step // 7 - 1], r, rtol=1e-12)
            np.testing.assert_allclose(speeds[:, step // 7 - 1], v, rtol=1e-12)
        v += physics.dt * pair_forces_loop(physics, r, coupling)


def test_simulate_does_not_depend_on_the_chunk_size():
    physics = ParticleSystem("springs", graph="tree", sample_interval=5)
    whole = physics.simulate(7, 3, np.random.default_rng(4), chunk_size=100)
    chunked = physics.simulate(7, 3, np.random.default_rng(4), chunk_size=3)
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(a, b)


def test_particle_system_rejects_invalid_settings():
    with pytest.raises(ValueError, match="graph='tree' needs system='springs'"):
        ParticleSystem("charged", graph="tree")
    with pytest.raises(ValueError, match="system must be 'springs' or 'charged', got 'gravity'"):
        ParticleSystem("gravity")
    with pytest.raises(ValueError, match="num_particles must be >= 2, got 1"):
        ParticleSystem(num_particles=1)
    with pytest.raises(ValueError, match="dt and box_size must be > 0"):
        ParticleSystem(dt=0.0)


# -- data module -----------------------------------------------------------------------


def test_same_seed_gives_the_same_data_and_another_seed_other_data(tmp_path):
    first = tiny_data(tmp_path).simulate(quiet=True)
    again = tiny_data(tmp_path).simulate(quiet=True)
    other = tiny_data(tmp_path, seed=43).simulate(quiet=True)
    for name, array in first.items():
        np.testing.assert_array_equal(array, again[name])
    assert not np.array_equal(first["train_trajectories"], other["train_trajectories"])
    assert not np.array_equal(first["train_trajectories"], first["valid_trajectories"][:4])


DATA_SETTINGS = {
    "system": "charged",
    "num_particles": 4,
    "graph": "tree",  # with springs, the default system
    "num_train": 9,
    "num_valid": 5,
    "num_test": 5,
    "train_steps": 7,
    "test_steps": 10,
    "sample_interval": 11,
    "dt": 0.002,
    "box_size": 4.0,
    "seed": 1,
}


def test_cache_key_changes_with_every_data_setting(tmp_path):
    default = tiny_data(tmp_path).cache_path
    paths = {
        tiny_data(tmp_path, **{name: value}).cache_path for name, value in DATA_SETTINGS.items()
    }
    assert len(paths) == len(DATA_SETTINGS) and default not in paths
    loading_only = tiny_data(tmp_path, batch_size=2, eval_batch_size=3, on_device=False)
    assert loading_only.cache_path == default


def test_data_module_batches_have_the_documented_format(tmp_path):
    data = tiny_data(tmp_path, system="charged")
    data.prepare_data()
    assert data.cache_path.exists() and data.cache_path.parent == tmp_path
    data.setup("fit")
    trajectories, edges = next(iter(data.train_dataloader()))
    assert trajectories.dtype == torch.float32 and trajectories.shape == (4, 5, 6, 4)
    assert edges.dtype == torch.int64 and edges.shape == (4, data.num_edges) == (4, 20)
    assert set(edges.unique().tolist()) <= {0, 1}
    senders, receivers = fully_connected_edge_index(5)
    dense = torch.zeros(4, 5, 5, dtype=torch.int64)
    dense[:, senders, receivers] = edges
    assert torch.equal(dense, dense.transpose(1, 2))  # one label per unordered pair
    test_trajectories, _ = next(iter(data.test_dataloader()))
    assert test_trajectories.shape == (4, 5, 9, 4)

    train, _ = data.splits["train"]
    for feature in (slice(0, 2), slice(2, 4)):  # positions, velocities: exactly [-1, 1]
        assert train[..., feature].min().item() == pytest.approx(-1.0, abs=1e-6)
        assert train[..., feature].max().item() == pytest.approx(1.0, abs=1e-6)
    physical = data.denormalize(train)
    assert physical[..., :2].min().item() == pytest.approx(data.position_min, abs=1e-5)
    assert physical[..., 2:].max().item() == pytest.approx(data.velocity_max, abs=1e-5)
    torch.testing.assert_close(data.normalize(physical), train)


def test_data_module_reuses_its_cache(tmp_path, monkeypatch):
    tiny_data(tmp_path).prepare_data()
    data = tiny_data(tmp_path)

    def fail(*args, **kwargs):
        raise AssertionError("simulated again although the cache exists")

    monkeypatch.setattr(ParticlesDataModule, "simulate", fail)
    data.prepare_data()
    data.setup()
    assert data.splits["valid"][0].shape == (4, 5, 6, 4)


def test_normalisation_needs_the_training_set(tmp_path):
    with pytest.raises(RuntimeError, match=r"call setup\(\) first"):
        tiny_data(tmp_path).normalize(torch.zeros(4))


def test_data_module_reports_a_cache_without_its_arrays(tmp_path):
    data = tiny_data(tmp_path)
    np.savez(data.cache_path, train_trajectories=np.zeros((1, 5, 6, 4), np.float32))
    with pytest.raises(BadDataFileError, match="lacks the arrays"):
        data.setup()


def test_data_module_rejects_invalid_settings(tmp_path):
    with pytest.raises(ValueError, match="num_train must be >= 1, got 0"):
        tiny_data(tmp_path, num_train=0)
    with pytest.raises(ValueError, match="graph='tree' needs system='springs'"):
        tiny_data(tmp_path, system="charged", graph="tree")


def test_simulate_command_writes_the_data_modules_cache(tmp_path, capsys):
    arguments = [f"--{name}={value}" for name, value in TINY.items() if name != "batch_size"]
    main(["simulate", f"--data_dir={tmp_path}", "--graph=tree", *arguments])
    expected = tiny_data(tmp_path, graph="tree").cache_path
    assert expected.exists()
    captured = capsys.readouterr()
    assert captured.out.strip() == str(expected)
    assert "100.0%" in captured.err
