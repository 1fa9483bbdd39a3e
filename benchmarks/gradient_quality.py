"""Gradient quality of every estimator on the 20 x 10 categorical VAE: softmax against catnat.

For each checkpoint of the VAE (20 variables of 10 categories, binarized MNIST), on one
fixed batch of validation images, ``GradientDiagnostics`` draws ``--num-estimates``
gradient estimates of the training loss with respect to the encoder's scores from every
registry estimator (with its registry settings, swapped into the layer) and compares
them with a reference gradient: the mean of ``--reference-estimates`` LeaveOneOut
estimates (Exact would enumerate 10^20 configurations). Each row of
``docs/results/gradient_quality.csv`` is one checkpoint x estimator: total variance,
mean SNR, bias norm, MSE, cosine similarity, and the bias and MSE relative to the
reference's norm (the softmax and catnat scores differ in number, K and K - 1 per
variable, so only the relative figures and the cosine compare across them).
``docs/results/gradient_quality.png`` draws them.

Checkpoints come from training runs (``benchmarks/vae_table1.py --preset paper`` keeps
``last.ckpt`` under ``runs/vae_table1/paper/<run>/checkpoints``), or the script
trains its own on the first ``--train-size`` training images and keeps one at the end
of each epoch in ``--train-epochs``:

    python benchmarks/gradient_quality.py --data-dir DIR --train-epochs 1 10 100 \
        --train-size 1000 --threads 1
    python benchmarks/gradient_quality.py --data-dir DIR --checkpoints A.ckpt B.ckpt
    python benchmarks/gradient_quality.py --data-dir DIR --table  # the CSV's table, figure
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import tempfile
import time
from pathlib import Path

import matplotlib
import torch
from _common import markdown
from _results import RESULTS, append_row, read_rows
from lightning.pytorch import Callback, LightningModule, Trainer

from catlight.cli import CatlightCLI
from catlight.data import BinarizedMNISTDataModule
from catlight.diagnostics import GradientDiagnostics
from catlight.latent import ESTIMATORS, Exact
from catlight.tasks.vae import CategoricalVAE

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = "gradient_quality"
STATS = ("variance", "snr", "bias_norm", "mse", "cosine")
COLUMNS = [
    "parameterization",
    "epochs",
    "steps",
    "train_size",
    "trained_with",
    "estimator",
    "samples",
    *STATS,
    "relative_bias",
    "relative_mse",
    "reference",
    "reference_norm",
    "reference_estimates",
    "num_estimates",
    "batch_size",
    "seconds",
]


class SaveAtEpochs(Callback):
    """Save a checkpoint at the end of each listed epoch (1-based): ``epoch<e>.ckpt``."""

    def __init__(self, epochs: list[int], folder: Path) -> None:
        self.epochs, self.folder, self.paths = set(epochs), folder, []

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Save when the epoch that just ended is listed."""
        epoch = trainer.current_epoch + 1
        if epoch in self.epochs:
            self.paths.append(self.folder / f"epoch{epoch}.ckpt")
            trainer.save_checkpoint(self.paths[-1])


def train(parameterization: str, args: argparse.Namespace, folder: Path) -> list[Path]:
    """Train the VAE config of ``--train-estimator`` and one parameterization; its checkpoints."""
    config = (
        ROOT / "configs" / "vae" / "categorical" / f"{args.train_estimator}_{parameterization}.yaml"
    )
    overrides = [
        "--config",
        str(config),
        f"--seed_everything={args.seed}",
        f"--data.init_args.data_dir={args.data_dir}",
        f"--data.init_args.train_size={args.train_size}",
        f"--trainer.max_epochs={max(args.train_epochs)}",
        f"--trainer.default_root_dir={folder}",
        "--trainer.callbacks=[]",
        "--trainer.logger=false",
        "--trainer.enable_checkpointing=false",
        "--trainer.limit_val_batches=0",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.accelerator=cpu",
    ]
    cli = CatlightCLI(args=overrides, run=False)
    saver = SaveAtEpochs(args.train_epochs, folder / parameterization)
    cli.trainer.callbacks.append(saver)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return saver.paths


