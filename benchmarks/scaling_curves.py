"""How cost grows: layer time against K and N, VAE throughput against batch size.

Three sweeps, each drawn as a log-log figure under ``docs/results/`` and appended to
``docs/results/scaling_curves.csv``:

- ``K``: forward + backward of the layer (``out = layer(scores)``, a fixed random
  linear cost, ``out.objective(cost).sum().backward()``) for K = 2, 4, ..., 4096 at
  N = 16 and B = 64, for Softmax and Catnat with Gumbel-Softmax, straight-through,
  LeaveOneOut(4) and CARMS(4);
- ``N``: the same for N = 1, 2, ..., 256 at K = 64;
- ``batch``: training samples/s of the categorical VAE (20 x 10 latent, 784-512-256
  MLPs, Gumbel-Softmax; the plain ``CategoricalVAE.loss`` loop of
  ``vae_throughput.py``) for batch sizes 16 to 1024.

Each point is the median of ``--repeats`` timed calls after one warm-up call. On a CPU
the time is process CPU time (single-threaded by default, so other processes on the
machine barely move it); on CUDA it is synchronised wall time. The growth exponent of
each curve (the slope of log time against log K or log N) is fitted on the upper half
of the sweep, where fixed per-call costs no longer dominate, and printed.

    python benchmarks/scaling_curves.py --data-dir DIR --threads 1
    python benchmarks/scaling_curves.py --data-dir DIR --device cuda

Needs matplotlib (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib
import torch
from _common import PARAMETERIZATIONS_BY_NAME
from _results import append_row
from estimator_speed import layer_step
from vae_throughput import train_loop

from catlight.data import BinarizedMNISTDataModule
from catlight.latent import ESTIMATORS as ESTIMATOR_REGISTRY
from catlight.latent import DiscreteLatent, Estimator
from catlight.tasks.vae import CategoricalVAE

matplotlib.use("Agg")
from matplotlib import pyplot

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "results"
# curve label -> the registry's estimator, with its settings
ESTIMATORS: dict[str, Callable[[], Estimator]] = {
    label: ESTIMATOR_REGISTRY[name].build
    for label, name in {"GS": "gs", "ST": "st", "LOO(4)": "loo", "CARMS(4)": "carms"}.items()
}
COLUMNS = ["sweep", "curve", "categories", "variables", "batch", "ms", "samples_per_s", "device"]


def median_seconds(step: Callable[[], None], device: torch.device, repeats: int) -> float:
    """Median time of ``step`` over ``repeats`` calls after one warm-up call."""
    step()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            step()
            torch.cuda.synchronize(device)
            samples.append(time.perf_counter() - start)
        else:
            start = time.process_time()
            step()
            samples.append(time.process_time() - start)
    return statistics.median(samples)


def layer_seconds(
    estimator: Callable[[], Estimator],
    parameterization: Callable[[], torch.nn.Module],
    shape: tuple[int, int, int],
    device: torch.device,
    repeats: int,
) -> float:
    """Forward + backward time of the layer at ``shape = (B, N, K)``."""
    batch, num_variables, num_categories = shape
    layer = DiscreteLatent(num_categories, parameterization(), estimator()).to(device)
    scores = torch.randn(batch, num_variables, layer.num_scores, device=device)
    weights = torch.randn(num_variables, num_categories, device=device)
    return median_seconds(layer_step(layer, scores.requires_grad_(True), weights), device, repeats)


def growth(sizes: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log time against log size over the upper half."""
    half = len(sizes) // 2
    xs = [math.log(size) for size in sizes[half:]]
    ys = [math.log(value) for value in seconds[half:]]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return covariance / sum((x - mean_x) ** 2 for x in xs)


