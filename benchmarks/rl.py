"""Actor-critic benchmarks: evaluation returns at the configs' budgets, and env steps/second.

Table 1 trains PPO from ``configs/rl/<env>/ppo_<parameterization>.yaml`` exactly as
``catlight fit --config ...`` would (seeds 0, 1, ...; logging and checkpoints off)
and reports the mean +- std over seeds of the final evaluation: the mean return of
the data module's 10 deterministic (argmax) episodes after the whole budget.

Table 2 compares training throughput with Stable-Baselines3's PPO given the same
hyperparameters (read from the CartPole PPO config): environment steps per second of
the training loop (catlight: first rollout to the end of training, evaluation off;
SB3: ``learn``), runs alternating so that both see the same machine load. The SB3
row is skipped when ``stable_baselines3`` is not importable; install it only in a
benchmark environment, e.g. ``python -m venv --system-site-packages /tmp/rlbench &&
/tmp/rlbench/bin/pip install stable-baselines3``. LunarLander needs Box2D
(``pip install "gymnasium[box2d]"``); its rows are skipped without it.

    python benchmarks/rl.py --preset quick   # CartPole, 5 seeds x 2 policies; speed
    python benchmarks/rl.py --preset full    # + Acrobot-v1 (500k) and LunarLander-v3 (1M)
    python benchmarks/rl.py --preset full --envs acrobot --seeds 2 --skip-speed

Both presets set ``torch.set_num_threads(1)`` (faster for 64-64 MLPs on a CPU) for
catlight and SB3 alike.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from _common import markdown
from lightning.pytorch import Callback

from catlight.cli import CatlightCLI

ROOT = Path(__file__).resolve().parents[1]
# env -> (gymnasium id, return the issue asks for, published PPO result)
TARGETS = {
    "cartpole": ("CartPole-v1", 475, "rl-zoo PPO: 500 at 100k"),
    "acrobot": ("Acrobot-v1", -100, "CleanRL PPO: -86 at 500k"),
    "lunarlander": ("LunarLander-v3", 200, "rl-zoo PPO: 242 at 1M"),
    # continuous LunarLander, actions binned to MultiDiscrete([5, 3]): no published figure
    "lunarlander_multidiscrete": ("LunarLanderContinuous, [5, 3] bins", 200, "as LunarLander"),
}


@dataclass(frozen=True)
class Preset:
    """What each table runs."""

    envs: tuple[str, ...]
    seeds: int
    speed_steps: int  # environment steps per timed run
    speed_repeats: int  # timed runs per row


PRESETS = {
    "quick": Preset(envs=("cartpole",), seeds=5, speed_steps=30_000, speed_repeats=3),
    "full": Preset(
        envs=("cartpole", "acrobot", "lunarlander"), seeds=5, speed_steps=100_000, speed_repeats=5
    ),
}


def config_path(env: str, parameterization: str) -> Path:
    """The PPO config of an environment and policy parameterization."""
    return ROOT / "configs" / "rl" / env / f"ppo_{parameterization}.yaml"


def build(path: Path, seed: int, root_dir: str, *overrides: str) -> CatlightCLI:
    """Model, data and trainer of a config, quiet, seeded."""
    args = [
        "--config",
        str(path),
        "--seed_everything",
        str(seed),
        "--trainer.logger",
        "false",
        "--trainer.enable_checkpointing",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.callbacks",
        "[]",
        "--trainer.default_root_dir",
        root_dir,
        *overrides,
    ]
    return CatlightCLI(args=args, run=False)


def final_return(path: Path, seed: int, root_dir: str) -> tuple[float, float]:
    """Train on the config's budget, evaluating once at the end: (return, seconds)."""
    start = time.perf_counter()
    cli = build(path, seed, root_dir, "--trainer.val_check_interval", "1.0")
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    episodic_return = cli.trainer.callback_metrics["val/episodic_return"].item()
    return episodic_return, time.perf_counter() - start


class _TrainTimer(Callback):
    """Wall and CPU time from the start of training (before the first rollout) to its end."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.start, self.cpu_start = time.perf_counter(), time.process_time()

    def on_train_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start


def catlight_speed(path: Path, steps: int, seed: int, root_dir: str) -> tuple[float, float]:
    """Environment steps per second (wall, CPU time) of catlight's loop, evaluation off."""
    cli = build(
        path,
        seed,
        root_dir,
        "--data.init_args.total_env_steps",
        str(steps),
        "--trainer.limit_val_batches",
        "0",
    )
    timer = _TrainTimer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    env_steps = cli.model.env_steps.item()
    return env_steps / timer.seconds, env_steps / timer.cpu_seconds


