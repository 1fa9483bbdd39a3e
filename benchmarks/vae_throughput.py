"""What the framework costs: ``catlight fit`` against hand-written PyTorch, same VAE.

Five loops train the same categorical VAE (784-512-256 MLPs, 20 x 10 latent, Adam,
Gumbel-Softmax at tau = 1) on binarized MNIST held as tensors on the device:

- ``hand-written torch``: ``nn.Sequential`` MLPs, ``F.log_softmax``,
  ``F.gumbel_softmax`` and ``F.binary_cross_entropy_with_logits`` in a plain loop with
  ``torch.optim.Adam`` at its defaults; no catlight code at all. The baseline.
- ``hand-written torch, fused Adam``: the same with ``Adam(fused=True)``, the optimizer
  catlight's tasks build by default: the baseline for what the framework itself costs.
- ``CategoricalVAE.loss loop, fused Adam``: that loop around catlight's model and layer:
  what the model and layer cost.
- ``catlight fit (quiet)``: ``catlight fit --config configs/vae/categorical/gs_softmax.yaml``
  with logger and progress bar off: what Lightning and the config's callbacks cost.
- ``catlight fit``: the same with the config's TensorBoard logger and progress bar.

Every fit row is timed from its first training batch to the end of its last one
(start-up and the one-off work after the last step excluded), with validation off
(so the config's checkpoint callbacks, which save after validation, never save).
The rows run in turn, ``--rounds`` times (the machine may be shared: alternating
spreads any load over all rows), and the table reports the median and the best
round. On a CPU the rate is also
given in process CPU time (single-threaded, it is insensitive to other processes).

    python benchmarks/vae_throughput.py --data-dir DIR --threads 1
    python benchmarks/vae_throughput.py --data-dir DIR --accelerator gpu --precision bf16-mixed

Each row is appended to ``docs/results/vae_throughput.csv``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from _results import append_row
from lightning.pytorch import Callback
from torch import Tensor, nn

from catlight.cli import CatlightCLI
from catlight.data import BinarizedMNISTDataModule

CONFIG = Path(__file__).resolve().parents[1] / "configs/vae/categorical/gs_softmax.yaml"
NUM_LATENTS, NUM_CATEGORIES = 20, 10
COLUMNS = [
    "loop",
    "samples_per_s_median",
    "samples_per_s_best",
    "cpu_samples_per_s_median",
    "ratio_to_hand_written",
    "cpu_ratio_to_hand_written",
    "batch_size",
    "steps",
    "rounds",
    "threads",
    "accelerator",
    "precision",
]


class HandWrittenVAE(nn.Module):
    """The benchmarked VAE written with plain torch only (the baseline row)."""

    def __init__(self) -> None:
        super().__init__()
        latent_size = NUM_LATENTS * NUM_CATEGORIES
        self.encoder = nn.Sequential(
            nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
            nn.Linear(256, latent_size),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(latent_size, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(),
            nn.Linear(512, 784),
        )  # fmt: skip

    def loss(self, images: Tensor) -> Tensor:
        """Negative ELBO (one relaxed sample, analytic KL to the uniform prior), ``(B,)``."""
        scores = self.encoder(images).unflatten(-1, (NUM_LATENTS, NUM_CATEGORIES))
        log_probs = F.log_softmax(scores, -1)
        z = F.gumbel_softmax(log_probs, tau=1.0)
        logits = self.decoder(z.flatten(-2))
        nll = F.binary_cross_entropy_with_logits(logits, images, reduction="none").sum(-1)
        kl = (log_probs.exp() * (log_probs + math.log(NUM_CATEGORIES))).sum((-2, -1))
        return nll + kl


def train_loop(
    model: nn.Module, images: Tensor, batch_size: int, steps: int, *, fused: bool = False
) -> tuple[float, float]:
    """Wall and CPU seconds of ``steps`` Adam steps of ``model.loss`` on shuffled batches.

    ``fused``: Adam's fused kernel; False keeps ``torch.optim.Adam``'s default.
    """
    model = model.to(images.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    order = torch.randperm(images.shape[0], device=images.device)
    _synchronize(images.device)
    start, cpu_start = time.perf_counter(), time.process_time()
    for step in range(steps):
        index = order[(step * batch_size) % (images.shape[0] - batch_size) :][:batch_size]
        loss = model.loss(images[index].float())
        optimizer.zero_grad(set_to_none=True)
        loss.mean().backward()
        optimizer.step()
    _synchronize(images.device)
    return time.perf_counter() - start, time.process_time() - cpu_start


class _TrainTimer(Callback):
    """Wall and CPU time from the start of the first training batch to the end of the last.

    The one-off work after the last step (a last checkpoint, closing the logger) is not
    per-step overhead and stays out.
    """

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == 0 and batch_idx == 0:
            _synchronize(pl_module.device)
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == trainer.max_steps:
            _synchronize(pl_module.device)
            self.seconds = time.perf_counter() - self.start
            self.cpu_seconds = time.process_time() - self.cpu_start


def catlight_fit(args: argparse.Namespace, quiet: bool) -> tuple[float, float]:
    """Wall and CPU seconds of ``catlight fit`` on the config, validation off."""
    overrides = {
        "data.init_args.data_dir": str(args.data_dir),
        "data.init_args.batch_size": args.batch_size,
        "trainer.max_steps": args.steps,
        "trainer.limit_val_batches": 0,
        "trainer.num_sanity_val_steps": 0,
        "trainer.enable_model_summary": False,
        "trainer.accelerator": args.accelerator,
        "trainer.devices": 1,
        "trainer.precision": args.precision,
        "trainer.default_root_dir": args.root_dir,
    }
    if quiet:
        overrides |= {"trainer.logger": False, "trainer.enable_progress_bar": False}
    command = ["--config", str(CONFIG)]
    for key, value in overrides.items():
        command += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    with contextlib.redirect_stdout(sys.stderr):  # progress bars: keep stdout for the table
        cli = CatlightCLI(args=command, run=False)
        timer = _TrainTimer()
        cli.trainer.callbacks.append(timer)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return timer.seconds, timer.cpu_seconds


def main() -> None:
    """Time every row in turn, ``--rounds`` times; print the table and write the CSV rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--root-dir", default="/tmp/catlight_throughput")
    parser.add_argument("--no-csv", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    device = torch.device("cuda" if args.accelerator in ("gpu", "cuda") else "cpu")
    data = BinarizedMNISTDataModule(data_dir=str(args.data_dir))
    data.setup()
    images = data.splits["train"][0].to(device)
    autocast = _autocast(device, args.precision)

    def loop(build: Callable[[], nn.Module], fused: bool) -> Callable[[], tuple[float, float]]:
        def run() -> tuple[float, float]:
            with autocast():
                return train_loop(build(), images, args.batch_size, args.steps, fused=fused)

        return run

    rows: dict[str, Callable[[], tuple[float, float]]] = {
        "hand-written torch": loop(HandWrittenVAE, fused=False),
        "hand-written torch, fused Adam": loop(HandWrittenVAE, fused=True),
        "CategoricalVAE.loss loop, fused Adam": loop(_config_model, fused=True),
        "catlight fit (quiet)": lambda: catlight_fit(args, quiet=True),
        "catlight fit": lambda: catlight_fit(args, quiet=False),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, run in rows.items():
            times[name].append(run())

    samples = args.steps * args.batch_size
    print(f"`python benchmarks/vae_throughput.py {shlex.join(sys.argv[1:])}`\n")
    print(
        f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, "
        f"precision {args.precision}, batch {args.batch_size}, {args.steps} steps, "
        f"{args.rounds} alternating rounds\n"
    )
    baseline = statistics.median(samples / wall for wall, _ in times["hand-written torch"])
    cpu_baseline = statistics.median(samples / cpu for _, cpu in times["hand-written torch"])
    print(
        "| loop | samples/s (median) | best | vs hand-written | CPU-time samples/s (median) "
        "| vs hand-written (CPU time) |"
    )
    print("|---|---|---|---|---|---|")
    for name, runs in times.items():
        median = statistics.median(samples / wall for wall, _ in runs)
        best = max(samples / wall for wall, _ in runs)
        cpu = statistics.median(samples / cpu for _, cpu in runs)
        ratio, cpu_ratio = median / baseline, cpu / cpu_baseline
        print(
            f"| {name} | {median:,.0f} | {best:,.0f} | {ratio:.2f}x | {cpu:,.0f} "
            f"| {cpu_ratio:.2f}x |"
        )
        if not args.no_csv:
            append_row(
                "vae_throughput",
                {
                    "loop": name,
                    "samples_per_s_median": round(median),
                    "samples_per_s_best": round(best),
                    "cpu_samples_per_s_median": round(cpu),
                    "ratio_to_hand_written": round(ratio, 3),
                    "cpu_ratio_to_hand_written": round(cpu_ratio, 3),
                    "batch_size": args.batch_size,
                    "steps": args.steps,
                    "rounds": args.rounds,
                    "threads": torch.get_num_threads(),
                    "accelerator": device.type,
                    "precision": args.precision,
                },
                COLUMNS,
            )


def _config_model() -> nn.Module:
    """The config's model, built by the CLI exactly as ``catlight fit`` builds it."""
    with contextlib.redirect_stdout(sys.stderr):
        return CatlightCLI(["--config", str(CONFIG)], run=False).model


def _autocast(
    device: torch.device, precision: str
) -> Callable[[], contextlib.AbstractContextManager]:
    """The autocast context of a Lightning precision setting, for the plain loops."""
    dtypes = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
    if precision not in dtypes:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=dtypes[precision])


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
