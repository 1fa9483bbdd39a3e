"""Runs of benchmarks/semisupervised.py: one config fitted, the baseline, the paper grid.

The paper preset's grid runs here: every run logs to TensorBoard and resumes from its
``last.ckpt`` under ``--run-dir`` (``_resumable.py``), and appends one row to
``docs/results/semisupervised.csv`` (``_results.py``) when it finishes; runs whose row
is there already are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _results import append_row, read_rows
from _resumable import resumable_fit, run_folder, trainer_overrides

from catlight.cli import CatlightCLI

ROOT = Path(__file__).resolve().parents[1]
# Jang et al. 2017, Table 2 (MNIST, 100 labels): estimator -> accuracy %
PAPER_ACCURACY = {"exact": 92.6, "gs": 92.4, "st_gs": 93.6}
SUPERVISED = "supervised_only"  # the classifier alone, on the labeled images only
# the paper preset's grid: estimator -> seeds (each seed with both parameterizations)
PAPER_SEEDS = {
    "exact": (0, 1, 2),
    "gs": (0, 1, 2),
    "st_gs": (0,),
    "loo": (0,),
    SUPERVISED: (0, 1, 2),
}
PAPER_EPOCHS = 50  # over all 50,000 training images (499 steps each)
VALID_FRACTION = 0.2  # of the 10,000 validation images, every epoch
COLUMNS = [
    "task",
    "estimator",
    "parameterization",
    "seed",
    "preset",
    "num_labeled",
    "binarization",
    "epochs",
    "steps",
    "test_accuracy",
    "test_unlabeled_neg_elbo",
    "test_labeled_neg_elbo",
    "paper_mnist_accuracy",
    "minutes",
]


def build(config: Path, args: argparse.Namespace, overrides: list[str]) -> CatlightCLI:
    """Model and data of a config (its seed applied), with the benchmark's overrides."""
    data_args = ["--data.init_args.data_dir", str(args.data_dir)]
    data_args += ["--data.init_args.download", "false"]
    return CatlightCLI(args=["--config", str(config), *data_args, *overrides], run=False)


def data_overrides(seed: int, binarization: str) -> list[str]:
    """Seed the run and the labeled draw alike (seed s trains on labeled set s); binarize."""
    seeds = ["--seed_everything", str(seed), "--data.init_args.seed", str(seed)]
    return [*seeds, "--data.init_args.binarization", binarization]


def supervised_only_row(
    config: Path, args: argparse.Namespace, overrides: list[str], steps: int
) -> dict:
    """The config's q(y|x) network, same initialisation, trained on the labeled batches only.

    Cross-entropy on the same 100 labeled images (same batches, same binarization),
    for as many steps as the semi-supervised rows, with the same optimizer (the
    task's own, built on all its parameters; only the classifier's get gradients).
    """
    cli = build(config, args, overrides)
    model, data = cli.model, cli.datamodule
    device = torch.device("cuda" if args.accelerator in ("gpu", "cuda") else "cpu")
    model.to(device)
    optimizer = model.configure_optimizers()
    if isinstance(optimizer, dict):
        optimizer = optimizer["optimizer"]
    loader = data.train_dataloader()
    batches = (batch for _ in range(steps) for batch in loader)  # epochs until enough steps
    for _, (_, labeled, labels) in zip(range(steps), batches, strict=False):
        loss = F.nll_loss(model.label_log_probs(labeled.to(device)), labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    correct = total = 0
    with torch.no_grad():
        for images, labels in data.test_dataloader():
            predictions = model.label_log_probs(images.to(device)).argmax(-1)
            correct += int((predictions == labels.to(device)).sum())
            total += labels.numel()
    return {"test/accuracy": correct / total}


def paper_run(
    data_set: str, estimator: str, parameterization: str, seed: int, args: argparse.Namespace
) -> dict:
    """Fit (resuming if killed) and test one config with TensorBoard logs; its CSV cells.

    With ``--limit-train-batches`` it is a timing run, kept in a folder of its own.
    """
    name = f"{estimator}_{parameterization}"
    config = ROOT / "configs" / "semisupervised" / data_set / f"{name}.yaml"
    folder = f"{data_set}_{args.binarization}_{name}_seed{seed}"
    run_dir = run_folder(args.run_dir, folder, args.limit_train_batches)
    overrides = [
        *data_overrides(seed, args.binarization),
        *trainer_overrides(
            run_dir,
            args.epochs or PAPER_EPOCHS,
            args.accelerator,
            VALID_FRACTION,
            args.limit_train_batches,
        ),
    ]
    cli = build(config, args, overrides)
    with contextlib.redirect_stdout(sys.stderr):
        start = time.perf_counter()
        resumable_fit(cli, run_dir)
        fit_seconds = time.perf_counter() - start
        metrics = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]
    return {
        "epochs": cli.trainer.current_epoch,
        "steps": cli.trainer.global_step,
        "fit_seconds": fit_seconds,
        "test_accuracy": f"{100 * metrics['test/accuracy']:.2f}",
        "test_unlabeled_neg_elbo": f"{metrics['test/unlabeled_neg_elbo']:.2f}",
        "test_labeled_neg_elbo": f"{metrics['test/labeled_neg_elbo']:.2f}",
        "minutes": f"{(time.perf_counter() - start) / 60:.1f}",
    }


