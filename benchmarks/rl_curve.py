"""Evaluation return against environment steps for one RL config: how a policy starts.

Trains the config (seeds ``--first-seed``, ... ; logging and checkpoints off, as in ``rl.py``) for
``--env-steps`` environment steps, evaluating every ``--every`` rollouts (the data
module's 10 deterministic episodes), and prints the mean return over seeds at each
evaluation, with every seed's value.

    python benchmarks/rl_curve.py configs/rl/acrobot/ppo_catnat.yaml --env-steps 196608 --seeds 2

Sets ``torch.set_num_threads(1)``, like ``rl.py``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import markdown
from lightning.pytorch import Callback
from rl import build


class _ReturnCurve(Callback):
    """``(env steps, evaluation return)`` after every validation run."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        episodic_return = trainer.callback_metrics["val/episodic_return"].item()
        self.points.append((int(pl_module.env_steps), episodic_return))


def return_curve(
    path: Path, seed: int, env_steps: int, every: int, root_dir: str, *overrides: str
) -> list[tuple[int, float]]:
    """Train ``path`` for ``env_steps`` steps, evaluating every ``every`` rollouts.

    ``overrides``: more command-line arguments for the config.
    """
    cli = build(
        path,
        seed,
        root_dir,
        "--data.init_args.total_env_steps",
        str(env_steps),
        "--trainer.val_check_interval",
        str(every),
        *overrides,
    )
    curve = _ReturnCurve()
    cli.trainer.callbacks.append(curve)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return curve.points


def main() -> None:
    """Run every seed and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--env-steps", type=int, default=196_608)
    parser.add_argument("--every", type=int, default=48, help="rollouts between evaluations")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument(
        "--set",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="override a config entry, e.g. --set model.init_args.learning_rate 1e-3",
    )
    args = parser.parse_args()
    overrides = [text for key, value in args.set for text in (f"--{key}", value)]
    torch.set_num_threads(1)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as root_dir:
        curves = [
            return_curve(args.config, seed, args.env_steps, args.every, root_dir, *overrides)
            for seed in range(args.first_seed, args.first_seed + args.seeds)
        ]
    rows = []
    for points in zip(*curves, strict=True):
        returns = [value for _, value in points]
        seeds = ", ".join(f"{value:.1f}" for value in returns)
        rows.append([f"{points[0][0]:,}", f"{statistics.mean(returns):.1f}", seeds])
    seeds = f"seeds {args.first_seed}..{args.first_seed + args.seeds - 1}"
    print(f"{args.config}, {seeds}, {time.perf_counter() - start:.0f} s")
    print(markdown(["env steps", "mean eval return", "per seed"], rows))


if __name__ == "__main__":
    main()
