"""Gymnasium environments as a data module: rollouts of the current policy and evaluations.

In reinforcement learning the data depend on the model: each training batch is a
:class:`Rollout` that the policy being trained collects right before the step that
learns from it, and each validation batch is a set of :class:`Episodes` played by
its deterministic (argmax) policy. The data module owns the environments and the
collection loop; the LightningModule only has to be an :class:`Agent`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv
from lightning.pytorch import LightningDataModule
from torch import Tensor
from typing_extensions import override

__all__ = ["Agent", "Episodes", "GymnasiumDataModule", "Rollout", "RolloutCollector"]

# evaluation environments are seeded apart from the training ones
_EVAL_SEED_OFFSET = 1_000_000


@runtime_checkable
class Agent(Protocol):
    """What the collection loop needs from a model (``ActorCritic`` is one).

    Observations are float32 ``(E, observation_size)``; every output is ``(E,)``.
    """

    observation_size: int
    num_actions: int
    device: torch.device

    def act(self, observations: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Sampled actions, their log-probabilities and the values of the observations."""

    def value(self, observations: Tensor) -> Tensor:
        """Values of the observations."""

    def greedy_action(self, observations: Tensor) -> Tensor:
        """The most probable actions."""


@dataclass
class Rollout:
    """``T`` steps of ``E`` environments, in the order gymnasium returned them.

    Gymnasium 1.x vector environments reset on the step *after* an episode ends: that
    step returns the reset observation with reward 0, ignores the action, and is
    marked ``valid = False`` here. So the row after an episode's last step holds the
    episode's final observation and its value, which is what a truncated step
    bootstraps from (see :func:`catlight.tasks.rl.advantages.generalized_advantages`).

    Shapes:
        - observations: ``(T, E, D)`` float32, what the policy acted on
        - actions: ``(T, E)`` int64; log_probs, values, rewards: ``(T, E)`` float32
        - terminated, truncated, valid: ``(T, E)`` bool
        - bootstrap_values: ``(E,)``, the values of the observations after the last row
        - episode_returns, episode_lengths: ``(M,)``, the M episodes that ended
    """

    observations: Tensor
    actions: Tensor
    log_probs: Tensor
    values: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    valid: Tensor
    bootstrap_values: Tensor
    episode_returns: Tensor
    episode_lengths: Tensor

    @property
    def num_env_steps(self) -> int:
        """Environment steps taken (``T * E``, autoreset steps included)."""
        return self.rewards.numel()


@dataclass
class Episodes:
    """Returns and lengths of complete episodes. Shapes: both ``(M,)``."""

    returns: Tensor
    lengths: Tensor


def observation_size(space: gym.Space) -> int:
    """Inputs of the policy for one observation: a flattened Box, or Discrete one-hot.

    Raises:
        ValueError: for any other observation space.
    """
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    raise ValueError(
        f"GymnasiumDataModule: observation spaces must be Box or Discrete, got {space}; "
        "wrap the environment (e.g. gymnasium.wrappers.FlattenObservation)"
    )


def encode_observations(space: gym.Space, observations: np.ndarray) -> Tensor:
    """Float32 policy inputs. Shapes: ``(*lead, *space.shape) -> (*lead, D)``."""
    if isinstance(space, gym.spaces.Discrete):
        return F.one_hot(torch.as_tensor(observations - space.start), int(space.n)).float()
    lead = observations.shape[: observations.ndim - len(space.shape)]
    return torch.as_tensor(observations, dtype=torch.float32).reshape(*lead, -1)


