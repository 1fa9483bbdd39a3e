"""Actor-critic reinforcement learning (A2C, PPO) on gymnasium environments.

Read in CleanRL's order: :mod:`.collect` (vectorised environments, rollouts,
evaluation episodes), :mod:`.observation_normalizer`, :mod:`.advantages` (GAE),
:mod:`.losses` (the policy-gradient and value losses), :mod:`.actor_critic` (the
LightningModule, whose policy head is a :class:`~catlight.latent.DiscreteLatent`).
"""

from catlight.tasks.rl.actor_critic import ActorCritic
from catlight.tasks.rl.collect import (
    Agent,
    Episodes,
    GymnasiumDataModule,
    Rollout,
    RolloutCollector,
)

__all__ = ["ActorCritic", "Agent", "Episodes", "GymnasiumDataModule", "Rollout", "RolloutCollector"]
