"""Semi-supervised M2 (Jang et al. 2017, section 4.3): accuracy at 100 labels, and speed.

Table 1, per data set: every estimator x parameterization trained from the configs in
configs/semisupervised (``exact`` marginalises the label, the others sample it),
beside a supervised-only classifier (the same q(y|x) network, cross-entropy on the
same 100 labels, as many steps). Test accuracy, the test bounds (unlabeled: exact
marginalisation) and training samples per second.

Table 2: training samples per second (unlabeled + labeled images) of ``Trainer.fit``
for Exact against the sampling estimators with a 10-way and a 100-way label (the
100-way label trains on the same 10-class data: enough for timing).

    python benchmarks/semisupervised.py --data-dir data --preset quick
    python benchmarks/semisupervised.py --data-dir DIR --preset full --accelerator gpu
    python benchmarks/semisupervised.py --data-dir DIR --preset paper --threads 1 \
        --estimators exact --parameterizations softmax --seeds 0

``--data-dir`` holds ``mnist/`` and/or ``fashion-mnist/`` IDX files (Fashion-MNIST is
also found where Debian's ``dataset-fashion-mnist`` puts it); a data set whose files
are missing is skipped with a note. The quick preset trains each model for a few
epochs on 20,000 training images of Fashion-MNIST on a CPU; the full preset trains
the configs as written (100 epochs on all 50,000, both data sets) and is meant for a GPU.

The paper preset is a grid at the papers' budget on Fashion-MNIST, 100
labels, all 50,000 training images, ``PAPER_EPOCHS`` epochs: Exact and GS with both
parameterizations and three seeds, ST-GS and LOO with one seed, and the
supervised-only classifier with three seeds in each parameterization (seed s draws
labeled set s, so every row of seed s sees the same 100 labels). Each run logs to
TensorBoard and keeps a ``last.ckpt`` under ``--run-dir``: the same command resumes a
killed run, skips the runs whose row is already in
``docs/results/semisupervised.csv`` and appends a row for each run it finishes (the
last model is tested: the 10,000 labeled validation images are not used to pick it).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from _common import configured_estimators
from _resumable import batch_count
from _semisupervised_runs import (
    PAPER_EPOCHS,
    PAPER_SEEDS,
    SUPERVISED,
    build,
    paper_table,
    supervised_only_row,
)
from lightning.pytorch import Callback, Trainer

from catlight.data import DataFileError
from catlight.tasks.semisupervised import (
    SemiSupervisedFashionMNISTDataModule,
    SemiSupervisedMNISTDataModule,
)

ROOT = Path(__file__).resolve().parents[1]
ESTIMATORS = configured_estimators(ROOT / "configs" / "semisupervised" / "mnist")
DATA_MODULES = {
    "fashion_mnist": SemiSupervisedFashionMNISTDataModule,
    "mnist": SemiSupervisedMNISTDataModule,
}
# Jang et al. 2017, Table 2 (MNIST, 100 labels): estimator -> (ELBO, accuracy %)
PAPER = {"exact": (-106.8, 92.6), "gs": (-109.6, 92.4), "st_gs": (-110.7, 93.6)}


@dataclass(frozen=True)
class Preset:
    """How much each row trains and how long each speed row is timed."""

    data_sets: tuple[str, ...]
    max_epochs: int | None  # None: the config's own
    train_size: int | None  # None: all 50,000 training images
    speed_steps: int  # timed training steps per speed row (after warm-up)
    warmup_steps: int


PRESETS = {
    "quick": Preset(("fashion_mnist",), 6, 20000, speed_steps=20, warmup_steps=3),
    "full": Preset(("fashion_mnist", "mnist"), None, None, speed_steps=200, warmup_steps=20),
    "paper": Preset(("fashion_mnist",), PAPER_EPOCHS, None, speed_steps=200, warmup_steps=20),
}


class _StepTimer(Callback):
    """Wall time of the training batches after ``warmup`` of them."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.seconds = 0.0
        self.steps = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        _synchronize(pl_module.device)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        _synchronize(pl_module.device)
        if trainer.global_step > self.warmup:
            self.seconds += time.perf_counter() - self._start
            self.steps += 1


