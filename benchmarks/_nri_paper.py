"""The paper preset of benchmarks/nri.py: the published NRI configs at a CPU-sized budget.

Each run trains ``configs/nri/<task>.yaml`` as written (the paper's MLP encoder and
decoder of width 256, Gumbel-Softmax tau 0.5, uniform prior, variance 5e-5, teacher
forcing every 10 steps, Adam 5e-4, batch 128, 50,000 / 10,000 / 10,000 simulations)
for ``PAPER_EPOCHS`` epochs instead of 500, then tests the checkpoint of best
validation NLL (as Kipf et al.'s code does; the NLL needs no ground-truth graph).
Every run logs to TensorBoard and resumes from its ``last.ckpt`` under ``--run-dir``
(``_resumable.py``); a finished run appends its row to ``docs/results/nri.csv``
(``_results.py``), and runs whose row is there already are skipped.

``--width``, ``--batch-size``, ``--learning-rate`` and ``--lr-decay-epochs`` change the
config's encoder and decoder width, batch, Adam rate and the epochs between halvings
of the rate (recorded in the row, and in the run's folder name): a smaller model takes
many more steps in the same 2 hours of one CPU thread.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import yaml
from _results import append_row, read_rows
from _resumable import resumable_fit, run_folder, trainer_overrides

from catlight.cli import CatlightCLI

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["springs5", "charged5"]
# Kipf et al. 2018, Table 1: test edge accuracy (%) of NRI (learned), 5 particles
PAPER = {"springs5": 99.9, "charged5": 82.1}
# One epoch of the paper's model over 50,000 simulations takes ~1,560 s on one CPU thread
# (3.8 s per batch of 128, 391 batches, then ~70 s of validation; timing runs with
# --limit-train-batches 20 and 40 on a shared 2-core machine): 4 epochs and the test
# (~2-4 min) fit in about 2 hours.
PAPER_EPOCHS = 4
VALID_FRACTION = 0.2  # of the 10,000 validation simulations, every epoch
COLUMNS = [
    "task",
    "estimator",
    "parameterization",
    "seed",
    "preset",
    "epochs",
    "width",
    "skip_first",
    "batch_size",
    "learning_rate",
    "lr_decay_epochs",
    "num_train",
    "test_edge_acc",
    "test_edge_acc_best",
    "test_mse_1step",
    "test_mse_10step",
    "test_mse_20step",
    "paper",
    "minutes",
]


def paper_run(task: str, seed: int, args: argparse.Namespace) -> tuple[dict, float]:
    """Fit (resuming if killed) and test one config; its CSV row and training seconds.

    With ``--limit-train-batches`` it is a timing run: its own folder, no CSV row.
    """
    name = f"{task}_seed{seed}" + ("_skip_first" if args.skip_first else "")
    sizes = {
        "width": args.width,
        "batch": args.batch_size,
        "lr": args.learning_rate,
        "decay": args.lr_decay_epochs,
    }
    name += "".join(f"_{key}{value:g}" for key, value in sizes.items() if value is not None)
    run_dir = run_folder(args.run_dir, name, args.limit_train_batches)
    overrides = [
        "--config",
        str(_config_path(task)),
        "--seed_everything",
        str(seed),
        "--data.init_args.data_dir",
        str(args.data_dir),
        *trainer_overrides(
            run_dir,
            args.epochs or PAPER_EPOCHS,
            args.accelerator,
            VALID_FRACTION,
            args.limit_train_batches,
        ),
    ]
    if args.skip_first:
        overrides += ["--model.init_args.skip_first", "true"]
    if args.width is not None:
        for network in ("encoder", "decoder"):
            overrides += [f"--model.init_args.{network}_hidden_size", str(args.width)]
    if args.batch_size is not None:
        overrides += ["--data.init_args.batch_size", str(args.batch_size)]
    if args.learning_rate is not None:
        overrides += ["--model.init_args.learning_rate", str(args.learning_rate)]
    if args.lr_decay_epochs is not None:
        overrides += ["--model.init_args.lr_decay_epochs", str(args.lr_decay_epochs)]
    with contextlib.redirect_stdout(sys.stderr):
        cli = CatlightCLI(args=overrides, run=False)
        cli.datamodule.prepare_data()  # simulates the data set once; not timed
        start = time.perf_counter()
        resumable_fit(cli, run_dir)
        fit_seconds = time.perf_counter() - start
        metrics = cli.trainer.test(datamodule=cli.datamodule, ckpt_path="best", verbose=False)[0]
    row = {
        "task": task,
        "estimator": "gs",
        "parameterization": "softmax",
        "seed": seed,
        "preset": "paper",
        "epochs": cli.trainer.current_epoch,
        "width": cli.model.hparams.encoder_hidden_size,
        "skip_first": cli.model.hparams.skip_first,
        "batch_size": cli.datamodule.batch_size,
        "learning_rate": cli.model.hparams.learning_rate,
        "lr_decay_epochs": cli.model.hparams.lr_decay_epochs,
        "num_train": cli.datamodule.sizes["train"],
        "test_edge_acc": f"{100 * metrics['test/edge_acc']:.2f}",
        "test_edge_acc_best": f"{100 * metrics['test/edge_acc_best']:.2f}",
        **{f"test_mse_{h}step": f"{metrics[f'test/mse_{h}step']:.3e}" for h in (1, 10, 20)},
        "paper": PAPER[task],
        "minutes": f"{(time.perf_counter() - start) / 60:.1f}",
    }
    return row, fit_seconds


def paper_table(args: argparse.Namespace) -> None:
    """Run the missing rows of the grid, one CSV row each, then print every row so far."""
    done = {_settings(r) for r in read_rows("nri") if r["preset"] == "paper"}
    for task in args.tasks:
        for seed in args.seeds:
            if (task, str(seed), *_requested(args, task)) in done:
                print(f"skipped (in the CSV already): {task} seed {seed}", file=sys.stderr)
                continue
            row, fit_seconds = paper_run(task, seed, args)
            if args.limit_train_batches is not None:
                batches = args.limit_train_batches * row["epochs"]
                test_seconds = 60 * float(row["minutes"]) - fit_seconds
                print(
                    f"timing run, {task}: {fit_seconds:.0f} s for {batches} training batches "
                    f"and {row['epochs']} validations of {VALID_FRACTION:.0%}, then "
                    f"{test_seconds:.0f} s of test; no CSV row"
                )
                continue
            path = append_row("nri", row, COLUMNS)
            print(f"done {task} seed {seed}: {row} -> {path}", file=sys.stderr)
    print(
        "| data set | seed | epochs | width | batch | Adam lr | halved every | skip_first "
        "| edge acc. (%) | best relabelling (%) | paper (%) | minutes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in read_rows("nri"):
        if r["preset"] == "paper":
            print(
                f"| {r['task']} | {r['seed']} | {r['epochs']} | {r['width']} | {r['batch_size']} "
                f"| {r['learning_rate']} | {r['lr_decay_epochs']} | {r['skip_first']} "
                f"| {r['test_edge_acc']} "
                f"| {r['test_edge_acc_best']} | {r['paper']} | {r['minutes']} |"
            )


def _settings(row: dict[str, str]) -> tuple:
    """A CSV row's task, seed and the settings a run may change."""
    return (
        row["task"],
        row["seed"],
        int(row["epochs"]),
        row["skip_first"] == "True",
        int(row["width"]),
        int(row["batch_size"]),
        float(row["learning_rate"]),
        int(row["lr_decay_epochs"]),
    )


def _requested(args: argparse.Namespace, task: str) -> tuple:
    """The settings a run of ``args`` on ``task`` trains with: the config's unless overridden."""
    config = yaml.safe_load(_config_path(task).read_text())
    model, data = config["model"]["init_args"], config["data"]["init_args"]
    return (
        args.epochs or PAPER_EPOCHS,
        args.skip_first or model["skip_first"],
        args.width or model["encoder_hidden_size"],
        args.batch_size or data["batch_size"],
        args.learning_rate or model["learning_rate"],
        args.lr_decay_epochs or model["lr_decay_epochs"],
    )


def _config_path(task: str) -> Path:
    """``configs/nri/<task>.yaml``."""
    return ROOT / "configs" / "nri" / f"{task}.yaml"
