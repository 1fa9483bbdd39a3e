"""Gradient quality and speed of catlight's estimators, as two markdown tables.

Table 1, gradient quality on a toy problem (the toy of Dimitriev & Zhou 2021, CARMS). N categorical
variables with K categories have probabilities drawn once from Dirichlet(1, ..., 1)
(fixed seed) and a random cost vector ``c_n`` each. Two costs:

- ``linear``: ``f(z) = sum_n z_n . c_n`` with N = 1;
- ``squared``: ``f(z) = (sum_n z_n . c_n)^2`` with N = 3 (couples the variables).

Softmax scores are ``log p``. Catnat scores are fixed N(0, 1) draws, so the two
parameterizations describe *different* distributions and their gradients live in
different coordinates: compare estimators within one parameterization only. Every
sampling estimator gets the same budget of n cost evaluations per gradient estimate
(``--evaluations``, default 4); Exact evaluates all K^N configurations and is listed for
reference. R replicate estimates are drawn in one forward pass by expanding the scores
along a batch dimension of size R; their gradient comes from
``out.objective(cost).sum().backward()``. The exact gradient of ``E[f]`` is computed
independently by enumerating the K^N configurations (``itertools.product``, float64
on top of the float32 parameterization, autograd). Per row:

- bias (SE): ``max_d |mean_d - exact_d| / SE_d`` over the gradient's D coordinates, in
  standard errors of the mean (SE floored at 1e-6 max|exact| so float32 rounding does
  not count as bias);
- unbiased?: whether that maximum stays below the level that D independent standard
  normals exceed with probability 0.1% (relaxed estimators are biased by design);
- relative bias: ``||mean - exact|| / ||exact||``;
- total variance: the trace of the covariance of the R estimates, and its ratio to
  LeaveOneOut's on the same toy, K and parameterization.

Table 2, speed: forward + backward of the layer for a batch of 1024 examples with N = 20
variables, for K in {10, 1024}: ``out = layer(scores)``, a fixed random linear cost
``(z * w).sum((-2, -1))`` of shape [S, B], ``out.objective(cost).sum().backward()``.
Estimators use their default settings except n = 4 samples for Reinforce, LeaveOneOut
and CARMS; Exact is skipped (K^N configurations). The baseline is the raw
``torch.nn.functional.gumbel_softmax(scores, tau)`` call with the same cost. The time
is the median over repeats after one warm-up call (synchronised on CUDA), with the
calls of all cells interleaved; cells whose warm-up call is slow get fewer repeats,
and the table says how many.

Usage::

    python benchmarks/estimators.py --quick             # ~2 minutes on 2 idle CPU cores
    python benchmarks/estimators.py                     # full preset, ~5 minutes
    python benchmarks/estimators.py --device cuda --categories 3 10 --evaluations 8

The last line reports how much CPU other processes used during the run: timings taken
on a busy machine are inflated and noisy.

Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from _common import Preset
from estimator_quality import gradient_table
from estimator_speed import speed_table

# --------------------------------------------------------------------------- settings

PRESETS = {
    "quick": Preset(replicates=20_000, max_repeats=5, min_repeats=1, row_budget_s=2.0),
    "full": Preset(replicates=100_000, max_repeats=15, min_repeats=3, row_budget_s=10.0),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller preset (~3 min on CPU)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--seed", type=int, default=0, help="seed of the toy and the noise")
    parser.add_argument(
        "--categories", type=int, nargs="+", default=[3, 10], help="K values of table 1"
    )
    parser.add_argument(
        "--evaluations", type=int, default=4, help="cost evaluations n per gradient (table 1)"
    )
    parser.add_argument(
        "--replicates", type=int, default=None, help="R estimates per row (default: preset)"
    )
    parser.add_argument(
        "--speed-categories", type=int, nargs="+", default=[10, 1024], help="K values of table 2"
    )
    parser.add_argument("--batch", type=int, default=1024, help="batch size of table 2")
    parser.add_argument("--variables", type=int, default=20, help="N of table 2")
    parser.add_argument(
        "--tables", type=int, nargs="+", choices=[1, 2], default=[1, 2], help="tables to print"
    )
    args = parser.parse_args(argv)
    if args.evaluations < 2:
        parser.error("--evaluations must be >= 2 (LeaveOneOut and CARMS need two samples)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    return args


# ------------------------------------------------------------------ machine and load


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.machine()}, {_cpu_model()})"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown model"


@dataclass(frozen=True)
class CpuClock:
    """CPU seconds used by the whole machine and by this process, at one instant."""

    wall: float
    machine: float | None  # busy CPU seconds of all processes (Linux /proc/stat), or None
    process: float

    @classmethod
    def now(cls) -> CpuClock:
        """Read the clocks."""
        own = os.times()
        return cls(time.perf_counter(), _machine_busy_seconds(), own.user + own.system)

    def others_share(self, start: CpuClock) -> float | None:
        """Fraction of all CPUs that other processes kept busy since ``start``."""
        if self.machine is None or start.machine is None:
            return None
        others = (self.machine - start.machine) - (self.process - start.process)
        return max(others, 0.0) / ((self.wall - start.wall) * (os.cpu_count() or 1))


def _machine_busy_seconds() -> float | None:
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:8]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _load_report(start: CpuClock) -> str:
    """How much of the machine other processes used: they inflate the timings."""
    share = CpuClock.now().others_share(start)
    if share is None:
        return "CPU use of other processes unknown"
    warning = " (timings are inflated and noisy: rerun on an idle machine)" if share > 0.1 else ""
    return f"other processes used {share:.0%} of the {os.cpu_count()} CPUs meanwhile{warning}"


def main(argv: Sequence[str] | None = None) -> None:
    """Print the header, then the tables that were asked for."""
    args = parse_args(argv)
    preset = PRESETS["quick" if args.quick else "full"]
    device = torch.device(args.device)
    command = shlex.join(["python", sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    print("## catlight estimator benchmark\n")
    print(f"`{command}`\n")
    print(
        f"torch {torch.__version__}, device {_device_name(device)}, "
        f"{torch.get_num_threads()} threads, preset {'quick' if args.quick else 'full'}\n"
    )
    start = CpuClock.now()
    if 1 in args.tables:
        print("### Table 1: gradient quality on the toy\n")
        print(gradient_table(args, preset, device), end="\n\n", flush=True)
    if 2 in args.tables:
        print("### Table 2: forward + backward time\n")
        print(speed_table(args, preset, device), end="\n\n", flush=True)
    print(f"Total wall time: {time.perf_counter() - start.wall:.0f} s; {_load_report(start)}.")


if __name__ == "__main__":
    main()
