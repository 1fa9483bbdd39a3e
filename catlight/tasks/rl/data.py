"""Gymnasium environments as a data module: rollouts for training, episodes for evaluation.

The data module owns the environments (see :mod:`.collect` for the collection loop):
each training batch is a :class:`~catlight.tasks.rl.collect.Rollout` collected by the
model being trained, each validation batch the
:class:`~catlight.tasks.rl.collect.Episodes` of its argmax policy.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any, Literal

import gymnasium as gym
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv
from gymnasium.wrappers import DiscretizeAction
from lightning.pytorch import LightningDataModule
from typing_extensions import override

from catlight.tasks.rl.actions import action_sizes
from catlight.tasks.rl.collect import (
    Agent,
    Episodes,
    Rollout,
    RolloutCollector,
    evaluate,
    observation_size,
)

__all__ = ["GymnasiumDataModule", "make_env"]

# evaluation environments are seeded apart from the training ones
_EVAL_SEED_OFFSET = 1_000_000


def make_env(
    env_id: str, env_kwargs: dict[str, Any], action_bins: int | tuple[int, ...] | None
) -> gym.Env:
    """``gymnasium.make(env_id, **env_kwargs)``, its Box actions discretised by ``action_bins``.

    Raises:
        ValueError: for ``action_bins`` with an action space that is not a Box.
    """
    env = gym.make(env_id, **env_kwargs)
    if action_bins is None:
        return env
    if not isinstance(env.action_space, gym.spaces.Box):
        env.close()
        raise ValueError(
            f"GymnasiumDataModule: action_bins = {action_bins} discretises a Box action "
            f"space, but {env_id} has {env.action_space}; set action_bins to null"
        )
    return DiscretizeAction(env, action_bins, multidiscrete=True)


class _Rollouts:
    """``num_rollouts`` rollouts, each collected when the training loop asks for it.

    It has a length, so Lightning fetches batches one at a time (it prefetches only
    from loaders of unknown length): every rollout is collected by the policy of the
    very step that trains on it, as on-policy methods require.
    """

    def __init__(self, collector: RolloutCollector, agent: Agent, num_rollouts: int) -> None:
        self.collector = collector
        self.agent = agent
        self.num_rollouts = num_rollouts

    def __len__(self) -> int:
        return self.num_rollouts

    def __iter__(self) -> Iterator[Rollout]:
        for _ in range(self.num_rollouts):
            yield self.collector.collect(self.agent)


class _Evaluations:
    """One batch: the :class:`Episodes` of a deterministic evaluation."""

    def __init__(self, envs: VectorEnv, agent: Agent, seeds: list[int]) -> None:
        self.envs = envs
        self.agent = agent
        self.seeds = seeds

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[Episodes]:
        yield evaluate(self.envs, self.agent, self.seeds)


class GymnasiumDataModule(LightningDataModule):
    """Rollouts from gymnasium vector environments for on-policy actor-critic training.

    One training epoch is the whole budget: ``ceil(total_env_steps / (num_envs *
    num_steps * world_size))`` rollouts per rank, one rollout per training batch (set
    ``trainer.max_epochs: 1``; ``trainer.val_check_interval: n`` evaluates every n
    rollouts). Validation and test batches are ``eval_episodes`` episodes of the
    model's argmax policy per rank, from the same reset seeds every time, so the
    evaluation curve compares like with like.

    Under DDP each rank runs its own environments: environment ``i`` of rank ``r`` is
    reset with seed ``seed + r * num_envs + i`` (evaluation ones with seeds offset by
    1,000,000).

    The action space is Discrete or MultiDiscrete; :attr:`action_sizes` lists the
    categories of its action variables (``[n]`` or ``nvec``), which the model must
    match (checked at setup). A Box action space can be discretised into a
    MultiDiscrete one with ``action_bins``.

    Args:
        env_id: a registered gymnasium id with a Discrete or MultiDiscrete action space
            (``CartPole-v1``, ``Acrobot-v1``, ``Taxi-v4``, ``LunarLander-v3`` with the
            box2d extra), or a Box one with ``action_bins``.
        env_kwargs: keyword arguments of ``gymnasium.make``.
        action_bins: discretise a Box action space uniformly into this many levels per
            dimension (one number, or one per dimension) with gymnasium's
            ``DiscretizeAction``, as a MultiDiscrete space; None: use the space as it is.
        num_envs: E, environments per rank.
        num_steps: T, steps per environment and rollout.
        total_env_steps: the training budget in environment steps, over all ranks
            (autoreset steps count, as every call to ``step`` does).
        vectorization: ``"sync"`` (one process) or ``"async"`` (a process per
            environment; worth it for slow environments only).
        eval_episodes: episodes per evaluation and rank.
        seed: base seed of the environments; None takes ``seed_everything``'s (or 0).

    Raises:
        ValueError: for a non-positive size, an unknown vectorization, an action space
            that is not Discrete or MultiDiscrete, an unsupported observation space; at
            setup, for ``trainer.max_epochs != 1`` or a model whose sizes do not match.
    """

    def __init__(
        self,
        env_id: str = "CartPole-v1",
        env_kwargs: dict[str, Any] | None = None,
        action_bins: int | list[int] | None = None,
        num_envs: int = 4,
        num_steps: int = 128,
        total_env_steps: int = 100_000,
        vectorization: Literal["sync", "async"] = "sync",
        eval_episodes: int = 10,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in [
            ("num_envs", num_envs),
            ("num_steps", num_steps),
            ("total_env_steps", total_env_steps),
            ("eval_episodes", eval_episodes),
        ]:
            if value < 1:
                raise ValueError(f"GymnasiumDataModule: {name} must be >= 1, got {value}")
        if vectorization not in ("sync", "async"):
            raise ValueError(
                f"GymnasiumDataModule: vectorization must be 'sync' or 'async', got "
                f"{vectorization!r}"
            )
        self.save_hyperparameters()
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.action_bins = tuple(action_bins) if isinstance(action_bins, list) else action_bins
        self.num_envs = num_envs
        self.num_steps = num_steps
        self.total_env_steps = total_env_steps
        self.vectorization = vectorization
        self.eval_episodes = eval_episodes
        self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if seed is None else seed
        env = make_env(env_id, self.env_kwargs, self.action_bins)
        self.observation_space, self.action_space = env.observation_space, env.action_space
        env.close()
        self.action_sizes = action_sizes(self.action_space, env_id)
        self.observation_size = observation_size(self.observation_space)
        self.num_actions = max(self.action_sizes)
        self.collector: RolloutCollector | None = None
        self.eval_envs: VectorEnv | None = None

    def make_envs(self, num_envs: int, vectorization: Literal["sync", "async"]) -> VectorEnv:
        """``num_envs`` copies of the environment, autoreset on the next step."""
        # a picklable function of plain settings, for async environments' processes
        make = functools.partial(make_env, self.env_id, self.env_kwargs, self.action_bins)
        env_fns = [make] * num_envs
        if vectorization == "async":
            envs = AsyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.NEXT_STEP)
        else:
            envs = SyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.NEXT_STEP)
        envs.spec = gym.spec(self.env_id)  # names the environment in error messages
        return envs

    def setup(self, stage: str) -> None:
        """Check the model against the environment; make this rank's environments."""
        rank, world_size = (
            (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        )
        self._world_size = world_size
        if self.trainer is not None:
            self._check_agent(self.trainer.lightning_module)
        if stage == "fit":
            if self.trainer is not None and self.trainer.max_epochs != 1:
                raise ValueError(
                    "GymnasiumDataModule: one training epoch is the whole budget of "
                    f"total_env_steps = {self.total_env_steps}, so trainer.max_epochs "
                    f"must be 1, got {self.trainer.max_epochs}"
                )
            if self.collector is None:
                seeds = [self.seed + rank * self.num_envs + i for i in range(self.num_envs)]
                envs = self.make_envs(self.num_envs, self.vectorization)
                self.collector = RolloutCollector(envs, self.num_steps, seeds)
        if self.eval_envs is None:
            self.eval_envs = self.make_envs(self.eval_episodes, "sync")
        first = self.seed + _EVAL_SEED_OFFSET + rank * self.eval_episodes
        self._eval_seeds = list(range(first, first + self.eval_episodes))

    @property
    def num_rollouts(self) -> int:
        """Rollouts per rank in the budget of ``total_env_steps``."""
        per_rollout = self.num_envs * self.num_steps * getattr(self, "_world_size", 1)
        return -(-self.total_env_steps // per_rollout)

    @override
    def train_dataloader(self) -> _Rollouts:
        return _Rollouts(self.collector, self.trainer.lightning_module, self.num_rollouts)

    @override
    def val_dataloader(self) -> _Evaluations:
        return _Evaluations(self.eval_envs, self.trainer.lightning_module, self._eval_seeds)

    @override
    def test_dataloader(self) -> _Evaluations:
        return self.val_dataloader()

    def teardown(self, stage: str) -> None:
        """Close the environments (async ones run in their own processes)."""
        if stage == "fit" and self.collector is not None:
            self.collector.envs.close()
            self.collector = None
        if self.eval_envs is not None:
            self.eval_envs.close()
            self.eval_envs = None

    def _check_agent(self, agent: object) -> None:
        """The model acts in this environment: it is an Agent with matching sizes."""
        name = type(agent).__name__
        if not isinstance(agent, Agent):
            raise ValueError(
                f"GymnasiumDataModule: the model must be an actor-critic Agent (act, value, "
                f"greedy_action; e.g. ActorCritic), got {name}"
            )
        if list(agent.action_sizes) != self.action_sizes:
            if len(self.action_sizes) == len(agent.action_sizes) == 1:
                raise ValueError(
                    f"{name}: latent.num_categories is {agent.action_sizes[0]} but "
                    f"{self.env_id} has {self.num_actions} actions; set "
                    f"model.init_args.latent.init_args.num_categories to {self.num_actions}"
                )
            raise ValueError(
                f"{name}: action_sizes is {list(agent.action_sizes)} but {self.env_id} has "
                f"action space {self.action_space}, action sizes {self.action_sizes}; set "
                f"model.init_args.action_sizes to {self.action_sizes} and "
                f"model.init_args.latent.init_args.num_categories to {self.num_actions}"
            )
        if agent.observation_size != self.observation_size:
            raise ValueError(
                f"{name}: observation_size is {agent.observation_size} but {self.env_id} "
                f"observations have {self.observation_size} values; set "
                f"model.init_args.observation_size to {self.observation_size}"
            )
