"""Invalid-action masking: PPO's evaluation return against environment steps on Taxi-v4.

Trains ``configs/rl/taxi/ppo_<parameterization>.yaml`` (no masks) and
``ppo_masked_<parameterization>.yaml`` (the environment's ``info["action_mask"]`` at
collection, evaluation and update) exactly as ``catlight fit --config ...`` would
(seeds 0, 1, ...; logging and checkpoints off), evaluating the argmax policy on the
data module's 10 fixed-seed episodes before training and at every validation
interval. Writes every point to ``docs/results/rl_taxi_masking.csv`` (keeping the
rows of the runs it did not repeat, so policies can be run one at a time), draws the
mean curves with their min-max band to ``docs/results/rl_taxi_masking.png``, and
prints the mean ± std over seeds at a few budgets. Runs ``--workers`` trainings at a
time, each with ``torch.set_num_threads(1)``.

    python benchmarks/rl_masking.py                          # softmax, 3 seeds, 200k
    python benchmarks/rl_masking.py --policies catnat        # adds catnat's runs
"""

from __future__ import annotations

import argparse
import csv
import math
import multiprocessing
import shlex
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from _common import markdown
from lightning.pytorch import Callback
from rl import build

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
VARIANTS = {"no mask": "ppo", "masked": "ppo_masked"}


class _EvaluationCurve(Callback):
    """(environment steps, evaluation return) after every validation."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        episodic_return = trainer.callback_metrics["val/episodic_return"].item()
        self.points.append((pl_module.env_steps.item(), episodic_return))


def curve(variant: str, policy: str, seed: int, total_env_steps: int) -> dict:
    """Train one config and seed; its evaluation curve and wall time."""
    torch.set_num_threads(1)
    path = ROOT / "configs" / "rl" / "taxi" / f"{VARIANTS[variant]}_{policy}.yaml"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as root_dir:
        cli = build(path, seed, root_dir, "--data.init_args.total_env_steps", str(total_env_steps))
        recorder = _EvaluationCurve()
        cli.trainer.callbacks.append(recorder)
        cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        if recorder.points[-1][0] < cli.model.env_steps.item():  # the budget's last rollout
            cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
    seconds = time.perf_counter() - start
    print(
        f"{variant} {policy} seed {seed}: {recorder.points[-1]} in {seconds:.0f} s", file=sys.stderr
    )
    return {
        "variant": variant,
        "policy": policy,
        "seed": seed,
        "points": recorder.points,
        "seconds": seconds,
    }


def write_csv(runs: list[dict], path: Path) -> None:
    """One row per evaluation: variant, policy, seed, env steps, return, run's seconds."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["variant", "policy", "seed", "env_steps", "eval_return", "run_seconds"])
        for run in runs:
            seconds = "" if math.isnan(run["seconds"]) else f"{run['seconds']:.0f}"
            for steps, value in run["points"]:
                row = [run["variant"], run["policy"], run["seed"], steps, f"{value:.2f}", seconds]
                writer.writerow(row)


def read_csv(path: Path) -> list[dict]:
    """The runs of a CSV written by :func:`write_csv` (no file: none)."""
    runs: dict[tuple, dict] = {}
    if not path.exists():
        return []
    with path.open(newline="") as file:
        for row in csv.DictReader(file):
            key = (row["variant"], row["policy"], int(row["seed"]))
            seconds = float(row.get("run_seconds") or "nan")
            run = runs.setdefault(
                key,
                {
                    "variant": key[0],
                    "policy": key[1],
                    "seed": key[2],
                    "points": [],
                    "seconds": seconds,
                },
            )
            run["points"].append((int(row["env_steps"]), float(row["eval_return"])))
    return list(runs.values())


def plot(runs: list[dict], path: Path, command: str) -> None:
    """Mean evaluation return against env steps per variant and policy, min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 4))
    groups = sorted({(run["variant"], run["policy"]) for run in runs})
    for variant, policy in groups:
        group = [
            run["points"] for run in runs if (run["variant"], run["policy"]) == (variant, policy)
        ]
        steps = [steps for steps, _ in group[0]]
        values = torch.tensor([[value for _, value in points] for points in group])
        label = f"{variant}, {policy} ({len(group)} seeds)"
        line = axes.plot(
            steps, values.mean(0), label=label, linestyle="-" if variant == "masked" else "--"
        )
        axes.fill_between(
            steps, values.min(0).values, values.max(0).values, alpha=0.2, color=line[0].get_color()
        )
    axes.set_xlabel("environment steps")
    axes.set_ylabel("evaluation return (10 argmax episodes)")
    axes.set_title("PPO on Taxi-v4: invalid-action masks", fontsize=10)
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.text(0.01, 0.01, command, fontsize=6, color="gray")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def table(runs: list[dict], budgets: list[int]) -> str:
    """Mean ± std over seeds of the first evaluation return at or after each budget."""
    rows = []
    for variant, policy in sorted({(run["variant"], run["policy"]) for run in runs}):
        group = [run for run in runs if (run["variant"], run["policy"]) == (variant, policy)]
        cells = []
        for budget in budgets:
            values = [
                next(value for steps, value in run["points"] if steps >= budget) for run in group
            ]
            spread = statistics.stdev(values) if len(values) > 1 else float("nan")
            cells.append(f"{statistics.mean(values):.1f} ± {spread:.1f}")
        timed = [run["seconds"] for run in group if not math.isnan(run["seconds"])]
        seconds = f"{statistics.mean(timed):.0f}" if timed else "—"
        rows.append([variant, policy, *cells, seconds])
    header = [
        "Taxi-v4 PPO",
        "policy",
        *(f"return at >= {budget:,}" for budget in budgets),
        "s / run",
    ]
    return markdown(header, rows)


def main() -> None:
    """Run every variant, policy and seed; write the CSV and figure; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", nargs="+", choices=["softmax", "catnat"], default=["softmax"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--total-env-steps", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2, help="trainings at a time")
    parser.add_argument("--output", default="rl_taxi_masking", help="file stem in docs/results")
    args = parser.parse_args()
    command = shlex.join(["python", "benchmarks/rl_masking.py", *sys.argv[1:]])
    jobs = [
        (variant, policy, seed, args.total_env_steps)
        for seed in range(args.seeds)
        for policy in args.policies
        for variant in VARIANTS
    ]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        runs = list(pool.map(curve, *zip(*jobs, strict=True)))
    path = RESULTS / f"{args.output}.csv"
    repeated = {(variant, policy, seed) for variant, policy, seed, _ in jobs}
    kept = [
        run
        for run in read_csv(path)
        if (run["variant"], run["policy"], run["seed"]) not in repeated
    ]
    runs = kept + runs
    write_csv(runs, path)
    plot(runs, RESULTS / f"{args.output}.png", command)
    budgets = [
        args.total_env_steps // 8,
        args.total_env_steps // 4,
        args.total_env_steps // 2,
        args.total_env_steps,
    ]
    print(f"# `{command}`\n")
    print(
        f"device: CPU, {args.workers} trainings at a time, 1 thread each, "
        f"torch {torch.__version__}\n"
    )
    print(table(runs, budgets))


if __name__ == "__main__":
    main()