class RolloutCollector:
    """Steps vector environments with an agent's policy, one :class:`Rollout` at a time.

    The environments keep running between rollouts (episodes span rollouts); the
    running return and length of each environment's episode are carried over.

    Args:
        envs: vector environments in next-step autoreset mode (gymnasium's default).
        num_steps: T, steps per environment and rollout.
        seeds: one seed per environment, used at the first reset.

    Raises:
        ValueError: if the environments reset otherwise than on the next step.
    """

    def __init__(self, envs: VectorEnv, num_steps: int, seeds: list[int]) -> None:
        if envs.metadata.get("autoreset_mode") != AutoresetMode.NEXT_STEP:
            raise ValueError(
                "RolloutCollector: the vector environments must autoreset on the next step "
                f"(AutoresetMode.NEXT_STEP), got {envs.metadata.get('autoreset_mode')}"
            )
        self.envs = envs
        self.num_steps = num_steps
        self.space = envs.single_observation_space
        observations, _ = envs.reset(seed=seeds)
        self._observations = encode_observations(self.space, observations)
        self._resetting = np.zeros(envs.num_envs, dtype=bool)  # next step is an autoreset
        self._episode_returns = np.zeros(envs.num_envs)
        self._episode_lengths = np.zeros(envs.num_envs, dtype=np.int64)

    @torch.no_grad()
    def collect(self, agent: Agent) -> Rollout:
        """Play ``num_steps`` steps in every environment with ``agent.act``."""
        shape = (self.num_steps, self.envs.num_envs)
        observations = torch.empty(*shape, self._observations.shape[-1])
        actions = torch.empty(shape, dtype=torch.long)
        log_probs, values = torch.empty(shape), torch.empty(shape)
        rewards = np.empty(shape, dtype=np.float32)
        terminated, truncated, valid = (np.empty(shape, dtype=bool) for _ in range(3))
        ended_returns, ended_lengths = [], []
        for step in range(self.num_steps):
            observations[step] = self._observations
            valid[step] = ~self._resetting
            step_actions, log_probs[step], values[step] = agent.act(
                self._observations.to(agent.device)
            )
            actions[step] = step_actions
            next_observations, rewards[step], terminated[step], truncated[step], _ = self.envs.step(
                step_actions.cpu().numpy()
            )
            self._episode_returns += rewards[step]
            self._episode_lengths += valid[step]
            self._resetting = terminated[step] | truncated[step]
            if self._resetting.any():
                ended_returns.append(self._episode_returns[self._resetting])
                ended_lengths.append(self._episode_lengths[self._resetting])
                self._episode_returns[self._resetting] = 0.0
                self._episode_lengths[self._resetting] = 0
            self._observations = encode_observations(self.space, next_observations)
        bootstrap_values = agent.value(self._observations.to(agent.device)).cpu()
        return Rollout(
            observations=observations,
            actions=actions,
            log_probs=log_probs,
            values=values,
            rewards=torch.from_numpy(rewards),
            terminated=torch.from_numpy(terminated),
            truncated=torch.from_numpy(truncated),
            valid=torch.from_numpy(valid),
            bootstrap_values=bootstrap_values,
            episode_returns=torch.from_numpy(np.concatenate([[], *ended_returns])).float(),
            episode_lengths=torch.from_numpy(np.concatenate([[], *ended_lengths])).long(),
        )


@torch.no_grad()
def evaluate(envs: VectorEnv, agent: Agent, seeds: list[int]) -> Episodes:
    """One episode per environment with ``agent.greedy_action``, from reset seeds ``seeds``.

    Returns:
        The returns and lengths of the ``envs.num_envs`` episodes.
    """
    space = envs.single_observation_space
    observations, _ = envs.reset(seed=seeds)
    returns = np.zeros(envs.num_envs)
    lengths = np.zeros(envs.num_envs, dtype=np.int64)
    playing = np.ones(envs.num_envs, dtype=bool)
    while playing.any():
        actions = agent.greedy_action(encode_observations(space, observations).to(agent.device))
        observations, rewards, terminated, truncated, _ = envs.step(actions.cpu().numpy())
        returns += rewards * playing
        lengths += playing
        playing &= ~(terminated | truncated)
    return Episodes(torch.from_numpy(returns).float(), torch.from_numpy(lengths))


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

    Args:
        env_id: a registered gymnasium id with a Discrete action space
            (``CartPole-v1``, ``Acrobot-v1``, ``LunarLander-v3`` with the box2d extra).
        env_kwargs: keyword arguments of ``gymnasium.make``.
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
            that is not Discrete, an unsupported observation space; at setup, for
            ``trainer.max_epochs != 1`` or a model whose sizes do not match.
    """

    def __init__(
        self,
        env_id: str = "CartPole-v1",
        env_kwargs: dict[str, Any] | None = None,
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
        self.num_envs = num_envs
        self.num_steps = num_steps
        self.total_env_steps = total_env_steps
        self.vectorization = vectorization
        self.eval_episodes = eval_episodes
        self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if seed is None else seed
        env = gym.make(env_id, **self.env_kwargs)
        self.observation_space, self.action_space = env.observation_space, env.action_space
        env.close()
        if not isinstance(self.action_space, gym.spaces.Discrete) or self.action_space.start:
            raise ValueError(
                f"GymnasiumDataModule: {env_id} has action space {self.action_space}; "
                "actor-critic with a categorical policy needs a Discrete action space "
                "starting at 0"
            )
        self.observation_size = observation_size(self.observation_space)
        self.collector: RolloutCollector | None = None
        self.eval_envs: VectorEnv | None = None

    @property
    def num_actions(self) -> int:
        """Actions of the environment: the categories of the model's policy."""
        return int(self.action_space.n)

    def make_envs(self, num_envs: int, vectorization: Literal["sync", "async"]) -> VectorEnv:
        """``num_envs`` copies of the environment, autoreset on the next step."""
        env_fns = [functools.partial(gym.make, self.env_id, **self.env_kwargs)] * num_envs
        if vectorization == "async":
            return AsyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.NEXT_STEP)
        return SyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.NEXT_STEP)

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
        if agent.num_actions != self.num_actions:
            raise ValueError(
                f"{name}: latent.num_categories is {agent.num_actions} but {self.env_id} has "
                f"{self.num_actions} actions; set model.init_args.latent.init_args."
                f"num_categories to {self.num_actions}"
            )
        if agent.observation_size != self.observation_size:
            raise ValueError(
                f"{name}: observation_size is {agent.observation_size} but {self.env_id} "
                f"observations have {self.observation_size} values; set "
                f"model.init_args.observation_size to {self.observation_size}"
            )