def layer_sweep(args: argparse.Namespace, sweep: str, sizes: list[int]) -> dict[str, list[float]]:
    """Time every estimator x parameterization along one sweep; return seconds per curve."""
    curves: dict[str, list[float]] = {}
    for size in sizes:
        shape = (args.batch, args.variables, size) if sweep == "K" else (args.batch, size, 64)
        for estimator_name, estimator in ESTIMATORS.items():
            for param_name, parameterization in PARAMETERIZATIONS_BY_NAME.items():
                curve = f"{param_name} {estimator_name}"
                seconds = layer_seconds(
                    estimator, parameterization, shape, args.device, args.repeats
                )
                curves.setdefault(curve, []).append(seconds)
                append_row(
                    "scaling_curves",
                    {"sweep": sweep, "curve": curve, "categories": shape[2],
                     "variables": shape[1], "batch": shape[0], "ms": round(1e3 * seconds, 4),
                     "device": args.device.type},
                    COLUMNS,
                )  # fmt: skip
        print(f"{sweep} = {size}: done", flush=True)
    return curves


def vae_sweep(args: argparse.Namespace, batch_sizes: list[int]) -> list[float]:
    """Training samples/s of the VAE's loss loop per batch size."""
    data = BinarizedMNISTDataModule(data_dir=str(args.data_dir))
    data.setup()
    images = data.splits["train"][0].to(args.device)
    rates = []
    for batch_size in batch_sizes:
        steps = max(3, args.vae_samples // batch_size)
        torch.manual_seed(0)
        train_loop(CategoricalVAE(), images, batch_size, 2)  # warm-up
        wall, cpu = train_loop(CategoricalVAE(), images, batch_size, steps)
        rate = steps * batch_size / (cpu if args.device.type == "cpu" else wall)
        rates.append(rate)
        print(f"VAE batch {batch_size}: {rate:,.0f} samples/s", flush=True)
        append_row(
            "scaling_curves",
            {"sweep": "batch", "curve": "VAE GS softmax 20x10", "categories": 10,
             "variables": 20, "batch": batch_size, "samples_per_s": round(rate),
             "device": args.device.type},
            COLUMNS,
        )  # fmt: skip
    return rates


def plot(
    path: Path, sizes: list[int], curves: dict[str, list[float]], xlabel: str, ylabel: str
) -> None:
    """One log-log figure, one line per curve, its fitted exponent in the legend."""
    figure, axes = pyplot.subplots(figsize=(6.4, 4.4))
    for curve, values in curves.items():
        style = "-" if curve.startswith("softmax") or "VAE" in curve else "--"
        label = f"{curve} (slope {growth(sizes, values):.2f})"
        axes.loglog(sizes, values, style, marker="o", markersize=3, label=label)
    axes.set_xscale("log", base=2)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    pyplot.close(figure)


def main() -> None:
    """Run the three sweeps, print the growth exponents, draw the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--device", type=torch.device, default=torch.device("cpu"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64, help="B of the layer sweeps")
    parser.add_argument("--variables", type=int, default=16, help="N of the K sweep")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-categories", type=int, default=4096)
    parser.add_argument("--max-variables", type=int, default=256)
    parser.add_argument("--vae-samples", type=int, default=2000, help="per batch size")
    parser.add_argument("--figures", type=Path, default=FIGURES)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    categories = [2**power for power in range(1, int(math.log2(args.max_categories)) + 1)]
    variables = [2**power for power in range(int(math.log2(args.max_variables)) + 1)]
    batch_sizes = [16, 32, 64, 128, 256, 512, 1024]
    print(f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads")
    sweeps = {
        "K": (categories, layer_sweep(args, "K", categories), "K (categories)"),
        "N": (variables, layer_sweep(args, "N", variables), "N (variables)"),
    }
    for sweep, (sizes, curves, xlabel) in sweeps.items():
        plot(args.figures / f"scaling_layer_{sweep}.png", sizes, curves, xlabel, "seconds per call")
        print(f"\ngrowth exponent in {sweep} (upper half of {sizes[0]}..{sizes[-1]}):")
        for curve, seconds in curves.items():
            print(f"- {curve}: {growth(sizes, seconds):.2f}")
    rates = vae_sweep(args, batch_sizes)
    plot(
        args.figures / "scaling_vae_batch.png",
        batch_sizes,
        {"VAE GS softmax 20x10": rates},
        "batch size",
        "training samples / s",
    )
    print(f"\nVAE samples/s growth exponent in the batch size: {growth(batch_sizes, rates):.2f}")


if __name__ == "__main__":
    main()
