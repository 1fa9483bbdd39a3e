"""NRI data generation: vectorised across simulations against one loop per simulation.

Both run the same physics (:class:`catlight.data.ParticleSystem`) with the published
settings (dt 0.001, a state every 100 steps, 49 states for the 50,000 training and
10,000 validation trajectories, 99 for the 10,000 test trajectories). The vectorised
rows integrate 50,000 / N^2 simulations per numpy call (2000 for 5 particles); the loop
rows call the same integrator once per simulation, which is what the original generator
does (a Python loop over simulations, each a loop over time steps), and produce
identical trajectories.

Times on a sample are extrapolated to the whole data set by the number of recorded
states (simulations x states). The full preset generates the whole vectorised data sets
instead of a sample.

    python benchmarks/nri_simulation.py --quick
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from _common import markdown

from catlight.tasks.nri import ParticlesDataModule, ParticleSystem

# the published data set: (simulations, recorded states) per split
PUBLISHED_SPLITS = {"train": (50000, 49), "valid": (10000, 49), "test": (10000, 99)}
PUBLISHED_STATES = sum(count * steps for count, steps in PUBLISHED_SPLITS.values())


@dataclass(frozen=True)
class Preset:
    """How much each row simulates."""

    vectorised: int | None  # simulations timed (49 states each); None: the whole data set
    loop: int  # simulations timed one by one


PRESETS = {"quick": Preset(vectorised=2000, loop=5), "full": Preset(vectorised=None, loop=50)}


def cpu_model() -> str:
    """The processor's model name (from ``/proc/cpuinfo`` where there is one)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_vectorised(system: str, num_particles: int, simulations: int | None) -> tuple[float, int]:
    """Seconds and recorded states of vectorised generation (the data set when None)."""
    if simulations is None:
        data = ParticlesDataModule("unused", system, num_particles)
        start = time.perf_counter()
        data.simulate()
        return time.perf_counter() - start, PUBLISHED_STATES
    physics = ParticleSystem(system, num_particles)
    start = time.perf_counter()
    physics.simulate(simulations, 49, np.random.default_rng(0))
    return time.perf_counter() - start, simulations * 49


def time_loop(system: str, num_particles: int, simulations: int) -> tuple[float, int]:
    """Seconds and recorded states of one integrator call per simulation."""
    physics = ParticleSystem(system, num_particles)
    rng = np.random.default_rng(0)
    coupling, _ = physics.sample_interactions(simulations, rng)
    positions, velocities = physics.sample_initial_state(simulations, rng)
    start = time.perf_counter()
    for index in range(simulations):
        one = slice(index, index + 1)
        physics.integrate(positions[one], velocities[one], coupling[one], 49)
    return time.perf_counter() - start, simulations * 49


def simulation_table(
    preset: str = "quick", data_sets: tuple[tuple[str, int], ...] = (("springs", 5),)
) -> str:
    """The generation-time table (markdown) for ``data_sets`` of ``(system, particles)``."""
    settings = PRESETS[preset]
    body = []
    for system, num_particles in data_sets:
        name = f"{system}-{num_particles}"
        vectorised = time_vectorised(system, num_particles, settings.vectorised)
        loop = time_loop(system, num_particles, settings.loop)
        whole = {
            method: seconds * PUBLISHED_STATES / states
            for method, (seconds, states) in (("vectorised", vectorised), ("loop", loop))
        }
        for method, (seconds, states), label in (
            ("vectorised", vectorised, "vectorised"),
            ("loop", loop, "one loop per simulation"),
        ):
            measured = "whole data set" if states == PUBLISHED_STATES else f"{states // 49}"
            body.append(
                [
                    name,
                    label,
                    measured,
                    f"{seconds:.2f}",
                    f"{whole[method]:,.0f} s ({whole[method] / 60:.1f} min)",
                    f"{whole['loop'] / whole[method]:.0f}x",
                ]
            )
    header = [
        "data set",
        "method",
        "simulations timed",
        "time (s)",
        "70k simulations",
        "speed-up",
    ]
    return markdown(header, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_const", const="quick", dest="preset")
    preset.add_argument("--full", action="store_const", const="full", dest="preset")
    parser.add_argument(
        "--data-sets",
        nargs="+",
        default=["springs-5", "charged-5"],
        help="system-particles pairs, e.g. springs-5 charged-10",
    )
    args = parser.parse_args()
    preset_name = args.preset or "quick"
    data_sets = tuple((name, int(count)) for name, count in (s.split("-") for s in args.data_sets))
    command = shlex.join(["python", *sys.argv])
    print(f"# NRI data generation ({preset_name} preset)\n")
    print(f"`{command}`\n")
    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} cores (shared), "
        f"numpy {np.__version__}, torch {torch.__version__}, "
        f"Python {platform.python_version()}; 70k = 50k/10k simulations of 49 states "
        f"+ 10k of 99, extrapolated by recorded states\n"
    )
    print(simulation_table(preset_name, data_sets))


if __name__ == "__main__":
    main()
