"""Actor-critic configs: PPO and A2C on gymnasium tasks, softmax and catnat policies.

``configs/rl/<env>/<algorithm>_<parameterization>.yaml``, and
``ppo_masked_<parameterization>.yaml`` (invalid-action masks) for the environments of
``MASKED``. Hyperparameters follow the
rl-baselines3-zoo tables (PPO and A2C on CartPole-v1 and LunarLander, A2C on
Acrobot-v1), and CleanRL's ``ppo.py`` defaults for PPO on Acrobot-v1 (docs/rl.md lists
the returns they reach). Differences from the zoo: PPO's clip range is
constant (the zoo anneals it on CartPole), and where the zoo normalises with
``VecNormalize`` only the observations are normalised here. The value loss is
``value_coef * 0.5 * MSE`` (CleanRL's form), so the zoo's ``vf_coef`` (on a plain MSE)
weighs the critic twice as much as the same number does here; the measured returns
in docs/rl.md are for these configs as written.

Taxi-v4 (gymnasium's Taxi, whose info reports the valid actions) is PPO with the
CartPole settings but a larger budget, with and without masking. The multi-discrete
task is LunarLander-v3 with continuous actions discretised into 5 main-engine levels
and 3 side-engine levels (``MultiDiscrete([5, 3])``), PPO with the LunarLander
settings.

The budget is ``data.total_env_steps``, one training epoch (``trainer.max_epochs: 1``)
of one rollout per batch; ``trainer.val_check_interval`` (rollouts) evaluates about
every ``EVAL_EVERY`` environment steps and ``trainer.log_every_n_steps`` (rollouts)
logs about every ``LOG_EVERY`` steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _common import CONFIGS, PARAMETERIZATIONS

# name -> (gymnasium id, the policy's categories: the actions, or the largest action
# variable); the model's observation_size and action_sizes come from the data module,
# and num_categories must agree with it (checked before training)
ENVIRONMENTS: dict[str, tuple[str, int]] = {
    "cartpole": ("CartPole-v1", 2),
    "acrobot": ("Acrobot-v1", 3),
    "lunarlander": ("LunarLander-v3", 4),
    "taxi": ("Taxi-v4", 6),
    "lunarlander_multidiscrete": ("LunarLander-v3", 5),  # MultiDiscrete([5, 3])
}
# data settings that make the environment: continuous LunarLander, discretised
ENVIRONMENT_DATA: dict[str, dict[str, Any]] = {
    "lunarlander_multidiscrete": {"env_kwargs": {"continuous": True}, "action_bins": [5, 3]},
}
# environments with a masked-actions variant of their PPO configs
MASKED = {"taxi"}
# (algorithm, env) -> (data settings, model settings)
SETTINGS: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = {
    ("ppo", "cartpole"): (
        {"num_envs": 8, "num_steps": 32, "total_env_steps": 100_000},
        {
            "learning_rate": 1e-3,
            "gamma": 0.98,
            "gae_lambda": 0.8,
            "update_epochs": 20,
            "num_minibatches": 1,
            "entropy_coef": 0.0,
        },
    ),
    ("ppo", "acrobot"): (
        {"num_envs": 4, "num_steps": 128, "total_env_steps": 500_000},
        {"learning_rate": 2.5e-4, "value_clip_range": 0.2},
    ),
    ("ppo", "lunarlander"): (
        {"num_envs": 16, "num_steps": 1024, "total_env_steps": 1_000_000},
        {
            "learning_rate": 3e-4,
            "anneal_learning_rate": False,
            "gamma": 0.999,
            "gae_lambda": 0.98,
            "num_minibatches": 256,
        },
    ),
    ("ppo", "taxi"): (
        {"num_envs": 8, "num_steps": 128, "total_env_steps": 200_000},
        {"learning_rate": 1e-3, "update_epochs": 4, "num_minibatches": 4},
    ),
    ("a2c", "cartpole"): ({"num_envs": 8, "num_steps": 5, "total_env_steps": 500_000}, {}),
    ("a2c", "acrobot"): (
        {"num_envs": 16, "num_steps": 5, "total_env_steps": 500_000},
        {"normalize_observations": True},
    ),
    ("a2c", "lunarlander"): (
        {"num_envs": 8, "num_steps": 5, "total_env_steps": 200_000},
        {
            "learning_rate": 8.3e-4,
            "anneal_learning_rate": True,
            "gamma": 0.995,
            "entropy_coef": 1e-5,
        },
    ),
}
# the discretised LunarLander trains with the discrete one's settings
SETTINGS[("ppo", "lunarlander_multidiscrete")] = SETTINGS[("ppo", "lunarlander")]
# A2C's defaults in the zoo (Stable-Baselines3's A2C)
A2C = {
    "algorithm": "a2c",
    "learning_rate": 7e-4,
    "anneal_learning_rate": False,
    "gae_lambda": 1.0,
    "update_epochs": 1,
    "num_minibatches": 1,
    "normalize_advantages": False,
    "entropy_coef": 0.0,
}
EVAL_EVERY = {
    "cartpole": 10_000,
    "acrobot": 25_000,
    "lunarlander": 50_000,
    "taxi": 10_000,
    "lunarlander_multidiscrete": 50_000,
}
LOG_EVERY = 2_000


def a2c_settings(overrides: dict[str, Any]) -> dict[str, Any]:
    """A2C's model settings: the zoo's defaults, the environment's overrides, RMSprop.

    Stable-Baselines3's A2C uses RMSprop (alpha 0.99, eps 1e-5) at the learning rate.
    """
    settings = {**A2C, **overrides}
    rmsprop = {"lr": settings.pop("learning_rate"), "alpha": 0.99, "eps": 1e-5}
    return {**settings, "optimizer": {"class_path": "torch.optim.RMSprop", "init_args": rmsprop}}


def rl_config(
    algorithm: str, env: str, parameterization: str, masked: bool = False
) -> dict[str, Any]:
    """An ActorCritic + GymnasiumDataModule config; ``masked``: with invalid-action masks."""
    env_id, num_categories = ENVIRONMENTS[env]
    data, model = SETTINGS[(algorithm, env)]
    data = {**ENVIRONMENT_DATA.get(env, {}), **data}
    masks = {"use_action_masks": True} if masked else {}
    per_rollout = data["num_envs"] * data["num_steps"]
    return {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": 1,
            "val_check_interval": max(1, EVAL_EVERY[env] // per_rollout),
            "num_sanity_val_steps": 0,
            "log_every_n_steps": max(1, LOG_EVERY // per_rollout),
            "callbacks": [
                {
                    "class_path": "ModelCheckpoint",
                    "init_args": {"monitor": "val/episodic_return", "mode": "max"},
                },
            ],
        },
        "model": {
            "class_path": "ActorCritic",
            "init_args": {
                # no estimator: the policy gradient is written with log pi
                "latent": {
                    "class_path": "DiscreteLatent",
                    "init_args": {
                        "num_categories": num_categories,
                        "parameterization": PARAMETERIZATIONS[parameterization],
                    },
                },
                **masks,
                **(a2c_settings(model) if algorithm == "a2c" else model),
            },
        },
        "data": {"class_path": "GymnasiumDataModule", "init_args": {"env_id": env_id, **data}},
    }


def configs() -> dict[Path, dict[str, Any]]:
    """Every RL config, by path."""
    unmasked = {
        CONFIGS / "rl" / env / f"{algorithm}_{parameterization}.yaml": rl_config(
            algorithm, env, parameterization
        )
        for algorithm, env in SETTINGS
        for parameterization in PARAMETERIZATIONS
    }
    masked = {
        CONFIGS / "rl" / env / f"ppo_masked_{parameterization}.yaml": rl_config(
            "ppo", env, parameterization, masked=True
        )
        for env in MASKED
        for parameterization in PARAMETERIZATIONS
    }
    return {**unmasked, **masked}
