"""Actor-critic reinforcement learning (A2C, PPO) on gymnasium environments.

Read in CleanRL's order: :mod:`.actions` (Discrete and MultiDiscrete actions,
invalid-action masks), :mod:`.collect` (rollouts and evaluation episodes in vector
environments), :mod:`.data` (the data module owning the environments),
:mod:`.observation_normalizer`, :mod:`.advantages` (GAE),
:mod:`.losses` (the policy-gradient and value losses), :mod:`.actor_critic` (the
LightningModule, whose policy head is a :class:`~catlight.latent.DiscreteLatent`).
"""

from catlight.tasks.rl.actor_critic import ActorCritic
from catlight.tasks.rl.collect import Agent, Episodes, Rollout, RolloutCollector
from catlight.tasks.rl.data import GymnasiumDataModule

__all__ = ["ActorCritic", "Agent", "Episodes", "GymnasiumDataModule", "Rollout", "RolloutCollector"]