def make_trainer(args: argparse.Namespace, timer: _StepTimer, **kwargs):
    """A quiet trainer; the model's own EstimatorStep runs the config's temperature schedule."""
    return Trainer(
        accelerator=args.accelerator,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[timer],
        default_root_dir=args.root_dir,
        **kwargs,
    )


def size_overrides(preset: Preset) -> list[str]:
    """The preset's training-set size as a command-line override (none: all images)."""
    if preset.train_size is None:
        return []
    return ["--data.init_args.train_size", str(preset.train_size)]


def accuracy_row(config: Path, args: argparse.Namespace, preset: Preset) -> dict:
    """Fit a config, then test it: accuracy, bounds, samples per second, minutes."""
    cli = build(config, args, size_overrides(preset))
    max_epochs = preset.max_epochs or cli.trainer.max_epochs
    timer = _StepTimer(warmup=1)
    trainer = make_trainer(args, timer, max_epochs=max_epochs)
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        trainer.fit(cli.model, datamodule=cli.datamodule)
        metrics = trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]
    data = cli.datamodule
    metrics["samples_per_s"] = timer.steps * _images_per_step(data) / timer.seconds
    metrics["minutes"] = (time.perf_counter() - start) / 60
    metrics["steps"] = trainer.global_step
    return metrics


def speed_row(config: Path, num_classes: int, args: argparse.Namespace, preset: Preset) -> float:
    """Training samples per second of ``Trainer.fit`` with a K-way label."""
    overrides = ["--model.init_args.latent.init_args.num_categories", str(num_classes)]
    cli = build(config, args, overrides)
    timer = _StepTimer(warmup=preset.warmup_steps)
    trainer = make_trainer(args, timer, max_steps=preset.warmup_steps + preset.speed_steps)
    with contextlib.redirect_stdout(sys.stderr):
        trainer.fit(cli.model, datamodule=cli.datamodule)
    return timer.steps * _images_per_step(cli.datamodule) / timer.seconds


def _images_per_step(data: SemiSupervisedMNISTDataModule) -> int:
    return data.batch_size + (data.labeled_batch_size or data.num_labeled)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _available(data_set: str, data_dir: Path) -> bool:
    """Whether the IDX files of a data set are there (nothing is downloaded)."""
    data = DATA_MODULES[data_set](data_dir=str(data_dir), download=False)
    try:
        data.prepare_data()
    except DataFileError:
        return False
    return True