def fixed_batch(args: argparse.Namespace) -> tuple[torch.Tensor, ...]:
    """The first ``--batch-size`` validation images."""
    data = BinarizedMNISTDataModule(
        data_dir=args.data_dir, batch_size=args.batch_size, eval_batch_size=args.batch_size
    )
    data.setup("validate")
    return next(iter(data.val_dataloader()))


def measure(checkpoint: Path, batch: tuple[torch.Tensor, ...], args: argparse.Namespace) -> list:
    """One row per estimator for the model in ``checkpoint``."""
    model = CategoricalVAE.load_from_checkpoint(checkpoint, map_location="cpu")
    model.train()
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    num_variables = model.num_latents
    fits = model.latent.num_categories**num_variables <= Exact().max_configurations
    names = [name for name in args.estimators if name != "exact" or fits]
    diagnostics = GradientDiagnostics(
        num_estimates=args.num_estimates,
        reference=args.reference,
        reference_estimates=args.reference_estimates,
        compare=names,
    )
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    results = diagnostics.measure(model, batch)
    seconds = time.perf_counter() - start
    reference_norm = results["gradient/latent/reference/norm"]
    rows = []
    for name in names:
        entry = ESTIMATORS[name]
        stats = {s: results[f"gradient/latent/{entry.cls.__name__}/{s}"] for s in STATS}
        rows.append(
            {
                "parameterization": type(model.latent.parameterization).__name__.lower(),
                "epochs": saved["epoch"] + 1,
                "steps": saved["global_step"],
                "train_size": args.train_size if args.train_epochs else "",
                "trained_with": type(model.latent.estimator).__name__,
                "estimator": name,
                "samples": getattr(entry.build(), "num_samples", 1),
                **{s: f"{v:.6g}" for s, v in stats.items()},
                "relative_bias": f"{stats['bias_norm'] / reference_norm:.4g}",
                "relative_mse": f"{stats['mse'] / reference_norm**2:.4g}",
                "reference": args.reference,
                "reference_norm": f"{reference_norm:.6g}",
                "reference_estimates": args.reference_estimates,
                "num_estimates": args.num_estimates,
                "batch_size": args.batch_size,
                "seconds": f"{seconds:.0f}",
            }
        )
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """Relative MSE and cosine per estimator, softmax beside catnat, one column per checkpoint.

    A checkpoint is its epoch and training set: the quick mode's (its first images) or
    a full run's (every image).
    """
    checkpoints = sorted(
        {(int(r["epochs"]), r["train_size"]) for r in rows}, key=lambda c: (c[1] == "", c[0])
    )
    estimators = [n for n in ESTIMATORS if any(r["estimator"] == n for r in rows)]
    figure, axes = plt.subplots(
        2, len(checkpoints), figsize=(4 * len(checkpoints), 6), squeeze=False, sharey="row"
    )
    width = 0.4
    for column, (epoch, train_size) in enumerate(checkpoints):
        for offset, (parameterization, color) in enumerate(
            (("softmax", "tab:blue"), ("catnat", "tab:orange"))
        ):
            for row, stat in enumerate(("relative_mse", "cosine")):
                values = {
                    r["estimator"]: float(r[stat])
                    for r in rows
                    if (int(r["epochs"]), r["train_size"]) == (epoch, train_size)
                    and r["parameterization"] == parameterization
                }
                positions = [i + (offset - 0.5) * width for i in range(len(estimators))]
                heights = [values.get(n, math.nan) for n in estimators]
                axis = axes[row][column]
                axis.bar(positions, heights, width, color=color, label=parameterization)
                axis.set_xticks(range(len(estimators)))
                axis.set_xticklabels(
                    [ESTIMATORS[n].display_name for n in estimators], rotation=45, ha="right"
                )
        axes[0][column].set_yscale("log")
        images = f"{train_size} images" if train_size else "all images"
        axes[0][column].set_title(f"epoch {epoch}, {images}")
    axes[0][0].set_ylabel("MSE / |reference|^2 (lower is better)")
    axes[1][0].set_ylabel("cosine to reference (higher is better)")
    axes[0][0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    """Train or load the checkpoints, measure every estimator, write the rows and figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="folder with binarized_mnist.npz"
    )
    parser.add_argument("--checkpoints", nargs="+", type=Path, default=[], help="VAE checkpoints")
    parser.add_argument(
        "--train-epochs", nargs="+", type=int, default=[], help="train and keep these epochs"
    )
    parser.add_argument("--train-size", type=int, default=1000, help="training images (quick)")
    parser.add_argument("--train-estimator", choices=list(ESTIMATORS), default="gs")
    parser.add_argument(
        "--parameterizations",
        nargs="+",
        choices=["softmax", "catnat"],
        default=["softmax", "catnat"],
    )
    parser.add_argument(
        "--estimators", nargs="+", choices=list(ESTIMATORS), default=list(ESTIMATORS)
    )
    parser.add_argument("--num-estimates", type=int, default=50)
    parser.add_argument("--reference", default="loo")
    parser.add_argument("--reference-estimates", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument(
        "--table", action="store_true", help="only print the CSV's table and redraw the figure"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.table:
        rows = read_rows(BENCHMARK)
        print(table(rows))
        plot(rows, RESULTS / f"{BENCHMARK}.png")
        return
    if not args.checkpoints and not args.train_epochs:
        parser.error("give --checkpoints or --train-epochs (or --table)")
    print(f"`python benchmarks/gradient_quality.py {shlex.join(sys.argv[1:])}`\n")
    batch = fixed_batch(args)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        checkpoints = list(args.checkpoints)
        for parameterization in args.parameterizations if args.train_epochs else []:
            checkpoints += train(parameterization, args, Path(folder))
        for checkpoint in checkpoints:
            for row in measure(checkpoint, batch, args):
                append_row(BENCHMARK, row, COLUMNS)
                rows.append(row)
            print(f"measured {checkpoint}", file=sys.stderr)
    print(table(rows))
    plot(rows, RESULTS / f"{BENCHMARK}.png")


def table(rows: list[dict]) -> str:
    """Markdown: one line per checkpoint epoch and estimator, softmax beside catnat.

    Relative bias is ``bias_norm / |reference|``, with its noise floor in brackets, what
    an unbiased estimator would show: ``sqrt(variance / num_estimates + reference
    variance / reference_estimates) / |reference|``, the reference's variance being
    that of the LeaveOneOut row of the same checkpoint (0 if there is none).
    """
    reference_variance = {
        (r["parameterization"], r["epochs"], r["train_size"]): float(r["variance"])
        / int(r["reference_estimates"])
        for r in rows
        if r["estimator"] == r["reference"]
    }
    cells: dict[tuple, dict[str, str]] = {}
    for r in rows:
        norm = float(r["reference_norm"])
        noise = reference_variance.get((r["parameterization"], r["epochs"], r["train_size"]), 0)
        floor = math.sqrt(float(r["variance"]) / int(r["num_estimates"]) + noise) / norm
        key = (int(r["epochs"]), r["train_size"] or "all", r["estimator"], r["samples"])
        cells.setdefault(key, {})[r["parameterization"]] = (
            f"{float(r['relative_mse']):.3g}",
            f"{float(r['cosine']):.3f}",
            f"{float(r['relative_bias']):.2f} ({floor:.2f})",
        )
    header = ["epoch", "training images", "estimator", "samples"]
    for stat in ("MSE / ‖r‖²", "cosine", "bias / ‖r‖ (floor)"):
        header += [f"{stat} softmax", f"{stat} catnat"]
    body = []
    for (epoch, size, name, samples), by_parameterization in sorted(
        cells.items(), key=lambda item: (item[0][0], list(ESTIMATORS).index(item[0][2]))
    ):
        line = [str(epoch), str(size), ESTIMATORS[name].display_name, str(samples)]
        for index in range(3):
            for parameterization in ("softmax", "catnat"):
                values = by_parameterization.get(parameterization)
                line.append(values[index] if values else "—")
        body.append(line)
    return markdown(header, body)


if __name__ == "__main__":
    main()
