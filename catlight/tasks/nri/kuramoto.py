"""Phase-coupled (Kuramoto) oscillators on a random directed graph: NRI's third system.

The oscillators of Kipf et al., "Neural Relational Inference for Interacting Systems"
(ICML 2018), integrated for many simulations at once (every array carries a leading
simulation dimension ``S``). Oscillator ``i`` has a phase ``phi_i`` and a natural
frequency ``omega_i``; it is pulled towards the phases of the oscillators coupled to it:

    d phi_i / dt = omega_i + sum_j k_ij sin(phi_j - phi_i)

with ``k_ij = coupling_strength`` when oscillator ``j`` drives ``i`` (each ordered pair
independently with probability 1/2, so the graph is directed) and 0 otherwise.
Natural frequencies are uniform in ``[1, 10)``, initial phases uniform in
``[0, 2 pi)``. Integration is the classical fixed-step Runge-Kutta method (RK4) with
step ``dt``, and a state is recorded every ``sample_interval`` steps, the first one
being the initial state.

Each recorded state has the four features of the paper, per oscillator:
``(d phi / dt, sin phi, phi, omega)``. The rate ``d phi / dt`` is the right-hand side
above at the recorded phases (exact, where the original generator took a finite
difference). The rate and the unwrapped phase are mapped to ``[-1, 1]`` by their
minimum and maximum over ``window`` states (or the whole trajectory when it is longer),
separately for each simulation and oscillator; an oscillator that nothing drives has a
constant rate, shown as 0. The natural frequency is mapped from ``[1, 10]`` to ``[-1, 1]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["KuramotoSystem"]

_FREQUENCY_RANGE = (1.0, 10.0)
_EDGE_PROBABILITY = 0.5
_CHUNK_SIMULATIONS = 10000


@dataclass(frozen=True)
class KuramotoSystem:
    """One setting of the oscillators: how many, the coupling, the clock and the window.

    Args:
        num_particles: ``N``, oscillators per simulation (at least 2).
        dt: the RK4 step.
        sample_interval: steps between two recorded states.
        coupling_strength: ``k``, the coupling of every edge of the graph.
        window: recorded states over which each simulation's rates and phases are
            normalised (at least); a trajectory of fewer states is cut from one of
            ``window`` states, so that training and test trajectories share the
            normalisation.

    Raises:
        ValueError: for fewer than 2 oscillators, a non-positive ``dt`` or coupling,
            or a ``sample_interval`` or ``window`` below 1.
    """

    num_particles: int = 5
    dt: float = 0.01
    sample_interval: int = 10
    coupling_strength: float = 1.0
    window: int = 99

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.num_particles < 2:
            raise ValueError(f"{name}: num_particles must be >= 2, got {self.num_particles}")
        if not self.dt > 0 or not self.coupling_strength > 0:
            raise ValueError(
                f"{name}: dt and coupling_strength must be > 0, got {self.dt} and "
                f"{self.coupling_strength}"
            )
        if self.sample_interval < 1 or self.window < 1:
            raise ValueError(
                f"{name}: sample_interval and window must be >= 1, got "
                f"{self.sample_interval} and {self.window}"
            )

    @property
    def system(self) -> str:
        """The data module's name of this system."""
        return "kuramoto"

    @property
    def graph(self) -> str:
        """The data module's name of the graphs: ``"random"`` (directed, see above)."""
        return "random"

    @property
    def frequency_range(self) -> tuple[float, float]:
        """Natural frequencies are drawn uniformly from ``[low, high)``."""
        return _FREQUENCY_RANGE

    def sample_interactions(
        self, num_simulations: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw the directed graphs: who drives whom.

        Args:
            num_simulations: ``S``, independent draws.
            rng: the random generator.

        Returns:
            ``(coupling, edge_types)``: float64 ``k_ij`` (row ``i`` is driven, column
            ``j`` drives) and int64 edge types of the ordered pairs ``(j, i)``,
            ``j != i``, sender ``j`` outer, receiver ``i`` inner (as
            :func:`~catlight.tasks.nri.graph.fully_connected_edge_index`): 1 where ``j``
            drives ``i``, else 0.

        Shapes:
            - coupling: ``(S, N, N)``, zero diagonal
            - edge_types: ``(S, N (N - 1))``
        """
        n = self.num_particles
        off_diagonal = ~np.eye(n, dtype=bool)
        driven_by = (rng.random((num_simulations, n, n)) < _EDGE_PROBABILITY) & off_diagonal
        edge_types = driven_by.transpose(0, 2, 1)[:, off_diagonal].astype(np.int64)
        return self.coupling_strength * driven_by, edge_types

    def sample_initial_state(
        self, num_simulations: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Uniform initial phases in ``[0, 2 pi)`` and natural frequencies in ``[1, 10)``.

        Returns:
            ``(phases, frequencies)``, float64.

        Shapes:
            - phases, frequencies: ``(S, N)``
        """
        shape = (num_simulations, self.num_particles)
        phases = rng.uniform(0, 2 * np.pi, shape)
        frequencies = rng.uniform(*self.frequency_range, shape)
        return phases, frequencies

    def rates(
        self, phases: np.ndarray, frequencies: np.ndarray, coupling: np.ndarray
    ) -> np.ndarray:
        """``d phi_i / dt = omega_i + sum_j k_ij sin(phi_j - phi_i)``.

        Uses ``sin(phi_j - phi_i) = sin phi_j cos phi_i - cos phi_j sin phi_i``: one
        batched product with ``(sin phi, cos phi)`` and no ``(S, N, N)`` sine.

        Shapes:
            - phases, frequencies: ``(S, N)``; coupling: ``(S, N, N)``
            - output: ``(S, N)``
        """
        sines, cosines = np.sin(phases), np.cos(phases)
        pulls = coupling @ np.stack([sines, cosines], axis=-1)  # [S, N, 2]
        return frequencies + cosines * pulls[..., 0] - sines * pulls[..., 1]

    def integrate(
        self,
        phases: np.ndarray,
        frequencies: np.ndarray,
        coupling: np.ndarray,
        num_samples: int,
    ) -> np.ndarray:
        """Unwrapped phases at ``num_samples`` recorded times, the first one ``t = 0``.

        Args:
            phases: initial phases (not modified).
            frequencies: natural frequencies.
            coupling: from :meth:`sample_interactions`.
            num_samples: ``T``, recorded states, ``sample_interval * dt`` apart.

        Returns:
            float64 phases.

        Shapes:
            - phases, frequencies: ``(S, N)``; coupling: ``(S, N, N)``
            - output: ``(S, T, N)``
        """
        recorded = np.empty((phases.shape[0], num_samples, phases.shape[1]))
        phases = phases.copy()
        half = self.dt / 2
        for sample in range(num_samples):
            recorded[:, sample] = phases
            if sample == num_samples - 1:
                break
            for _ in range(self.sample_interval):
                k1 = self.rates(phases, frequencies, coupling)
                k2 = self.rates(phases + half * k1, frequencies, coupling)
                k3 = self.rates(phases + half * k2, frequencies, coupling)
                k4 = self.rates(phases + self.dt * k3, frequencies, coupling)
                phases += (self.dt / 6) * (k1 + 2 * (k2 + k3) + k4)
        return recorded

    def features(
        self, phases: np.ndarray, frequencies: np.ndarray, coupling: np.ndarray
    ) -> np.ndarray:
        """The observed ``(d phi / dt, sin phi, phi, omega)``, normalised (module docstring).

        Args:
            phases: recorded unwrapped phases over the normalisation window.
            frequencies: natural frequencies.
            coupling: from :meth:`sample_interactions`.

        Returns:
            float32 features.

        Shapes:
            - phases: ``(S, T, N)``; frequencies: ``(S, N)``; coupling: ``(S, N, N)``
            - output: ``(S, N, T, 4)``
        """
        num_samples = phases.shape[1]
        flat = phases.reshape(-1, phases.shape[-1])
        repeated = np.repeat(frequencies, num_samples, axis=0)
        rates = self.rates(flat, repeated, np.repeat(coupling, num_samples, axis=0))
        rates = _to_unit_range(rates.reshape(phases.shape))
        rates *= coupling.any(-1)[:, None, :]  # undriven: constant rate, shown as 0
        low, high = self.frequency_range
        scaled_frequencies = (frequencies - low) * (2 / (high - low)) - 1
        columns = [
            rates,
            np.sin(phases),
            _to_unit_range(phases),
            np.broadcast_to(scaled_frequencies[:, None], phases.shape),
        ]
        return np.stack(columns, axis=-1).transpose(0, 2, 1, 3).astype(np.float32)

    def simulate(
        self,
        num_simulations: int,
        num_samples: int,
        rng: np.random.Generator,
        chunk_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw and run ``S`` simulations: features and ground-truth edge types.

        Every random draw happens before integration, so the result depends on ``rng``
        alone, not on ``chunk_size``. Each simulation runs for ``max(T, window)``
        recorded states, is normalised over all of them and cut to ``T``.

        Args:
            num_simulations: ``S``.
            num_samples: ``T``, recorded states per trajectory.
            rng: the random generator.
            chunk_size: simulations integrated at once (10,000 by default).
            progress: called after each chunk with the number of states it recorded
                (simulations times ``T``).

        Returns:
            ``(trajectories, edges)``: float32 features and int64 edge types (see
            :meth:`sample_interactions`).

        Shapes:
            - trajectories: ``(S, N, T, 4)``
            - edges: ``(S, N (N - 1))``
        """
        coupling, edge_types = self.sample_interactions(num_simulations, rng)
        phases, frequencies = self.sample_initial_state(num_simulations, rng)
        simulated = max(num_samples, self.window)
        trajectories = np.empty((num_simulations, self.num_particles, num_samples, 4), np.float32)
        chunk_size = chunk_size or _CHUNK_SIMULATIONS
        for start in range(0, num_simulations, chunk_size):
            chunk = slice(start, start + chunk_size)
            path = self.integrate(phases[chunk], frequencies[chunk], coupling[chunk], simulated)
            features = self.features(path, frequencies[chunk], coupling[chunk])
            trajectories[chunk] = features[:, :, :num_samples]
            if progress is not None:
                progress(path.shape[0] * num_samples)
        return trajectories, edge_types


def _to_unit_range(values: np.ndarray) -> np.ndarray:
    """Map each series to ``[-1, 1]`` by its minimum and maximum over time (constant: 0).

    Shapes:
        - values: ``(S, T, N)``, each ``(s, :, n)`` one series; output the same
    """
    low, high = values.min(1, keepdims=True), values.max(1, keepdims=True)
    spread = high - low
    scaled = np.divide(values - low, spread, out=np.full_like(values, 0.5), where=spread > 0)
    return 2 * scaled - 1
