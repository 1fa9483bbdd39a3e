"""Rollouts of the current policy and evaluation episodes in gymnasium vector environments.

In reinforcement learning the data depend on the model: each training batch is a
:class:`Rollout` that the policy being trained collects right before the step that
learns from it, and each validation batch is a set of :class:`Episodes` played by
its deterministic (argmax) policy. :class:`RolloutCollector` and :func:`evaluate`
play the environments; the LightningModule only has to be an :class:`Agent`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium.vector import AutoresetMode, VectorEnv
from torch import Tensor

from catlight.tasks.rl.actions import action_sizes, environment_actions, read_action_masks

__all__ = ["Agent", "Episodes", "Rollout", "RolloutCollector", "evaluate"]


@runtime_checkable
class Agent(Protocol):
    """What the collection loop needs from a model (``ActorCritic`` is one).

    Observations are float32 ``(E, observation_size)``; an action is N categorical
    variables with ``action_sizes`` categories (N = 1 for a Discrete space), held as
    ``(E, N)`` int64; ``action_masks`` are bool ``(E, N, max(action_sizes))``, True
    where an action is valid, given only if ``use_action_masks``; log-probabilities
    (of the whole action) and values are ``(E,)``.
    """

    observation_size: int
    action_sizes: list[int]
    use_action_masks: bool
    device: torch.device

    def act(
        self, observations: Tensor, action_masks: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Sampled actions, their log-probabilities and the values of the observations."""

    def value(self, observations: Tensor) -> Tensor:
        """Values of the observations."""

    def greedy_action(self, observations: Tensor, action_masks: Tensor | None = None) -> Tensor:
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
        - actions: ``(T, E, N)`` int64; log_probs, values, rewards: ``(T, E)`` float32
        - terminated, truncated, valid: ``(T, E)`` bool
        - bootstrap_values: ``(E,)``, the values of the observations after the last row
        - episode_returns, episode_lengths: ``(M,)``, the M episodes that ended
        - action_masks: ``(T, E, N, K)`` bool, the valid actions the policy acted
          under; None when the agent does not use action masks
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
    action_masks: Tensor | None = None

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


def environment_name(envs: VectorEnv) -> str:
    """The id of the environments, for error messages."""
    return envs.spec.id if envs.spec is not None else "the environment"


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
        self.action_space = envs.single_action_space
        self.env_name = environment_name(envs)
        observations, self._infos = envs.reset(seed=seeds)
        self._observations = encode_observations(self.space, observations)
        self._resetting = np.zeros(envs.num_envs, dtype=bool)  # next step is an autoreset
        self._episode_returns = np.zeros(envs.num_envs)
        self._episode_lengths = np.zeros(envs.num_envs, dtype=np.int64)

    @torch.no_grad()
    def collect(self, agent: Agent) -> Rollout:
        """Play ``num_steps`` steps in every environment with ``agent.act``.

        Raises:
            ValueError: if the agent uses action masks and the environments give none.
        """
        shape = (self.num_steps, self.envs.num_envs)
        sizes = action_sizes(self.action_space, self.env_name)
        observations = torch.empty(*shape, self._observations.shape[-1])
        actions = torch.empty(*shape, len(sizes), dtype=torch.long)
        masks = (
            torch.empty(*shape, len(sizes), max(sizes), dtype=torch.bool)
            if agent.use_action_masks
            else None
        )
        log_probs, values = torch.empty(shape), torch.empty(shape)
        rewards = np.empty(shape, dtype=np.float32)
        terminated, truncated, valid = (np.empty(shape, dtype=bool) for _ in range(3))
        ended_returns, ended_lengths = [], []
        for step in range(self.num_steps):
            observations[step] = self._observations
            valid[step] = ~self._resetting
            step_masks = None
            if masks is not None:
                masks[step] = read_action_masks(self._infos, self.action_space, self.env_name)
                step_masks = masks[step].to(agent.device)
            step_actions, log_probs[step], values[step] = agent.act(
                self._observations.to(agent.device), step_masks
            )
            actions[step] = step_actions
            outcome = self.envs.step(environment_actions(self.action_space, step_actions))
            next_observations, rewards[step], terminated[step], truncated[step] = outcome[:4]
            self._infos = outcome[4]
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
            action_masks=masks,
        )


@torch.no_grad()
def evaluate(envs: VectorEnv, agent: Agent, seeds: list[int]) -> Episodes:
    """One episode per environment with ``agent.greedy_action``, from reset seeds ``seeds``.

    The greedy action is taken among the valid ones if the agent uses action masks.

    Returns:
        The returns and lengths of the ``envs.num_envs`` episodes.

    Raises:
        ValueError: if the agent uses action masks and the environments give none.
    """
    space, action_space = envs.single_observation_space, envs.single_action_space
    observations, infos = envs.reset(seed=seeds)
    returns = np.zeros(envs.num_envs)
    lengths = np.zeros(envs.num_envs, dtype=np.int64)
    playing = np.ones(envs.num_envs, dtype=bool)
    while playing.any():
        masks = None
        if agent.use_action_masks:
            masks = read_action_masks(infos, action_space, environment_name(envs))
            masks = masks.to(agent.device)
        actions = agent.greedy_action(
            encode_observations(space, observations).to(agent.device), masks
        )
        observations, rewards, terminated, truncated, infos = envs.step(
            environment_actions(action_space, actions)
        )
        returns += rewards * playing
        lengths += playing
        playing &= ~(terminated | truncated)
    return Episodes(torch.from_numpy(returns).float(), torch.from_numpy(lengths))