def sb3_speed(path: Path, steps: int, seed: int) -> tuple[float, float]:
    """Environment steps per second (wall, CPU time) of Stable-Baselines3's PPO, same settings."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    config = yaml.safe_load(path.read_text())
    model, data = config["model"]["init_args"], config["data"]["init_args"]
    rollout = data["num_envs"] * data["num_steps"]
    learning_rate = model.get("learning_rate", 2.5e-4)
    anneal = model.get("anneal_learning_rate", True)
    hidden = model.get("hidden_sizes", [64, 64])
    agent = PPO(
        "MlpPolicy",
        make_vec_env(data["env_id"], n_envs=data["num_envs"], seed=seed),
        learning_rate=(lambda remaining: learning_rate * remaining) if anneal else learning_rate,
        n_steps=data["num_steps"],
        batch_size=rollout // model.get("num_minibatches", 4),
        n_epochs=model.get("update_epochs", 4),
        gamma=model.get("gamma", 0.99),
        gae_lambda=model.get("gae_lambda", 0.95),
        clip_range=model.get("clip_range", 0.2),
        clip_range_vf=model.get("value_clip_range"),
        normalize_advantage=model.get("normalize_advantages", True),
        ent_coef=model.get("entropy_coef", 0.01),
        vf_coef=model.get("value_coef", 0.5),
        max_grad_norm=model.get("max_grad_norm", 0.5),
        policy_kwargs={"net_arch": {"pi": hidden, "vf": hidden}, "activation_fn": torch.nn.Tanh},
        device="cpu",
        seed=seed,
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    agent.learn(total_timesteps=steps)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return agent.num_timesteps / wall, agent.num_timesteps / cpu


def returns_table(preset: Preset, root_dir: str) -> str:
    """Table 1: mean +- std of the final evaluation return over seeds."""
    rows = []
    for env in preset.envs:
        env_id, target, published = TARGETS[env]
        if env.startswith("lunarlander") and importlib.util.find_spec("Box2D") is None:
            print(f"skipping {env_id}: Box2D is not installed", file=sys.stderr)
            continue
        config = yaml.safe_load(config_path(env, "softmax").read_text())
        budget = config["data"]["init_args"]["total_env_steps"]
        for parameterization in ("softmax", "catnat"):
            path = config_path(env, parameterization)
            results = [final_return(path, seed, root_dir) for seed in range(preset.seeds)]
            returns = [value for value, _ in results]
            print(f"{env_id} {parameterization}: {returns}", file=sys.stderr)
            spread = statistics.stdev(returns) if len(returns) > 1 else float("nan")
            rows.append(
                [
                    env_id,
                    f"{budget:,}",
                    parameterization,
                    f"{statistics.mean(returns):.1f} ± {spread:.1f}",
                    f"{min(returns):.1f}",
                    f"{sum(value >= target for value in returns)}/{len(returns)}",
                    f"{statistics.mean(seconds for _, seconds in results):.0f}",
                    f">= {target} ({published})",
                ]
            )
    header = [
        "env",
        "env steps",
        "policy",
        "eval return (mean ± std)",
        "worst seed",
        "seeds >= target",
        "s / run",
        "target",
    ]
    return markdown(header, rows)


def speed_table(preset: Preset, root_dir: str) -> str:
    """Table 2: env steps per second, catlight vs SB3, alternating runs.

    Also in process CPU time: single-threaded, it is barely moved by other processes on
    a shared machine, where wall time is.
    """
    path = config_path("cartpole", "softmax")
    has_sb3 = importlib.util.find_spec("stable_baselines3") is not None
    if not has_sb3:
        print("skipping the SB3 row: stable_baselines3 is not importable", file=sys.stderr)
    timings: dict[str, list[tuple[float, float]]] = {
        "catlight softmax": [],
        "catlight catnat": [],
        "SB3": [],
    }
    for repeat in range(preset.speed_repeats):
        for name in timings:
            if name == "SB3" and has_sb3:
                timings[name].append(sb3_speed(path, preset.speed_steps, repeat))
            elif name != "SB3":
                parameterization = name.split()[1]
                timings[name].append(
                    catlight_speed(
                        config_path("cartpole", parameterization),
                        preset.speed_steps,
                        repeat,
                        root_dir,
                    )
                )
    rows = []
    for name, values in timings.items():
        if not values:
            continue
        wall, cpu = [rate for rate, _ in values], [rate for _, rate in values]
        rows.append(
            [
                name,
                f"{statistics.median(wall):,.0f}",
                f"{min(wall):,.0f} to {max(wall):,.0f}",
                f"{statistics.median(cpu):,.0f}",
                f"{min(cpu):,.0f} to {max(cpu):,.0f}",
            ]
        )
    header = ["PPO on CartPole-v1", "env steps / s (median)", "range"]
    return markdown([*header, "CPU-time env steps / s (median)", "range"], rows)


def main() -> None:
    """Run the tables of a preset and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--seeds", type=int, help="override the preset's number of seeds")
    parser.add_argument("--envs", nargs="+", choices=sorted(TARGETS), help="override its envs")
    parser.add_argument("--skip-returns", action="store_true", help="only the speed table")
    parser.add_argument("--skip-speed", action="store_true", help="only the returns table")
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    preset = Preset(
        tuple(args.envs or preset.envs),
        args.seeds or preset.seeds,
        preset.speed_steps,
        preset.speed_repeats,
    )
    torch.set_num_threads(1)
    command = shlex.join(["python", "benchmarks/rl.py", *sys.argv[1:]])
    print(f"# `{command}`\n")
    print(
        f"device: CPU ({torch.get_num_threads()} thread), torch {torch.__version__}, "
        f"preset {args.preset}: {preset}\n"
    )
    with tempfile.TemporaryDirectory() as root_dir:
        if not args.skip_returns:
            print(returns_table(preset, root_dir) + "\n")
        if not args.skip_speed:
            print(
                f"Training throughput, {preset.speed_steps:,} env steps per run, "
                f"{preset.speed_repeats} runs each ({config_path('cartpole', 'softmax').name} "
                "hyperparameters: 8 envs x 32 steps, 20 epochs of 1 minibatch):\n"
            )
            print(speed_table(preset, root_dir))


if __name__ == "__main__":
    main()
