"""Training throughput: 1 vs 2 DDP processes on CPU, and fp32 vs mixed precision on a GPU.

Each row is a separate ``Trainer.fit`` in its own process (DDP relaunches its command
line, so the table's driver never trains itself). A row trains ``--steps`` batches of
``--batch-size`` examples per process and is timed from the start of step
``--warmup`` to the end of training (start-up, compilation of kernels and the first
steps excluded); samples/s counts the examples of all processes. Validation and
checkpointing are off, the logger and progress bar too.

    python benchmarks/scaling.py --data-dir data/binarized_mnist --preset quick   # CPU rows
    python benchmarks/scaling.py --data-dir DIR --preset full               # + GPU rows
    python benchmarks/scaling.py --data-dir DIR --models nri m2 --steps 30  # shorter rows

The models are a table (``MODELS``): adding a family's model is one entry. The VAE
reads ``binarized_mnist.npz`` from ``--data-dir``; M2 reads Fashion-MNIST from
``--data-dir/fashion-mnist`` or Debian's ``/usr/share/datasets/fashion-mnist``
(downloading it otherwise); NRI's springs are simulated into ``--root-dir`` on first
use and cached there.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer

from catlight.data import BinarizedMNISTDataModule
from catlight.latent import DiscreteLatent, GumbelSoftmax, Softmax
from catlight.tasks.nri import NRI, ParticlesDataModule
from catlight.tasks.semisupervised import SemiSupervisedFashionMNISTDataModule, SemiSupervisedVAE
from catlight.tasks.vae import CategoricalVAE

Builder = Callable[[Path, Path, int], tuple[LightningModule, LightningDataModule]]


def vae(
    data_dir: Path, work_dir: Path, batch_size: int
) -> tuple[LightningModule, LightningDataModule]:
    """The Gumbel-Softmax paper's categorical VAE (20 x 10 latent, 784-512-256 MLPs)."""
    model = CategoricalVAE(DiscreteLatent(10, Softmax(), GumbelSoftmax(tau=1.0)))
    data = BinarizedMNISTDataModule(data_dir=str(data_dir), batch_size=batch_size)
    return model, data


def nri(
    data_dir: Path, work_dir: Path, batch_size: int
) -> tuple[LightningModule, LightningDataModule]:
    """The NRI paper's springs-5 model: MLP encoder and decoder of width 256, GS(0.5).

    Trains on 5,000 simulations of 49 states (simulated into ``work_dir`` once).
    """
    data = ParticlesDataModule(
        data_dir=str(work_dir / "particles"),
        num_train=5000,
        num_valid=100,
        num_test=100,
        batch_size=batch_size,
    )
    return NRI(), data


# labeled images per step and process (at most 100 / the most processes of a row)
M2_LABELED_BATCH = 50


def m2(
    data_dir: Path, work_dir: Path, batch_size: int
) -> tuple[LightningModule, LightningDataModule]:
    """Kingma et al.'s M2 (hidden 500, z of 50) with Exact marginalisation over 10 labels.

    Fashion-MNIST with 100 labels; each step adds 50 labeled images per process to
    the ``batch_size`` unlabeled ones that samples/s counts.
    """
    data = SemiSupervisedFashionMNISTDataModule(
        data_dir=str(data_dir),
        num_labeled=100,
        labeled_batch_size=M2_LABELED_BATCH,
        batch_size=batch_size,
    )
    return SemiSupervisedVAE(), data


# model name -> builder of (model, data module) from the data folder, the work folder
# and the batch size per process
MODELS: dict[str, Builder] = {"vae": vae, "nri": nri, "m2": m2}


@dataclass(frozen=True)
class Preset:
    """How long each row trains, and which rows run."""

    steps: int
    warmup: int
    cpu_processes: tuple[int, ...]
    gpu_precisions: tuple[str, ...]


PRESETS = {
    "quick": Preset(steps=60, warmup=10, cpu_processes=(1, 2), gpu_precisions=()),
    "full": Preset(
        steps=500,
        warmup=50,
        cpu_processes=(1, 2),
        gpu_precisions=("32-true", "bf16-mixed", "16-mixed"),
    ),
}


