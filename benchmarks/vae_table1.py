"""Reproduce the Gumbel-Softmax paper's Table 1 with every estimator and parameterization.

Trains the categorical VAE (20 x 10, or 200 Bernoulli) and the two-layer structured
output predictor (SBN) on binarized MNIST from the configs in configs/vae and
configs/sbn, exactly as ``catlight fit --config ...`` would, then tests them, and
prints a markdown table beside the paper's numbers (negative ELBO for the VAE, the
1000-sample NLL estimate for the SBN; lower is better).

    python benchmarks/vae_table1.py --data-dir DIR --preset quick
    python benchmarks/vae_table1.py --data-dir DIR --preset paper --tasks sbn \
        --estimators st_gs --parameterizations softmax --seeds 0 1 2 --threads 1

The quick preset trains each model for a few epochs on a 2-core CPU, so its numbers
sit well above the paper's; the paper preset uses the configs' budgets (160 epochs for
the VAE, 100 for the SBN) and the papers' 1000 evaluation samples on the whole test
set. Paper runs keep TensorBoard logs and a ``last.ckpt`` under ``--run-dir``: a
killed run started again with the same command resumes from its last epoch, and a run
whose row is already in ``docs/results/vae_table1.csv`` is skipped. Every finished run
appends its row there (``benchmarks/_results.py``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from _common import configured_estimators
from _results import append_row, read_rows
from _resumable import logger_overrides

from catlight.cli import CatlightCLI

ROOT = Path(__file__).resolve().parents[1]

# Jang et al. 2017, Table 1: (task, latent kind, estimator) -> nats
PAPER = {
    ("vae", "categorical", "reinforce"): 110.6,
    ("vae", "categorical", "st"): 110.9,
    ("vae", "categorical", "gs"): 101.5,
    ("vae", "categorical", "st_gs"): 107.8,
    ("vae", "bernoulli", "reinforce"): 112.2,
    ("vae", "bernoulli", "st"): 116.0,
    ("vae", "bernoulli", "gs"): 105.0,
    ("vae", "bernoulli", "st_gs"): 111.5,
    ("sbn", "categorical", "reinforce"): 73.1,
    ("sbn", "categorical", "st"): 61.8,
    ("sbn", "categorical", "gs"): 59.0,
    ("sbn", "categorical", "st_gs"): 59.7,
    ("sbn", "bernoulli", "reinforce"): 72.0,
    ("sbn", "bernoulli", "st"): 58.9,
    ("sbn", "bernoulli", "gs"): 58.5,
    ("sbn", "bernoulli", "st_gs"): 59.3,
}
ESTIMATORS = configured_estimators(ROOT / "configs" / "vae" / "categorical")


@dataclass
class Preset:
    """How long to train and how precisely to evaluate."""

    max_epochs: dict[str, int | None]  # per task; None: the config's own
    eval_num_samples: int
    test_size: float  # fraction of the test set
    valid_size: float  # fraction of the validation set checked ...
    valid_every: int = 1  # ... every this many epochs
    keep_logs: bool = False  # TensorBoard logs and resumable checkpoints under --run-dir


PRESETS = {
    "quick": Preset({"vae": 5, "sbn": 5}, eval_num_samples=100, test_size=0.2, valid_size=0.2),
    "paper": Preset(
        {"vae": None, "sbn": None},
        eval_num_samples=1000,
        test_size=1.0,
        valid_size=0.2,
        valid_every=2,
        keep_logs=True,
    ),
}
COLUMNS = [
    "task",
    "latent",
    "estimator",
    "parameterization",
    "seed",
    "preset",
    "epochs",
    "test_neg_elbo",
    "test_nll",
    "paper",
    "minutes",
]


def run_one(
    config: Path, task: str, seed: int, run_dir: Path, args: argparse.Namespace, preset: Preset
) -> dict:
    """Fit then test one config; return its test metrics, epochs and wall time."""
    overrides = [
        "--config",
        str(config),
        "--seed_everything",
        str(seed),
        "--data.init_args.data_dir",
        str(args.data_dir),
        "--trainer.accelerator",
        args.accelerator,
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.limit_val_batches",
        str(preset.valid_size),
        "--trainer.check_val_every_n_epoch",
        str(preset.valid_every),
        "--trainer.limit_test_batches",
        str(preset.test_size),
        "--model.init_args.eval_num_samples",
        str(preset.eval_num_samples),
        "--trainer.default_root_dir",  # the configs' LastCheckpoint: <run_dir>/checkpoints
        str(run_dir),
    ]
    if preset.keep_logs:
        overrides += logger_overrides(run_dir)
    else:
        overrides += ["--trainer.logger", "false"]
    if (epochs := args.epochs or preset.max_epochs[task]) is not None:
        overrides += ["--trainer.max_epochs", str(epochs)]
    if args.limit_train_batches is not None:
        overrides += ["--trainer.limit_train_batches", str(args.limit_train_batches)]
    if args.precision:
        overrides += ["--trainer.precision", args.precision]
    start = time.perf_counter()
    cli = CatlightCLI(args=overrides, run=False)
    resume = None
    if preset.keep_logs and (run_dir / "checkpoints" / "last.ckpt").exists():
        resume = "last"
        print(f"resuming from {run_dir / 'checkpoints' / 'last.ckpt'}", file=sys.stderr)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=resume)
    # the epoch with the best validation metric (the configs' ModelCheckpoint)
    best = "best" if cli.trainer.checkpoint_callback.monitor else None
    metrics = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best, verbose=False)[
        0
    ]
    metrics["seconds"] = time.perf_counter() - start
    metrics["epochs"] = cli.trainer.current_epoch
    return metrics


def main() -> None:
    """Run the grid and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="folder with binarized_mnist.npz (or the .amat files)",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--tasks", nargs="+", choices=["vae", "sbn"], default=["vae", "sbn"])
    parser.add_argument(
        "--latents", nargs="+", choices=["categorical", "bernoulli"], default=["categorical"]
    )
    parser.add_argument("--estimators", nargs="+", choices=ESTIMATORS, default=ESTIMATORS)
    parser.add_argument(
        "--parameterizations",
        nargs="+",
        choices=["softmax", "catnat"],
        default=["softmax", "catnat"],
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=ROOT / "runs" / "vae_table1",
        help="logs and checkpoints of the paper preset, one folder per run",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--precision", default=None, help="e.g. bf16-mixed")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    parser.add_argument(
        "--limit-train-batches",
        type=float,
        default=None,
        help="train on this many batches (>= 1) or fraction per epoch",
    )
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"`python benchmarks/vae_table1.py {shlex.join(sys.argv[1:])}`\n")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"cuda: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}\n"
    )
    done = {
        (r["task"], r["latent"], r["estimator"], r["parameterization"], r["seed"])
        for r in read_rows("vae_table1")
        if r["preset"] == args.preset
    }
    rows = []
    for task in args.tasks:
        for latent in args.latents:
            for estimator in args.estimators:
                for parameterization in args.parameterizations:
                    for seed in args.seeds:
                        key = (task, latent, estimator, parameterization, str(seed))
                        if args.preset == "paper" and key in done:
                            print(f"skipped (in the CSV already): {key}", file=sys.stderr)
                            continue
                        name = f"{estimator}_{parameterization}"
                        config = ROOT / "configs" / task / latent / f"{name}.yaml"
                        run_dir = args.run_dir / args.preset / f"{task}_{latent}_{name}_seed{seed}"
                        metrics = run_one(config, task, seed, run_dir, args, preset)
                        row = {
                            "task": task,
                            "latent": latent,
                            "estimator": estimator,
                            "parameterization": parameterization,
                            "seed": seed,
                            "preset": args.preset,
                            "epochs": metrics["epochs"],
                            "test_neg_elbo": _csv(metrics.get("test/neg_elbo")),
                            "test_nll": _csv(metrics.get("test/nll")),
                            "paper": _csv(PAPER.get((task, latent, estimator))),
                            "minutes": f"{metrics['seconds'] / 60:.1f}",
                        }
                        rows.append((task, latent, estimator, parameterization, metrics))
                        path = append_row("vae_table1", row, COLUMNS)
                        print(f"done {config.relative_to(ROOT)}: {row} -> {path}", file=sys.stderr)

    print(
        "| task | latent | estimator | parameterization | epochs | test -ELBO | test NLL "
        "| paper | minutes |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for task, latent, estimator, parameterization, metrics in rows:
        paper = PAPER.get((task, latent, estimator))
        neg_elbo = metrics.get("test/neg_elbo")
        print(
            f"| {task} | {latent} | {estimator} | {parameterization} | {metrics['epochs']} "
            f"| {_fmt(neg_elbo)} | {_fmt(metrics.get('test/nll'))} "
            f"| {_fmt(paper)} | {metrics['seconds'] / 60:.1f} |"
        )
    print(
        f"\nTest NLL: importance-weighted bound (VAE) or m-sample estimate (SBN) with "
        f"{preset.eval_num_samples} samples on {preset.test_size:.0%} of the test set. "
        "The paper reports the -ELBO for the VAE and the NLL for the SBN."
    )


def _csv(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    main()
