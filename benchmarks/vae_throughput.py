"""What the framework costs: catlight fit against a plain PyTorch loop, same VAE.

Both train the same CategoricalVAE (784-512-256 MLPs, 20 x 10 latent) with the same
optimizer and batch size on binarized MNIST held as tensors on the device. The plain
loop is the minimum any training needs (slice, loss, backward, step); the framework
rows run ``Trainer.fit`` with the catlight data module, timed from the first to the
last training batch (start-up excluded), with validation off.

    python benchmarks/vae_throughput.py --data-dir data/binarized_mnist
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, Trainer

from catlight.data import BinarizedMNISTDataModule
from catlight.latent import DiscreteLatent, GumbelSoftmax, Softmax
from catlight.models import CategoricalVAE


def make_model(seed: int) -> CategoricalVAE:
    """The benchmarked model, identically initialised for every row."""
    torch.manual_seed(seed)
    return CategoricalVAE(DiscreteLatent(10, Softmax(), GumbelSoftmax(tau=1.0)))


def plain_loop(images: torch.Tensor, batch_size: int, steps: int, seed: int) -> float:
    """Samples per second of a hand-written loop over ``steps`` batches."""
    model = make_model(seed).to(images.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(images.shape[0], device=images.device)
    _synchronize(images.device)
    start = time.perf_counter()
    for step in range(steps):
        index = order[(step * batch_size) % (images.shape[0] - batch_size) :][:batch_size]
        loss = model.loss(images[index].float())
        optimizer.zero_grad(set_to_none=True)
        loss.mean().backward()
        optimizer.step()
    _synchronize(images.device)
    return steps * batch_size / (time.perf_counter() - start)


class _TrainTimer(Callback):
    """Wall time from the first training batch to the end of training."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == 0 and batch_idx == 0:
            _synchronize(pl_module.device)
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        _synchronize(pl_module.device)
        self.seconds = time.perf_counter() - self.start


def framework(args: argparse.Namespace, quiet: bool) -> float:
    """Samples per second of ``Trainer.fit``; ``quiet`` turns off logger and progress bar."""
    timer = _TrainTimer()
    trainer = Trainer(
        accelerator=args.accelerator,
        max_steps=args.steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_model_summary=False,
        logger=not quiet,
        enable_progress_bar=not quiet,
        default_root_dir=args.root_dir,
        callbacks=[timer],
    )
    data = BinarizedMNISTDataModule(data_dir=str(args.data_dir), batch_size=args.batch_size)
    with contextlib.redirect_stdout(sys.stderr):  # progress bars: keep stdout for the table
        trainer.fit(make_model(args.seed), datamodule=data)
    return args.steps * args.batch_size / timer.seconds


def main() -> None:
    """Time every row and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--root-dir", default="/tmp/catlight_throughput")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    device = torch.device("cuda" if args.accelerator in ("gpu", "cuda") else "cpu")
    data = BinarizedMNISTDataModule(data_dir=str(args.data_dir))
    data.setup()
    images = data.splits["train"][0].to(device)

    print(f"`python benchmarks/vae_throughput.py {shlex.join(sys.argv[1:])}`\n")
    print(
        f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, "
        f"batch {args.batch_size}, {args.steps} steps, best of {args.repeats}\n"
    )
    rows = {
        "plain PyTorch loop": lambda: plain_loop(images, args.batch_size, args.steps, args.seed),
        "catlight fit (no logger, no progress bar)": lambda: framework(args, quiet=True),
        "catlight fit (TensorBoard, progress bar)": lambda: framework(args, quiet=False),
    }
    results = {name: max(run() for _ in range(args.repeats)) for name, run in rows.items()}
    baseline = results["plain PyTorch loop"]
    print("| loop | samples / s | overhead vs plain |")
    print("|---|---|---|")
    for name, rate in results.items():
        print(f"| {name} | {rate:,.0f} | {baseline / rate - 1:+.1%} |")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