class _Timer(Callback):
    """Wall time from the start of step ``warmup`` to the end of training."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup and not hasattr(self, "start"):
            _synchronize(pl_module.device)
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        _synchronize(pl_module.device)
        self.seconds = time.perf_counter() - self.start


def run_row(args: argparse.Namespace) -> None:
    """Train one row (in this process and, under DDP, the ranks it launches)."""
    torch.manual_seed(0)
    model, data = MODELS[args.model](args.data_dir, Path(args.root_dir), args.batch_size)
    timer = _Timer(args.warmup)
    trainer = Trainer(
        accelerator=args.accelerator,
        devices=args.processes,
        strategy="ddp" if args.processes > 1 else "auto",
        precision=args.precision,
        max_steps=args.steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        logger=False,
        callbacks=[timer],
        default_root_dir=args.root_dir,
    )
    trainer.fit(model, datamodule=data)
    if trainer.is_global_zero:
        samples = (args.steps - args.warmup) * args.batch_size * trainer.world_size
        print(json.dumps({"samples_per_second": samples / timer.seconds}))


def measure(args: argparse.Namespace, accelerator: str, processes: int, precision: str) -> float:
    """Samples per second of one row, trained in a fresh process."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--row",
        f"--data-dir={args.data_dir}",
        f"--model={args.model}",
        f"--accelerator={accelerator}",
        f"--processes={processes}",
        f"--precision={precision}",
        f"--batch-size={args.batch_size}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        f"--root-dir={args.root_dir}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{result.stderr[-3000:]}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])["samples_per_second"]


def main() -> None:
    """Measure the preset's rows and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=100, help="per process")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per process")
    parser.add_argument("--root-dir", default="/tmp/catlight_scaling")
    parser.add_argument("--steps", type=int, help="steps per row (default: the preset's)")
    parser.add_argument("--warmup", type=int, help="untimed steps (default: the preset's)")
    # one row, run by measure() in a child process
    parser.add_argument("--row", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=list(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--accelerator", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="32-true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        run_row(args)
        return
    preset = PRESETS[args.preset]
    args.steps = args.steps or preset.steps
    args.warmup = preset.warmup if args.warmup is None else args.warmup
    if not 0 <= args.warmup < args.steps:
        parser.error(f"--warmup must be in [0, --steps = {args.steps}), got {args.warmup}")

    print(f"`python benchmarks/scaling.py {shlex.join(sys.argv[1:])}`\n")
    print(
        f"torch {torch.__version__}, batch {args.batch_size} per process, {args.steps} "
        f"steps ({args.warmup} untimed), {args.threads} thread(s) per process, "
        f"{os.cpu_count()} CPU cores\n"
    )
    for name in args.models:
        print(f"- {name}: {_first_line(MODELS[name].__doc__)}")
    print("\n| model | device | processes | precision | samples / s | vs 1 process |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        args.model = name
        single = None
        for processes in preset.cpu_processes:
            rate = measure(args, "cpu", processes, "32-true")
            single = single or rate
            print(
                f"| {name} | CPU (gloo) | {processes} | 32-true | {rate:,.0f} | "
                f"{rate / single:.2f}x |",
                flush=True,
            )
    if preset.gpu_precisions and torch.cuda.is_available():
        print(f"\n{torch.cuda.get_device_name()}, one process\n")
        print("| model | precision | samples / s | vs 32-true |")
        print("|---|---|---|---|")
        for name in args.models:
            args.model = name
            fp32 = None
            for precision in preset.gpu_precisions:
                rate = measure(args, "gpu", 1, precision)
                fp32 = fp32 or rate
                print(f"| {name} | {precision} | {rate:,.0f} | {rate / fp32:.2f}x |", flush=True)
    elif preset.gpu_precisions:
        print("\n(no GPU here: the fp32 / bf16-mixed / 16-mixed rows were skipped)")


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
