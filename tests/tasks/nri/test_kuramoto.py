"""NRI Kuramoto oscillators: the physics, the edge order, the features, the data module."""

from __future__ import annotations

import math

import numpy as np
import pytest

from catlight.tasks.nri import KuramotoSystem, ParticlesDataModule, fully_connected_edge_index


def two_oscillators(coupling: float, num_samples: int, interval: int = 100) -> np.ndarray:
    """Phase difference ``phi_2 - phi_1`` of two mutually coupled oscillators.

    Natural frequencies 2 and 3 (``Delta omega = 1``), both starting at phase 0,
    recorded every ``interval * 0.01`` time units.
    """
    physics = KuramotoSystem(num_particles=2, sample_interval=interval)
    weights = np.array([[[0.0, coupling], [coupling, 0.0]]])
    path = physics.integrate(np.zeros((1, 2)), np.array([[2.0, 3.0]]), weights, num_samples)
    return path[0, :, 1] - path[0, :, 0]


def test_uncoupled_phases_advance_by_omega_t():
    physics = KuramotoSystem(num_particles=4, dt=0.01, sample_interval=7)
    rng = np.random.default_rng(0)
    phases, frequencies = physics.sample_initial_state(3, rng)
    path = physics.integrate(phases, frequencies, np.zeros((3, 4, 4)), num_samples=20)
    times = np.arange(20) * 7 * 0.01
    expected = phases[:, None] + times[None, :, None] * frequencies[:, None]
    np.testing.assert_allclose(path, expected, rtol=0, atol=1e-10)


def test_strongly_coupled_pair_locks_at_the_arcsine_phase_difference():
    # d(Delta)/dt = Delta omega - 2 k sin(Delta): locks at sin(Delta) = Delta omega / 2k
    for coupling in (0.6, 1.0, 3.0):
        difference = two_oscillators(coupling, num_samples=31)  # up to t = 30
        np.testing.assert_allclose(difference[-1], math.asin(1 / (2 * coupling)), atol=1e-6)


def test_weakly_coupled_pair_drifts_at_the_adler_rate():
    # below the threshold k = |Delta omega| / 2 the difference slips by 2 pi every
    # 2 pi / sqrt(Delta omega^2 - 4 k^2) time units
    coupling = 0.4
    rate = math.sqrt(1 - 4 * coupling**2)  # 0.6
    period = 2 * math.pi / rate
    difference = two_oscillators(coupling, num_samples=1001, interval=10)  # t = 0 .. 100
    slips = math.floor(100 / period)
    end = round(slips * period / 0.1)  # the sample closest to the last full slip
    assert difference[end] == pytest.approx(2 * math.pi * slips, abs=0.1)
    assert difference[-1] > 2 * math.pi * slips  # it keeps drifting, never locks


def test_rk4_converges_at_fourth_order():
    rng = np.random.default_rng(1)
    physics = KuramotoSystem()
    coupling, _ = physics.sample_interactions(8, rng)
    phases, frequencies = physics.sample_initial_state(8, rng)

    def end_phases(dt: float, steps: int) -> np.ndarray:
        stepper = KuramotoSystem(dt=dt, sample_interval=steps)
        return stepper.integrate(phases, frequencies, coupling, num_samples=2)[:, -1]

    reference = end_phases(0.0005, 4000)
    coarse = np.abs(end_phases(0.02, 100) - reference).max()
    fine = np.abs(end_phases(0.01, 200) - reference).max()
    assert 12 < coarse / fine < 20  # 2^4 = 16
    assert fine < 1e-4  # the data's step, over 2 time units


def test_rates_are_the_pairwise_sine_sum():
    physics = KuramotoSystem(num_particles=4)
    rng = np.random.default_rng(2)
    coupling, _ = physics.sample_interactions(3, rng)
    phases, frequencies = physics.sample_initial_state(3, rng)
    expected = frequencies.copy()
    for s in range(3):
        for i in range(4):
            for j in range(4):
                expected[s, i] += coupling[s, i, j] * math.sin(phases[s, j] - phases[s, i])
    np.testing.assert_allclose(physics.rates(phases, frequencies, coupling), expected)


