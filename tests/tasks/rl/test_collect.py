"""GymnasiumDataModule and RolloutCollector: autoreset, episode statistics, seeds, errors."""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from catlight.tasks.rl import GymnasiumDataModule, RolloutCollector
from catlight.tasks.rl.collect import evaluate

EPISODE_LENGTH = 3
COUNTDOWN_ID = "catlight-test/Countdown-v0"


class CountdownEnv(gym.Env):
    """Deterministic episodes of EPISODE_LENGTH steps, reward 1 per step.

    The observation is ``(episode index, step within the episode)``; even episodes
    terminate, odd ones are truncated.
    """

    observation_space = gym.spaces.Box(0.0, 1e6, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode = getattr(self, "episode", -1) + 1
        self.step_index = 0
        return self._observation(), {}

    def step(self, action):
        self.step_index += 1
        ended = self.step_index == EPISODE_LENGTH
        terminated, truncated = ended and self.episode % 2 == 0, ended and self.episode % 2 == 1
        return self._observation(), 1.0, terminated, truncated, {}

    def _observation(self):
        return np.array([self.episode, self.step_index], dtype=np.float32)


if COUNTDOWN_ID not in gym.registry:
    gym.register(COUNTDOWN_ID, entry_point=CountdownEnv)


class ObservationValueAgent:
    """An Agent whose value of an observation encodes it: 10 * episode + step."""

    observation_size = 2
    action_sizes = (2,)
    use_action_masks = False
    device = torch.device("cpu")

    def act(self, observations, action_masks=None):
        size = observations.shape[0]
        return torch.zeros(size, 1, dtype=torch.long), torch.zeros(size), self.value(observations)

    def value(self, observations):
        return 10 * observations[:, 0] + observations[:, 1]

    def greedy_action(self, observations, action_masks=None):
        return torch.zeros(observations.shape[0], 1, dtype=torch.long)


class CartPoleAgent(ObservationValueAgent):
    observation_size = 4

    def value(self, observations):
        return observations.sum(-1)


def countdown_envs(num_envs: int) -> SyncVectorEnv:
    return SyncVectorEnv([lambda: gym.make(COUNTDOWN_ID)] * num_envs)


def test_collector_never_links_transitions_across_episodes():
    collector = RolloutCollector(countdown_envs(2), num_steps=6, seeds=[0, 1])
    agent = ObservationValueAgent()
    rollouts = [collector.collect(agent) for _ in range(3)]
    observations = torch.cat([rollout.observations for rollout in rollouts])  # (18, 2, 2)
    valid = torch.cat([rollout.valid for rollout in rollouts])
    terminated = torch.cat([rollout.terminated for rollout in rollouts])
    truncated = torch.cat([rollout.truncated for rollout in rollouts])
    episode, step = observations[..., 0], observations[..., 1]
    # every 4th step is the autoreset step that follows an episode's last one, also
    # across rollout boundaries (rows 3, 7, 11, 15 span rollouts 1 to 3)
    expected_valid = torch.tensor([row % 4 != 3 for row in range(18)]).unsqueeze(1).expand(18, 2)
    assert torch.equal(valid, expected_valid)
    ended = terminated | truncated
    for row in range(17):
        same_episode = episode[row + 1] == episode[row]
        # within an episode the next row is the next step; after its last step the
        # next row is its final observation, which no valid transition starts from
        assert torch.all(same_episode[valid[row]])
        assert torch.all((step[row + 1] == step[row] + 1)[valid[row]])
        assert torch.all(~valid[row + 1][ended[row]])
    # the autoreset rows hold reward 0 and never end an episode
    rewards = torch.cat([rollout.rewards for rollout in rollouts])
    assert torch.all(rewards[~valid] == 0) and torch.all(rewards[valid] == 1)
    assert not torch.any(ended[~valid])
    # episodes alternate terminated / truncated and last EPISODE_LENGTH steps
    assert torch.equal(terminated[2::4], (episode[2::4] % 2 == 0))
    assert torch.equal(truncated[2::4], (episode[2::4] % 2 == 1))


def test_collector_bootstraps_a_truncation_from_the_truncated_state():
    collector = RolloutCollector(countdown_envs(1), num_steps=8, seeds=[0])
    rollout = collector.collect(ObservationValueAgent())
    # episode 1 is truncated at its third step (row 6); row 7 is its final
    # observation (episode 1, step 3), whose value GAE bootstraps from
    assert rollout.truncated[6, 0] and not rollout.valid[7, 0]
    assert rollout.values[7, 0].item() == 10 * 1 + 3
    # after the last row: the first observation of episode 2
    assert rollout.bootstrap_values.tolist() == [20.0]


def test_collector_reports_every_ended_episode_once():
    collector = RolloutCollector(countdown_envs(2), num_steps=10, seeds=[0, 1])
    rollout = collector.collect(ObservationValueAgent())
    # rows 2, 6 end episodes in both environments (row 10 would be the next)
    assert rollout.episode_returns.tolist() == [3.0, 3.0, 3.0, 3.0]
    assert rollout.episode_lengths.tolist() == [3, 3, 3, 3]
    assert rollout.num_env_steps == 20
    # an episode in progress at the end continues in the next rollout
    next_rollout = collector.collect(ObservationValueAgent())
    assert next_rollout.episode_lengths.tolist() == [3, 3, 3, 3, 3, 3]


def test_collector_rejects_same_step_autoreset():
    envs = SyncVectorEnv([lambda: gym.make(COUNTDOWN_ID)], autoreset_mode=AutoresetMode.SAME_STEP)
    with pytest.raises(ValueError, match="NEXT_STEP"):
        RolloutCollector(envs, num_steps=4, seeds=[0])


def test_evaluate_plays_one_episode_per_environment():
    episodes = evaluate(countdown_envs(3), ObservationValueAgent(), seeds=[0, 1, 2])
    assert episodes.returns.tolist() == [3.0, 3.0, 3.0]
    assert episodes.lengths.tolist() == [3, 3, 3]


def fake_trainer(agent, rank: int = 0, world_size: int = 1, max_epochs: int = 1):
    return SimpleNamespace(
        global_rank=rank, world_size=world_size, max_epochs=max_epochs, lightning_module=agent
    )


def test_data_module_offsets_environment_seeds_by_rank():
    data = GymnasiumDataModule("CartPole-v1", num_envs=2, num_steps=4, seed=7)
    data.trainer = fake_trainer(CartPoleAgent(), rank=1, world_size=2)
    data.setup("fit")
    expected = gym.make("CartPole-v1").reset(seed=7 + 1 * 2 + 1)[0]
    np.testing.assert_array_equal(data.collector._observations[1].numpy(), expected)
    # the budget is shared by the ranks: 100k / (2 envs x 4 steps x 2 ranks)
    assert data.num_rollouts == 6250
    data.teardown("fit")


def test_data_module_async_environments_collect_rollouts():
    data = GymnasiumDataModule("CartPole-v1", num_envs=2, num_steps=4, vectorization="async")
    envs = data.make_envs(2, "async")
    try:
        assert isinstance(envs, gym.vector.AsyncVectorEnv)
        rollout = RolloutCollector(envs, num_steps=4, seeds=[0, 1]).collect(CartPoleAgent())
        assert rollout.observations.shape == (4, 2, 4) and bool(rollout.valid[0].all())
    finally:
        envs.close()


def test_data_module_rejects_continuous_actions():
    with pytest.raises(ValueError, match=r"Pendulum-v1 has action space Box.*Discrete"):
        GymnasiumDataModule("Pendulum-v1")


def test_data_module_rejects_a_model_of_the_wrong_size():
    data = GymnasiumDataModule("Acrobot-v1")
    wrong_actions = SimpleNamespace(
        observation_size=6, action_sizes=[2], use_action_masks=False, device=None
    )
    for name in ("act", "value", "greedy_action"):
        setattr(wrong_actions, name, getattr(ObservationValueAgent, name))
    data.trainer = fake_trainer(wrong_actions)
    with pytest.raises(ValueError, match="num_categories is 2 but Acrobot-v1 has 3 actions"):
        data.setup("fit")
    wrong_actions.action_sizes, wrong_actions.observation_size = [3], 4
    with pytest.raises(
        ValueError, match="observation_size is 4 but Acrobot-v1 observations have 6"
    ):
        data.setup("fit")


def test_data_module_rejects_a_model_that_is_not_an_agent():
    data = GymnasiumDataModule()
    data.trainer = fake_trainer(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"must be an actor-critic Agent.*got Linear"):
        data.setup("fit")


def test_data_module_needs_one_epoch_for_the_budget():
    data = GymnasiumDataModule()
    data.trainer = fake_trainer(ObservationValueAgent(), max_epochs=1000)
    data.observation_size = 2
    with pytest.raises(ValueError, match=r"trainer\.max_epochs must be 1, got 1000"):
        data.setup("fit")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_envs": 0}, "num_envs must be >= 1, got 0"),
        ({"total_env_steps": 0}, "total_env_steps must be >= 1"),
        ({"vectorization": "threads"}, "vectorization must be 'sync' or 'async'"),
    ],
)
def test_data_module_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GymnasiumDataModule(**kwargs)


def test_data_module_one_hot_encodes_discrete_observations():
    data = GymnasiumDataModule("FrozenLake-v1")
    assert (data.observation_size, data.num_actions) == (16, 4)