def supervised_run(
    data_set: str, parameterization: str, seed: int, args: argparse.Namespace
) -> dict:
    """The supervised-only classifier of seed s, as many steps as the paper's M2 runs.

    Its q(y|x) has the M2 rows' parameterization, so a catnat row is compared with a
    catnat classifier fitted to the same labels.
    """
    config = ROOT / "configs" / "semisupervised" / data_set / f"exact_{parameterization}.yaml"
    overrides = data_overrides(seed, args.binarization)
    cli = build(config, args, overrides)
    cli.datamodule.setup("fit")
    batches = len(cli.datamodule.train_dataloader())
    if args.limit_train_batches is not None:
        batches = min(batches, args.limit_train_batches)
    steps = (args.epochs or PAPER_EPOCHS) * batches
    start = time.perf_counter()
    metrics = supervised_only_row(config, args, overrides, steps)
    return {
        "epochs": args.epochs or PAPER_EPOCHS,
        "steps": steps,
        "test_accuracy": f"{100 * metrics['test/accuracy']:.2f}",
        "minutes": f"{(time.perf_counter() - start) / 60:.1f}",
    }


def paper_table(data_set: str, parameterizations: list[str], args: argparse.Namespace) -> None:
    """Run the paper grid's missing rows, one CSV row each, then print every row so far."""
    done = {
        (r["task"], r["binarization"], r["estimator"], r["parameterization"], r["seed"])
        for r in read_rows("semisupervised")
        if r["preset"] == "paper"
    }
    for estimator in args.estimators:
        for parameterization in parameterizations:
            for seed in args.seeds or PAPER_SEEDS.get(estimator, (0,)):
                key = (data_set, args.binarization, estimator, parameterization, str(seed))
                if key in done:
                    print(f"skipped (in the CSV already): {key}", file=sys.stderr)
                    continue
                if estimator == SUPERVISED:
                    result = supervised_run(data_set, parameterization, seed, args)
                else:
                    result = paper_run(data_set, estimator, parameterization, seed, args)
                row = {
                    "task": data_set,
                    "estimator": estimator,
                    "parameterization": parameterization,
                    "seed": seed,
                    "preset": "paper",
                    "num_labeled": 100,
                    "binarization": args.binarization,
                    "paper_mnist_accuracy": PAPER_ACCURACY.get(estimator, ""),
                    **result,
                }
                if args.limit_train_batches is not None:
                    _print_timing(row)
                    continue
                path = append_row("semisupervised", row, COLUMNS)
                print(f"done {key}: {row} -> {path}", file=sys.stderr)
    rows = [r for r in read_rows("semisupervised") if r["preset"] == "paper"]
    print(
        "| task | binarization | estimator | parameterization | seed | epochs "
        "| test accuracy % | minutes |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['task']} | {r['binarization']} | {r['estimator']} | {r['parameterization']} "
            f"| {r['seed']} | {r['epochs']} | {r['test_accuracy']} | {r['minutes']} |"
        )


def _print_timing(row: dict) -> None:
    """What a timing run measured (it writes no CSV row): seconds per training step."""
    key = f"{row['estimator']}_{row['parameterization']}"
    if "fit_seconds" not in row:
        print(f"timing run, {key}: {row['steps']} steps in {row['minutes']} minutes")
        return
    per_step = row["fit_seconds"] / row["steps"]
    print(
        f"timing run, {key}: {row['steps']} steps and {row['epochs']} validations in "
        f"{row['fit_seconds']:.0f} s, {per_step:.3f} s a step (validation included)"
    )
