"""Interacting particles in a 2-D box: the springs and charged-particle systems of NRI.

The physics of Kipf et al., "Neural Relational Inference for Interacting Systems"
(ICML 2018), integrated for many simulations at once: every array carries a leading
simulation dimension ``S`` and each time step is a handful of numpy operations over all
of them, instead of one Python loop per simulation.

Particles have unit mass and move in the box ``[-box_size, box_size]^2`` whose walls
reflect them elastically. The force on particle ``i`` is a weighted sum over the others,
``F_i = sum_j w_ij (r_i - r_j)``:

- springs: ``w_ij = -k a_ij`` with ``a`` the symmetric 0/1 interaction graph and
  ``k = 0.1`` (Hooke's law, ``U = k/2 |r_i - r_j|^2`` per spring);
- charged: ``w_ij = c q_i q_j / |r_i - r_j|^3`` with charges ``q = +-1`` and ``c = 1``
  (Coulomb's law, ``U = c q_i q_j / |r_i - r_j|`` per pair: like charges repel).

As in the original generator each force component is clipped to ``+-0.1 / dt`` (no step
changes a velocity by more than 0.1), which keeps close encounters of charges finite.
Integration is symplectic Euler (``r += dt v``, reflect at the walls, ``v += dt F``),
and a state is recorded every ``sample_interval`` steps, the first one after a full
interval. Initial positions are Gaussian (standard deviation 0.5 for springs, 1 for
charges) and initial velocities point in a uniformly random direction with speed 0.5.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "Graph",
    "ParticleSystem",
    "System",
    "random_arborescences",
    "random_spanning_trees",
]

System = Literal["springs", "charged"]
Graph = Literal["random", "tree", "directed_tree"]

_INTERACTION_STRENGTH = {"springs": 0.1, "charged": 1.0}
_POSITION_STD = {"springs": 0.5, "charged": 1.0}
_SPEED = 0.5
_MAX_VELOCITY_CHANGE = 0.1  # per step: forces are clipped to this / dt
_MIN_SQUARED_DISTANCE = 1e-12
_CHUNK_PAIRS = 50000  # particle pairs integrated at once


@dataclass(frozen=True)
class ParticleSystem:
    """One physical setting: which forces, how many particles, the box and the clock.

    Args:
        system: ``"springs"`` (pairs joined by springs) or ``"charged"`` (charges of
            +-1 interacting by Coulomb forces).
        num_particles: particles per simulation (at least 2).
        graph: how springs are placed: ``"random"`` joins each pair with probability
            1/2, ``"tree"`` draws a uniformly random spanning tree over the particles,
            ``"directed_tree"`` a uniformly random arborescence rooted at particle 0
            whose springs pull only the child of each edge (the parent leads).
            Charged systems have every pair interacting (``"random"`` only).
        dt: integration step.
        box_size: walls at ``+-box_size`` on both axes (``float("inf")``: no walls).
        sample_interval: integration steps between two recorded states.

    Raises:
        ValueError: for an unknown system or graph, a tree of charged particles, fewer
            than 2 particles, or a non-positive ``dt``, ``box_size`` or interval.
    """

    system: System = "springs"
    num_particles: int = 5
    graph: Graph = "random"
    dt: float = 0.001
    box_size: float = 5.0
    sample_interval: int = 100

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.system not in _INTERACTION_STRENGTH:
            raise ValueError(f"{name}: system must be 'springs' or 'charged', got {self.system!r}")
        if self.graph not in ("random", "tree", "directed_tree"):
            raise ValueError(
                f"{name}: graph must be 'random', 'tree' or 'directed_tree', got {self.graph!r}"
            )
        if self.graph != "random" and self.system != "springs":
            raise ValueError(
                f"{name}: graph={self.graph!r} needs system='springs' (every pair of charges "
                f"interacts), got system={self.system!r}"
            )
        if self.num_particles < 2:
            raise ValueError(f"{name}: num_particles must be >= 2, got {self.num_particles}")
        if not self.dt > 0 or not self.box_size > 0:
            raise ValueError(
                f"{name}: dt and box_size must be > 0, got {self.dt} and {self.box_size}"
            )
        if self.sample_interval < 1:
            raise ValueError(f"{name}: sample_interval must be >= 1, got {self.sample_interval}")

    @property
    def interaction_strength(self) -> float:
        """Spring constant ``k`` (springs) or Coulomb constant ``c`` (charged)."""
        return _INTERACTION_STRENGTH[self.system]

    @property
    def position_std(self) -> float:
        """Standard deviation of the initial positions."""
        return _POSITION_STD[self.system]

    @property
    def speed(self) -> float:
        """Initial speed of every particle."""
        return _SPEED

    @property
    def max_force(self) -> float:
        """Bound on each force component (as in the original generator)."""
        return _MAX_VELOCITY_CHANGE / self.dt

    def sample_interactions(
        self, num_simulations: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw who interacts with whom: the coupling of the forces and the edge types.

        Edge types: springs ``1`` where a spring joins the pair, else ``0``; charged
        ``1`` where the two charges have the same sign (they repel), ``0`` where they
        differ (they attract). Diagonals are 0.

        Args:
            num_simulations: ``S``, independent draws.
            rng: the random generator.

        Returns:
            ``(coupling, edge_types)``: the float64 force weights ``-k a_ij`` (springs)
            or ``c q_i q_j`` (charged, divided by ``|r_i - r_j|^3`` when the forces are
            computed), and the int64 edge types.

        Shapes:
            - coupling: ``(S, N, N)``, symmetric, zero diagonal
            - edge_types: ``(S, N, N)``, symmetric, zero diagonal
        """
        n = self.num_particles
        off_diagonal = ~np.eye(n, dtype=bool)
        if self.system == "charged":
            charges = np.where(rng.random((num_simulations, n)) < 0.5, -1.0, 1.0)
            products = charges[:, :, None] * charges[:, None, :] * off_diagonal
            return self.interaction_strength * products, (products > 0).astype(np.int64)
        if self.graph == "directed_tree":
            parent_of = random_arborescences(num_simulations, n, rng)
            coupling = -self.interaction_strength * parent_of.transpose(0, 2, 1)
            return coupling, parent_of.astype(np.int64)
        if self.graph == "tree":
            adjacency = random_spanning_trees(num_simulations, n, rng)
        else:
            upper = np.triu(rng.random((num_simulations, n, n)) < 0.5, k=1)
            adjacency = upper | upper.transpose(0, 2, 1)
        return -self.interaction_strength * adjacency, adjacency.astype(np.int64)

    def sample_initial_state(
        self, num_simulations: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian positions and velocities of fixed speed in uniformly random directions.

        Args:
            num_simulations: ``S``, independent draws.
            rng: the random generator.

        Returns:
            ``(positions, velocities)``, float64.

        Shapes:
            - positions, velocities: ``(S, N, 2)``
        """
        shape = (num_simulations, self.num_particles, 2)
        positions = rng.standard_normal(shape) * self.position_std
        directions = rng.standard_normal(shape)
        directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
        return positions, directions * self.speed

    def forces(self, positions: np.ndarray, coupling: np.ndarray) -> np.ndarray:
        """Force on every particle, each component clipped to ``+-max_force``.

        Args:
            positions: particle positions.
            coupling: from :meth:`sample_interactions`.

        Returns:
            ``F_i = sum_j w_ij (r_i - r_j)``, float64.

        Shapes:
            - positions: ``(S, N, 2)``; coupling: ``(S, N, N)``
            - output: ``(S, N, 2)``
        """
        return self._force_law(coupling)(positions)

    def _force_law(self, coupling: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """The forces as a function of the positions alone, with the coupling prepared.

        Both laws use ``sum_j w_ij (r_i - r_j) = (sum_j w_ij) r_i - (W r)_i``, one batched
        matrix product and no ``(S, N, N, 2)`` array. Springs have constant weights, so
        ``L = diag(W 1) - W`` is formed once and ``F = L r``.
        """
        if self.system == "springs":
            diagonal = np.arange(self.num_particles)
            laplacian = -coupling
            laplacian[:, diagonal, diagonal] = coupling.sum(-1)
            return lambda positions: self._clip(laplacian @ positions)

        def coulomb(positions: np.ndarray) -> np.ndarray:
            x, y = positions[..., 0], positions[..., 1]
            dx, dy = x[:, :, None] - x[:, None, :], y[:, :, None] - y[:, None, :]
            squared = dx * dx + dy * dy
            # the floor only keeps 0 / 0 off the diagonal (and off coincident particles,
            # whose offset is 0): at 1e-6 apart the force is far past max_force anyway
            np.maximum(squared, _MIN_SQUARED_DISTANCE, out=squared)
            weights = coupling / (squared * np.sqrt(squared))
            ones = np.ones_like(positions[..., :1])
            products = weights @ np.concatenate([positions, ones], axis=-1)  # W r, W 1
            return self._clip(products[..., 2:] * positions - products[..., :2])

        return coulomb

    def _clip(self, forces: np.ndarray) -> np.ndarray:
        return np.clip(forces, -self.max_force, self.max_force, out=forces)

    def reflect(self, positions: np.ndarray, velocities: np.ndarray) -> None:
        """Bounce particles that crossed a wall back into the box, in place.

        A coordinate past ``box_size`` is mirrored at the wall and its velocity
        component turned inward (elastic collision).

        Args:
            positions: particle positions, reflected in place.
            velocities: particle velocities, turned in place.

        Shapes:
            - positions, velocities: ``(S, N, 2)``, modified in place
        """
        outside = np.abs(positions) > self.box_size
        if not outside.any():
            return
        crossed = positions[outside]
        side = np.sign(crossed)
        positions[outside] = 2 * self.box_size * side - crossed
        velocities[outside] = -side * np.abs(velocities[outside])

    def energy(
        self, positions: np.ndarray, velocities: np.ndarray, coupling: np.ndarray
    ) -> np.ndarray:
        """Total energy, kinetic plus the pair potentials (walls store none).

        Args:
            positions: particle positions.
            velocities: particle velocities.
            coupling: from :meth:`sample_interactions`.

        Returns:
            ``sum_i |v_i|^2 / 2 + sum_{i<j} U_ij`` per simulation, float64.

        Shapes:
            - positions, velocities: ``(S, N, 2)``; coupling: ``(S, N, N)``
            - output: ``(S,)``
        """
        kinetic = 0.5 * (velocities**2).sum((-2, -1))
        offsets = positions[:, :, None, :] - positions[:, None, :, :]
        squared = (offsets**2).sum(-1)
        if self.system == "springs":
            pair_potentials = -0.5 * coupling * squared
        else:
            distances = np.sqrt(squared)
            pair_potentials = np.divide(
                coupling, distances, out=np.zeros_like(distances), where=distances > 0
            )
        return kinetic + 0.5 * pair_potentials.sum((-2, -1))  # each pair counted twice

    def integrate(
        self,
        positions: np.ndarray,
        velocities: np.ndarray,
        coupling: np.ndarray,
        num_samples: int,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run every simulation for ``num_samples * sample_interval`` steps.

        Args:
            positions: initial positions (not modified).
            velocities: initial velocities (not modified).
            coupling: from :meth:`sample_interactions`.
            num_samples: ``T``, recorded states; the first is ``sample_interval``
                steps after the initial state.
            progress: called after each recorded state with ``S``, the number of
                states just recorded (one per simulation).

        Returns:
            ``(positions, velocities)`` at the recorded steps, float64.

        Shapes:
            - positions, velocities: ``(S, N, 2)``; coupling: ``(S, N, N)``
            - outputs: ``(S, T, N, 2)``
        """
        positions, velocities = positions.copy(), velocities.copy()
        recorded_positions = np.empty((positions.shape[0], num_samples, *positions.shape[1:]))
        recorded_velocities = np.empty_like(recorded_positions)
        forces = self._force_law(coupling)
        self.reflect(positions, velocities)
        velocities += self.dt * forces(positions)
        for sample in range(num_samples):
            for step in range(self.sample_interval):
                positions += self.dt * velocities
                self.reflect(positions, velocities)
                if step == self.sample_interval - 1:
                    recorded_positions[:, sample] = positions
                    recorded_velocities[:, sample] = velocities
                velocities += self.dt * forces(positions)
            if progress is not None:
                progress(positions.shape[0])
        return recorded_positions, recorded_velocities

    def simulate(
        self,
        num_simulations: int,
        num_samples: int,
        rng: np.random.Generator,
        chunk_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw and run ``S`` simulations: trajectories and ground-truth edge types.

        Every random draw happens before integration, so the result depends on ``rng``
        alone, not on ``chunk_size``.

        Args:
            num_simulations: ``S``.
            num_samples: ``T``, recorded states per trajectory.
            rng: the random generator.
            chunk_size: simulations integrated at once; by default ``50000 / N^2``
                (2000 for 5 particles), which keeps the ``(S, N, N)`` arrays in cache.
            progress: see :meth:`integrate`.

        Returns:
            ``(trajectories, edges)``: float32 states ``(x, y, vx, vy)`` of every
            particle at every recorded step, and int64 edge types (see
            :meth:`sample_interactions`) of the ordered pairs ``(i, j)``, ``i != j``,
            row-major (``i`` outer), like :func:`~catlight.data.fully_connected_edge_index`.

        Shapes:
            - trajectories: ``(S, N, T, 4)``
            - edges: ``(S, N (N - 1))``
        """
        coupling, edge_types = self.sample_interactions(num_simulations, rng)
        positions, velocities = self.sample_initial_state(num_simulations, rng)
        trajectories = np.empty((num_simulations, self.num_particles, num_samples, 4), np.float32)
        chunk_size = chunk_size or max(1, _CHUNK_PAIRS // self.num_particles**2)
        for start in range(0, num_simulations, chunk_size):
            chunk = slice(start, start + chunk_size)
            states = self.integrate(
                positions[chunk], velocities[chunk], coupling[chunk], num_samples, progress
            )
            trajectories[chunk] = np.concatenate(states, axis=-1).transpose(0, 2, 1, 3)
        off_diagonal = ~np.eye(self.num_particles, dtype=bool)
        return trajectories, edge_types[:, off_diagonal]


def random_spanning_trees(
    num_graphs: int, num_vertices: int, rng: np.random.Generator
) -> np.ndarray:
    """Uniformly random spanning trees of the complete graph (Aldous-Broder).

    A random walk moves, in every graph at once, to a uniformly chosen other vertex;
    the edges by which it first enters each vertex form a spanning tree, and every one
    of the ``n^(n-2)`` trees is equally likely (Aldous 1990, Broder 1989).

    Args:
        num_graphs: ``S``, independent trees.
        num_vertices: ``N``, vertices per tree (at least 2).
        rng: the random generator.

    Returns:
        Boolean adjacency matrices with ``N - 1`` undirected edges each.

    Shapes:
        - output: ``(S, N, N)``, symmetric, zero diagonal

    Example::

        >>> trees = random_spanning_trees(3, 4, np.random.default_rng(0))
        >>> trees.sum((1, 2)).tolist()  # 3 edges, each stored in both directions
        [6, 6, 6]
    """
    start = rng.integers(0, num_vertices, num_graphs)
    parent_of = _first_entrance_trees(start, num_vertices, rng)
    return parent_of | parent_of.transpose(0, 2, 1)


def random_arborescences(
    num_graphs: int, num_vertices: int, rng: np.random.Generator
) -> np.ndarray:
    """Uniformly random arborescences rooted at vertex 0 (Aldous-Broder from the root).

    The random walk of :func:`random_spanning_trees`, started at vertex 0: the edge by
    which it first enters a vertex points from its parent to it, and the first-entrance
    tree is uniform over the ``n^(n-2)`` spanning trees, each oriented away from the root.

    Args:
        num_graphs: ``S``, independent arborescences.
        num_vertices: ``N``, vertices per arborescence (at least 2).
        rng: the random generator.

    Returns:
        Boolean matrices, ``[s, i, j]`` true when ``i`` is the parent of ``j``: every
        vertex but 0 has one parent.

    Shapes:
        - output: ``(S, N, N)``, zero diagonal, zero column 0
    """
    return _first_entrance_trees(np.zeros(num_graphs, dtype=np.int64), num_vertices, rng)


def _first_entrance_trees(
    start: np.ndarray, num_vertices: int, rng: np.random.Generator
) -> np.ndarray:
    """The random walks' first-entrance edges, ``[s, i, j]`` true when ``i`` is ``j``'s parent.

    Every graph's walk starts at its ``start`` vertex and moves to a uniformly chosen
    other vertex at each step, all graphs at once, until it has visited every vertex.

    Shapes:
        - start: ``(S,)`` int64
        - output: ``(S, N, N)`` bool
    """
    graphs = np.arange(start.shape[0])
    parent_of = np.zeros((start.shape[0], num_vertices, num_vertices), dtype=bool)
    visited = np.zeros((start.shape[0], num_vertices), dtype=bool)
    current = start
    visited[graphs, current] = True
    while not visited.all():
        following = (current + rng.integers(1, num_vertices, start.shape[0])) % num_vertices
        entered = ~visited[graphs, following]
        parent_of[graphs[entered], current[entered], following[entered]] = True
        visited[graphs, following] = True
        current = following
    return parent_of
