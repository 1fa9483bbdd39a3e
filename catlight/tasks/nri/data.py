"""Simulated interacting particles for Neural Relational Inference (NRI).

:class:`ParticlesDataModule` simulates a data set with the
:class:`~catlight.tasks.nri.simulation.ParticleSystem` once per node (local rank 0,
in ``prepare_data``),
caches it in ``data_dir`` under a name derived from every setting that changes the data,
and serves normalised trajectories with the ground-truth interaction graph.

A batch is a tuple ``(trajectories, edges)``:

- ``trajectories`` float32 ``(B, N, T, 4)``: ``(x, y, vx, vy)`` of each of the ``N``
  particles at each of the ``T`` recorded steps, positions and velocities each mapped
  to ``[-1, 1]`` by the training set's minimum and maximum (as NRI does);
- ``edges`` int64 ``(B, N (N - 1))``: the edge type of each ordered pair ``(i, j)``,
  ``i != j``, in the order of :func:`fully_connected_edge_index` (sender ``i`` outer,
  receiver ``j`` inner). Springs: 1 where a spring joins the pair, else 0. Charged:
  1 where the charges have the same sign (repel), 0 where they differ (attract).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
from jsonargparse import ArgumentParser
from torch import Tensor

from catlight.data.cache import can_write_to, write_atomically
from catlight.data.checks import check_array, load_npz
from catlight.data.tensor_data_module import TensorDataModule
from catlight.tasks.nri.simulation import Graph, ParticleSystem, System

__all__ = ["ParticlesDataModule", "simulate_main"]

SPLITS = ("train", "valid", "test")
# bump when the simulation changes in a way the settings do not show
_FORMAT_VERSION = 1


class ParticlesDataModule(TensorDataModule):
    """Springs or charged particles in a box, simulated once and cached (NRI's data sets).

    Defaults are the published settings: walls at +-5, ``dt`` 0.001, a state every 100
    steps, 49 states per training and validation trajectory and 99 per test trajectory,
    50,000 / 10,000 / 10,000 simulations. Each split has its own random stream derived
    from ``seed``, so a split's data do not depend on the sizes of the others.

    Args:
        data_dir: folder of the cached ``.npz`` (created when missing).
        system: ``"springs"`` or ``"charged"``.
        num_particles: particles per simulation.
        graph: ``"random"`` (each pair interacts with probability 1/2), ``"tree"``
            (springs along a uniformly random spanning tree) or ``"directed_tree"``
            (along a uniformly random arborescence rooted at particle 0, each spring
            pulling the child only; the edge labels mark parent -> child).
        num_train: training simulations.
        num_valid: validation simulations.
        num_test: test simulations.
        train_steps: recorded states per training and validation trajectory.
        test_steps: recorded states per test trajectory.
        sample_interval: integration steps between recorded states.
        dt: integration step.
        box_size: walls at ``+-box_size``.
        seed: seed of the simulations and of the shuffling.
        batch_size: training batch size per process.
        eval_batch_size: validation and test batch size (``batch_size`` when None).
        on_device: keep the data on the training device (no DataLoader workers).

    Raises:
        ValueError: for an invalid setting (see also
            :class:`~catlight.tasks.nri.simulation.ParticleSystem`).

    Attributes:
        position_min, position_max: training minimum and maximum of the coordinates,
            mapped to -1 and 1 (set by :meth:`setup`).
        velocity_min, velocity_max: the same for the velocity components.
    """

    def __init__(
        self,
        data_dir: str = "data",
        system: System = "springs",
        num_particles: int = 5,
        graph: Graph = "random",
        num_train: int = 50000,
        num_valid: int = 10000,
        num_test: int = 10000,
        train_steps: int = 49,
        test_steps: int = 99,
        sample_interval: int = 100,
        dt: float = 0.001,
        box_size: float = 5.0,
        seed: int = 42,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        on_device: bool = True,
    ) -> None:
        super().__init__(
            batch_size, batch_size if eval_batch_size is None else eval_batch_size, on_device, seed
        )
        self.physics = ParticleSystem(system, num_particles, graph, dt, box_size, sample_interval)
        counts = {
            "num_train": num_train,
            "num_valid": num_valid,
            "num_test": num_test,
            "train_steps": train_steps,
            "test_steps": test_steps,
            "batch_size": batch_size,
            "eval_batch_size": batch_size if eval_batch_size is None else eval_batch_size,
        }
        for name, value in counts.items():
            if value < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be >= 1, got {value}")
        self.data_dir = Path(data_dir)
        self.sizes = {"train": num_train, "valid": num_valid, "test": num_test}
        self.steps = {"train": train_steps, "valid": train_steps, "test": test_steps}
        self.position_min: float | None = None
        self.position_max: float | None = None
        self.velocity_min: float | None = None
        self.velocity_max: float | None = None

    @property
    def train_steps(self) -> int:
        """``T``, steps of the training and validation trajectories (the model reads them)."""
        return self.steps["train"]

    @property
    def num_particles(self) -> int:
        """``N``, particles per simulation."""
        return self.physics.num_particles

    @property
    def num_edges(self) -> int:
        """``N (N - 1)``, ordered pairs of distinct particles."""
        return self.num_particles * (self.num_particles - 1)

    @property
    def num_edge_types(self) -> int:
        """Values an edge label takes (2 for springs and charges)."""
        return 2

    def settings(self) -> dict:
        """Everything that determines the data, including the fixed physical constants."""
        physics = self.physics
        return {
            "format_version": _FORMAT_VERSION,
            **asdict(physics),
            "interaction_strength": physics.interaction_strength,
            "position_std": physics.position_std,
            "speed": physics.speed,
            "max_force": physics.max_force,
            "sizes": self.sizes,
            "steps": self.steps,
            "seed": self.seed,
        }

    @property
    def cache_path(self) -> Path:
        """The ``.npz`` holding this data set: ``particles_<system><N>_<graph>_<key>.npz``.

        The key is a hash of :meth:`settings`, so any change of them names a new file.
        """
        text = json.dumps(self.settings(), sort_keys=True)
        key = hashlib.sha256(text.encode()).hexdigest()[:16]
        physics = self.physics
        name = f"particles_{physics.system}{physics.num_particles}_{physics.graph}_{key}.npz"
        return self.data_dir / name

    def prepare_data(self) -> None:
        """Simulate every split and write the cache, unless it exists (local rank 0).

        The cache is written under a unique temporary name and renamed, so two runs
        simulating the same data set at once both succeed. When ``data_dir`` cannot
        be written, nothing is simulated here (a warning says so) and :meth:`setup`
        simulates the data in memory.
        """
        path = self.cache_path
        if path.exists():
            return
        if not can_write_to(self.data_dir):
            warnings.warn(
                f"{self.data_dir} is not writable: {path.name} will be simulated in memory "
                "without caching it, at every start",
                stacklevel=2,
            )
            return
        arrays = self.simulate()
        settings = json.dumps(self.settings(), sort_keys=True)
        write_atomically(path, lambda file: np.savez(file, settings=settings, **arrays))

    def simulate(self, quiet: bool = False) -> dict[str, np.ndarray]:
        """Run the simulations of the three splits, reporting progress on stderr.

        Args:
            quiet: report nothing.

        Returns:
            ``<split>_trajectories`` float32 ``(S, N, T, 4)`` in physical units and
            ``<split>_edges`` int8 ``(S, N (N - 1))`` for each split.
        """
        total = sum(self.sizes[split] * self.steps[split] for split in SPLITS)
        stream = None if quiet else sys.stderr
        progress = _ProgressLine(f"simulating {self.cache_path.name}", total, stream)
        arrays = {}
        for index, split in enumerate(SPLITS):
            rng = np.random.default_rng([self.seed, index])
            trajectories, edges = self.physics.simulate(
                self.sizes[split], self.steps[split], rng, progress=progress
            )
            arrays[f"{split}_trajectories"] = trajectories
            arrays[f"{split}_edges"] = edges.astype(np.int8)
        return arrays

    def setup(self, stage: str | None = None) -> None:
        """Load and check the cache (simulating it first if missing); normalise the splits.

        Raises:
            BadDataFileError: naming the cache file if it cannot be read, lacks an
                array, or holds arrays of the wrong shape, non-finite trajectories or
                edge types out of range.
        """
        if self.splits:
            return
        if not self.cache_path.exists():
            self.prepare_data()
        if self.cache_path.exists():
            arrays = self._read_cache()
        else:
            arrays = self.simulate()
        positions, velocities = np.split(arrays["train_trajectories"], 2, axis=-1)
        self.position_min, self.position_max = float(positions.min()), float(positions.max())
        self.velocity_min, self.velocity_max = float(velocities.min()), float(velocities.max())
        for split in SPLITS:
            trajectories = torch.from_numpy(arrays[f"{split}_trajectories"])
            edges = torch.from_numpy(arrays[f"{split}_edges"].astype(np.int64))
            self.splits[split] = (self.normalize(trajectories), edges)

    def _read_cache(self) -> dict[str, np.ndarray]:
        """The cached arrays, checked against this data module's settings."""
        path = self.cache_path
        names = [f"{split}_{kind}" for split in SPLITS for kind in ("trajectories", "edges")]
        arrays = load_npz(path, names, "delete it to simulate it again")
        for split in SPLITS:
            trajectories = arrays[f"{split}_trajectories"]
            shape = (self.sizes[split], self.num_particles, self.steps[split], 4)
            check_array(path, f"array '{split}_trajectories'", trajectories, shape)
            edges = arrays[f"{split}_edges"]
            shape = (self.sizes[split], self.num_edges)
            edge_range = (0, self.num_edge_types - 1)
            check_array(path, f"array '{split}_edges'", edges, shape, edge_range, True)
        return arrays

    def _scale(self) -> tuple[Tensor, Tensor]:
        """Per-feature ``(low, high)`` of the normalisation, shape ``(4,)`` each."""
        if self.position_min is None:
            raise RuntimeError(
                f"{type(self).__name__}: the normalisation is the training set's range; "
                "call setup() first"
            )
        low = [self.position_min] * 2 + [self.velocity_min] * 2
        high = [self.position_max] * 2 + [self.velocity_max] * 2
        return torch.tensor(low), torch.tensor(high)

    def normalize(self, trajectories: Tensor) -> Tensor:
        """Map physical states to the training range ``[-1, 1]`` (after :meth:`setup`).

        Args:
            trajectories: states in physical units.

        Returns:
            The states with positions and velocities each scaled by the training range.

        Raises:
            RuntimeError: before :meth:`setup` has read the training set.

        Shapes:
            - trajectories: ``(*, 4)`` with features ``(x, y, vx, vy)``; output the same
        """
        low, high = (bound.to(trajectories) for bound in self._scale())
        return (trajectories - low) * (2 / (high - low)) - 1

    def denormalize(self, trajectories: Tensor) -> Tensor:
        """Undo :meth:`normalize`: back to positions and velocities in physical units.

        Args:
            trajectories: normalised states (data or model predictions).

        Returns:
            The states in physical units.

        Raises:
            RuntimeError: before :meth:`setup` has read the training set.

        Shapes:
            - trajectories: ``(*, 4)`` with features ``(x, y, vx, vy)``; output the same
        """
        low, high = (bound.to(trajectories) for bound in self._scale())
        return (trajectories + 1) * ((high - low) / 2) + low


def simulate_main(args: list[str] | None = None) -> Path:
    """``catlight simulate``: write a particles data set to its cache file and print its path.

    Takes the data-defining arguments of :class:`ParticlesDataModule` (``--data_dir``,
    ``--system``, ``--num_particles``, ...); training later finds the file when its data
    section has the same settings. Existing files are kept.

    Args:
        args: command-line arguments (``sys.argv[2:]`` when None).

    Returns:
        The path of the data set.

    Example::

        catlight simulate --data_dir data --system charged --num_particles 5
    """
    parser = ArgumentParser(
        prog="catlight simulate", description="Simulate and cache an NRI particles data set."
    )
    parser.add_class_arguments(
        ParticlesDataModule, skip={"batch_size", "eval_batch_size", "on_device"}
    )
    config = parser.parse_args(sys.argv[2:] if args is None else args)
    data = ParticlesDataModule(**config.as_dict())
    data.prepare_data()
    print(data.cache_path)
    return data.cache_path


class _ProgressLine:
    """A one-line progress report (percent done, elapsed and remaining seconds).

    Called with increments of work; rewrites its line at most once a second.
    """

    def __init__(self, label: str, total: int, stream: TextIO | None) -> None:
        self.label = label
        self.total = total
        self.stream = stream
        self.done = 0
        self.start = self.shown = time.monotonic()

    def __call__(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        finished = self.done >= self.total
        if self.stream is None or (now - self.shown < 1 and not finished):
            return
        self.shown = now
        elapsed = now - self.start
        remaining = elapsed * (self.total - self.done) / self.done
        line = f"\r{self.label}: {100 * self.done / self.total:5.1f}% "
        line += f"({elapsed:.0f} s, ~{remaining:.0f} s left)"
        print(line, end="\n" if finished else "", file=self.stream, flush=True)