def test_edge_types_say_which_oscillator_drives_which():
    physics = KuramotoSystem(num_particles=4)
    coupling, edges = physics.sample_interactions(50, np.random.default_rng(3))
    senders, receivers = fully_connected_edge_index(4).numpy()
    np.testing.assert_array_equal(edges, coupling[:, receivers, senders] > 0)
    assert not np.array_equal(coupling, coupling.transpose(0, 2, 1))  # directed
    assert 0.4 < edges.mean() < 0.6


def test_features_are_the_papers_and_normalised_per_simulation():
    physics = KuramotoSystem(num_particles=5, window=30)
    trajectories, edges = physics.simulate(40, 30, np.random.default_rng(4))
    assert trajectories.shape == (40, 5, 30, 4) and trajectories.dtype == np.float32
    assert edges.shape == (40, 20)
    rates, sines, phases, frequencies = np.moveaxis(trajectories, -1, 0)
    assert np.abs(trajectories).max() <= 1 + 1e-6
    np.testing.assert_allclose(phases.min(-1), -1, atol=1e-6)
    np.testing.assert_allclose(phases.max(-1), 1, atol=1e-6)
    assert np.all(frequencies == frequencies[..., :1])
    receivers = fully_connected_edge_index(5)[1].numpy()
    driven = np.zeros((40, 5), bool)
    np.logical_or.at(driven, (slice(None), receivers), edges.astype(bool))
    assert np.all(rates[~driven] == 0)
    np.testing.assert_allclose(rates[driven].min(-1), -1, atol=1e-6)
    # the same draws, integrated directly: sin(phi) as is, omega mapped from [1, 10]
    rng = np.random.default_rng(4)
    coupling, _ = physics.sample_interactions(40, rng)
    initial, omega = physics.sample_initial_state(40, rng)
    path = physics.integrate(initial, omega, coupling, 30)  # [S, T, N]
    np.testing.assert_allclose(sines, np.sin(path).transpose(0, 2, 1), atol=1e-6)
    np.testing.assert_allclose(frequencies[..., 0], (omega - 1) * 2 / 9 - 1, atol=1e-6)


def test_short_trajectories_are_the_start_of_window_long_ones():
    physics = KuramotoSystem(num_particles=3, window=12)
    short, _ = physics.simulate(6, 5, np.random.default_rng(5), chunk_size=4)
    long, _ = physics.simulate(6, 12, np.random.default_rng(5))
    np.testing.assert_array_equal(short, long[:, :, :5])


def test_kuramoto_system_rejects_invalid_settings():
    with pytest.raises(ValueError, match="num_particles must be >= 2, got 1"):
        KuramotoSystem(num_particles=1)
    with pytest.raises(ValueError, match="dt and coupling_strength must be > 0, got 0"):
        KuramotoSystem(dt=0)
    with pytest.raises(ValueError, match="sample_interval and window must be >= 1"):
        KuramotoSystem(window=0)


def test_data_module_serves_kuramoto_oscillators(tmp_path):
    settings = {"num_train": 6, "num_valid": 3, "num_test": 3, "batch_size": 3}
    data = ParticlesDataModule(
        str(tmp_path), system="kuramoto", train_steps=8, test_steps=12, **settings
    )
    assert data.physics == KuramotoSystem(5, 0.01, 10, window=12) and data.num_dims == 4
    assert data.cache_path.name.startswith("oscillators_kuramoto5_random_")
    data.setup("fit")
    trajectories, edges = next(iter(data.train_dataloader()))
    assert trajectories.shape == (3, 5, 8, 4) and edges.shape == (3, 20)
    assert data.splits["test"][0].shape == (3, 5, 12, 4)
    # the features come normalised: the data module leaves them as they are
    raw = data.simulate(quiet=True)["train_trajectories"]
    np.testing.assert_allclose(data.splits["train"][0].numpy(), raw, atol=1e-6)
    springs = ParticlesDataModule(str(tmp_path), train_steps=8, test_steps=12, **settings)
    assert springs.cache_path.name.startswith("particles_springs5_random_")
    assert springs.physics.dt == 0.001 and springs.physics.sample_interval == 100


def test_data_module_rejects_a_tree_of_oscillators(tmp_path):
    with pytest.raises(ValueError, match="system='kuramoto' takes graph='random' only, got 'tree'"):
        ParticlesDataModule(str(tmp_path), system="kuramoto", graph="tree")