def main() -> None:
    """Run the rows and print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--data-sets", nargs="+", choices=sorted(DATA_MODULES), default=None)
    parser.add_argument(
        "--estimators",
        nargs="+",
        choices=[*ESTIMATORS, SUPERVISED],
        default=None,
        help=f"default: every estimator (the paper preset: {', '.join(PAPER_SEEDS)})",
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=None, help="paper preset (default: PAPER_SEEDS)"
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=ROOT / "runs" / "semisupervised",
        help="logs and checkpoints of the paper preset, one folder per run",
    )
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    parser.add_argument(
        "--binarization",
        choices=["dynamic", "none", "threshold", "fixed"],
        default="dynamic",
        help="paper preset: the images' binarization (the configs': dynamic; none: grey levels)",
    )
    parser.add_argument(
        "--limit-train-batches",
        type=batch_count,
        default=None,
        help="paper preset: train this many batches per epoch (to time a run)",
    )
    parser.add_argument(
        "--parameterizations", nargs="+", choices=["softmax", "catnat"], default=None
    )
    parser.add_argument("--tables", nargs="+", choices=["accuracy", "speed"], default=None)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--root-dir", default="/tmp/catlight_semisupervised")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    preset = PRESETS[args.preset]
    tables = args.tables or (["accuracy"] if args.preset == "paper" else ["accuracy", "speed"])
    parameterizations = args.parameterizations or ["softmax", "catnat"]
    if args.estimators is None:
        args.estimators = list(PAPER_SEEDS) if args.preset == "paper" else ESTIMATORS

    print(f"`python benchmarks/semisupervised.py {shlex.join(sys.argv[1:])}`\n")
    device = torch.cuda.get_device_name() if args.accelerator in ("gpu", "cuda") else "CPU"
    print(
        f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads; preset "
        f"{args.preset}: {preset}\n"
    )
    if "accuracy" in tables:
        for data_set in args.data_sets or preset.data_sets:
            if not _available(data_set, args.data_dir):
                print(f"{data_set}: IDX files not found under {args.data_dir}; skipped\n")
                continue
            if args.preset == "paper":
                paper_table(data_set, parameterizations, args)
            else:
                accuracy_table(data_set, parameterizations, args, preset)
    if "speed" in tables:
        speed_table(args, preset)


def accuracy_table(
    data_set: str, parameterizations: list[str], args: argparse.Namespace, preset: Preset
) -> None:
    """Train every row of one data set and print its table."""
    rows = []
    for estimator in [e for e in args.estimators if e != SUPERVISED]:  # the baseline: below
        for parameterization in parameterizations:
            name = f"{estimator}_{parameterization}"
            config = ROOT / "configs" / "semisupervised" / data_set / f"{name}.yaml"
            metrics = accuracy_row(config, args, preset)
            rows.append((estimator, parameterization, metrics))
            print(f"done {data_set} {name}: {metrics['test/accuracy']:.4f}", file=sys.stderr)
    steps = rows[0][2]["steps"]
    first = ROOT / "configs" / "semisupervised" / data_set / f"{rows[0][0]}_{rows[0][1]}.yaml"
    baseline = supervised_only_row(first, args, size_overrides(preset), steps)
    exact = [m["test/accuracy"] for e, _, m in rows if e == "exact"]
    print(f"**{data_set}**, 100 labels, {steps} training steps per row\n")
    print(
        "| estimator | parameterization | test accuracy % | vs exact | test -ELBO unlabeled "
        "| test -ELBO labeled | train samples / s | minutes | paper (MNIST) acc / ELBO |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for estimator, parameterization, metrics in rows:
        accuracy = 100 * metrics["test/accuracy"]
        versus = f"{accuracy - 100 * exact[0]:+.1f}" if exact else "—"
        paper = PAPER.get(estimator)
        print(
            f"| {estimator} | {parameterization} | {accuracy:.1f} | {versus} "
            f"| {metrics['test/unlabeled_neg_elbo']:.1f} | {metrics['test/labeled_neg_elbo']:.1f} "
            f"| {metrics['samples_per_s']:,.0f} | {metrics['minutes']:.1f} "
            f"| {f'{paper[1]} / {paper[0]}' if paper else '—'} |"
        )
    print(
        f"| supervised only (same classifier, same labels) | — "
        f"| {100 * baseline['test/accuracy']:.1f} | — | — | — | — | — | — |\n"
    )


def speed_table(args: argparse.Namespace, preset: Preset) -> None:
    """Time Exact and every sampling estimator at K = 10 and K = 100."""
    data_set = "fashion_mnist" if _available("fashion_mnist", args.data_dir) else "mnist"
    rates = {}
    for estimator in args.estimators:
        config = ROOT / "configs" / "semisupervised" / data_set / f"{estimator}_softmax.yaml"
        for num_classes in (10, 100):
            rates[estimator, num_classes] = speed_row(config, num_classes, args, preset)
            print(f"timed {estimator} K={num_classes}", file=sys.stderr)
    print(
        f"Training samples / s ({data_set}, softmax, batches of 100 unlabeled + 100 "
        f"labeled images, {preset.speed_steps} steps after {preset.warmup_steps} of warm-up)\n"
    )
    print("| estimator | samples drawn | K = 10 | speed-up | K = 100 | speed-up |")
    print("|---|---|---|---|---|---|")
    for estimator in args.estimators:
        cells = []
        for num_classes in (10, 100):
            rate = rates[estimator, num_classes]
            exact = rates.get(("exact", num_classes))
            cells += [f"{rate:,.0f}", f"{rate / exact:.1f}x" if exact else "—"]
        samples = {"exact": "K", "loo": "4", "carms": "4"}.get(estimator, "1")
        print(f"| {estimator} | {samples} | {' | '.join(cells)} |")
    print(
        "\nPaper (Jang et al. 2017): sampling 2x faster than marginalising at K = 10, "
        "9.9x at K = 100."
    )


if __name__ == "__main__":
    main()
