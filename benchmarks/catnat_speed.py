"""Catnat against Softmax in the layer, eagerly and with ``Catnat(compile=True)``.

Times the layer's forward and backward (``out = layer(scores)``, a fixed random linear
cost, ``out.objective(cost).sum().backward()``) at K categories and N variables for
each batch size and estimator, with Softmax, Catnat and ``Catnat(compile=True)``. The
calls of one batch size go round-robin over all cells, so a change in machine load hits
them alike; each cell reports the median of its process CPU time (single-threaded, it
is barely moved by other processes on a shared machine). The compiled cells report
their first call's wall time too: that is when ``torch.compile`` compiles (a cold
cache takes longest; later processes reuse inductor's on-disk cache).

    python benchmarks/catnat_speed.py --threads 1
    python benchmarks/catnat_speed.py --categories 1024 --batches 64 256 1024 --repeats 7

Rows go to ``docs/results/catnat_speed.csv``.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Callable

import torch
from _common import markdown
from _results import append_row
from estimator_speed import layer_step

from catlight.latent import Catnat, DiscreteLatent, GumbelSoftmax, Softmax, StraightThrough

ESTIMATORS = {"GumbelSoftmax": GumbelSoftmax, "StraightThrough": StraightThrough}
PARAMETERIZATIONS = {
    "Softmax": Softmax,
    "Catnat": Catnat,
    "Catnat(compile=True)": lambda: Catnat(compile=True),
}
COLUMNS = [
    "estimator",
    "parameterization",
    "num_categories",
    "num_variables",
    "batch_size",
    "cpu_ms_median",
    "ratio_to_softmax",
    "first_call_s",
    "repeats",
    "threads",
]


def fresh_layer_step(
    parameterization: Callable[[], torch.nn.Module],
    estimator: Callable[[], torch.nn.Module],
    num_categories: int,
    num_variables: int,
    batch_size: int,
) -> Callable[[], None]:
    """:func:`estimator_speed.layer_step` of a fresh layer on fixed scores and weights."""
    layer = DiscreteLatent(num_categories, parameterization(), estimator())
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(batch_size, num_variables, layer.num_scores, generator=generator)
    weights = torch.randn(num_variables, num_categories, generator=generator)
    return layer_step(layer, scores.requires_grad_(True), weights)


def main() -> None:
    """Time every cell, print the table and append the CSV rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--categories", type=int, default=1024, help="K")
    parser.add_argument("--variables", type=int, default=20, help="N")
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per cell")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-csv", action="store_true", help="print only")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    torch.set_num_threads(args.threads)
    print(f"`python benchmarks/catnat_speed.py {shlex.join(sys.argv[1:])}`\n")
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} threads\n")

    body = []
    for batch_size in args.batches:
        steps = {
            (estimator, parameterization): fresh_layer_step(
                PARAMETERIZATIONS[parameterization],
                ESTIMATORS[estimator],
                args.categories,
                args.variables,
                batch_size,
            )
            for estimator in ESTIMATORS
            for parameterization in PARAMETERIZATIONS
        }
        first_call = {}
        for key, step in steps.items():
            start = time.perf_counter()
            step()
            first_call[key] = time.perf_counter() - start
        samples: dict[tuple[str, str], list[float]] = {key: [] for key in steps}
        for _ in range(args.repeats):
            for key, step in steps.items():
                start = time.process_time()
                step()
                samples[key].append(time.process_time() - start)
        for (estimator, parameterization), values in samples.items():
            median = statistics.median(values)
            ratio = median / statistics.median(samples[estimator, "Softmax"])
            row = {
                "estimator": estimator,
                "parameterization": parameterization,
                "num_categories": args.categories,
                "num_variables": args.variables,
                "batch_size": batch_size,
                "cpu_ms_median": round(1000 * median, 2),
                "ratio_to_softmax": round(ratio, 3),
                "first_call_s": round(first_call[estimator, parameterization], 2),
                "repeats": args.repeats,
                "threads": torch.get_num_threads(),
            }
            body.append([str(row[column]) for column in COLUMNS[:8]])
            if not args.no_csv:
                append_row("catnat_speed", row, COLUMNS)
    header = ["estimator", "parameterization", "K", "N", "B", "CPU ms (median)"]
    print(markdown([*header, "/ Softmax", "first call (s)"], body))


if __name__ == "__main__":
    main()
