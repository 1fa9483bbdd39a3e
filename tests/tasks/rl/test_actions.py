"""MultiDiscrete actions and invalid-action masks: collection, update, evaluation, errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from catlight.latent import Catnat, DiscreteLatent, Softmax
from catlight.tasks.rl import ActorCritic, GymnasiumDataModule, RolloutCollector
from catlight.tasks.rl.actions import read_action_masks
from catlight.tasks.rl.collect import evaluate
from tests.tasks.rl.test_actor_critic import quiet_trainer

PAIR_ID = "catlight-test/PairMatch-v0"
MASKED_ID = "catlight-test/MaskedChoice-v0"
EPISODE_LENGTH = 8


class PairMatchEnv(gym.Env):
    """Two sub-actions of 3 and 2 choices; reward 1 only when both match the target.

    The observation is the one-hot target pair (3 + 2 values), drawn anew each step.
    A uniform policy earns 1/6 per step, the optimal one 1.
    """

    observation_space = gym.spaces.Box(0.0, 1.0, (5,), np.float32)
    action_space = gym.spaces.MultiDiscrete([3, 2])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.step_index = 0
        self.target = self.np_random.integers([3, 2])
        return self._observation(), {}

    def step(self, action):
        reward = float(np.array_equal(action, self.target))
        self.step_index += 1
        self.target = self.np_random.integers([3, 2])
        return self._observation(), reward, False, self.step_index == EPISODE_LENGTH, {}

    def _observation(self):
        observation = np.zeros(5, np.float32)
        observation[self.target[0]] = observation[3 + self.target[1]] = 1
        return observation


class MaskedChoiceEnv(gym.Env):
    """Four actions; in state s, actions s and (s + 2) % 4 are invalid (taking one raises).

    Reward 1 for action (s + 1) % 4; the state is random each step; episodes of 5 steps.
    """

    observation_space = gym.spaces.Discrete(4)
    action_space = gym.spaces.Discrete(4)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.step_index, self.state = 0, int(self.np_random.integers(4))
        return self.state, self._info()

    def step(self, action):
        if not self._info()["action_mask"][action]:
            raise RuntimeError(f"invalid action {action} in state {self.state}")
        reward = float(action == (self.state + 1) % 4)
        self.step_index += 1
        self.state = int(self.np_random.integers(4))
        return self.state, reward, False, self.step_index == 5, self._info()

    def _info(self):
        mask = np.ones(4, np.int8)
        mask[[self.state, (self.state + 2) % 4]] = 0
        return {"action_mask": mask}


for env_id, entry_point in [(PAIR_ID, PairMatchEnv), (MASKED_ID, MaskedChoiceEnv)]:
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=entry_point)


def vector_envs(env_id: str, num_envs: int) -> SyncVectorEnv:
    envs = SyncVectorEnv(
        [lambda: gym.make(env_id)] * num_envs, autoreset_mode=AutoresetMode.NEXT_STEP
    )
    envs.spec = gym.spec(env_id)
    return envs


def masked_model(parameterization=None, **kwargs) -> ActorCritic:
    latent = DiscreteLatent(4, parameterization or Softmax())
    return ActorCritic(latent, observation_size=4, use_action_masks=True, **kwargs)


@pytest.mark.parametrize("parameterization", [Softmax(), Catnat()], ids=["softmax", "catnat"])
def test_ppo_learns_a_multi_discrete_action_that_needs_both_variables(parameterization, tmp_path):
    torch.manual_seed(0)
    latent = DiscreteLatent(3, parameterization)
    model = ActorCritic(latent, observation_size=5, action_sizes=[3, 2], learning_rate=3e-3)
    data = GymnasiumDataModule(
        PAIR_ID, num_envs=4, num_steps=64, total_env_steps=6_144, eval_episodes=8, seed=0
    )
    assert data.action_sizes == [3, 2]
    trainer = quiet_trainer(tmp_path, val_check_interval=1.0)
    before = trainer.validate(model, data, verbose=False)[0]["val/episodic_return"]
    trainer.fit(model, data)
    after = trainer.callback_metrics["val/episodic_return"].item()
    # seeded; out of 8: a near-uniform argmax policy matches about 1/6 of the targets
    assert before <= 3
    assert after >= 6


@pytest.mark.parametrize("parameterization", [Softmax(), Catnat()], ids=["softmax", "catnat"])
def test_padded_categories_have_probability_zero(parameterization):
    torch.manual_seed(0)
    model = ActorCritic(
        DiscreteLatent(3, parameterization), observation_size=5, action_sizes=[3, 2]
    )
    observations = torch.randn(1000, 5)
    probabilities = model.policy(observations)[0].exp()
    assert probabilities.shape == (1000, 2, 3)
    assert torch.all(probabilities[:, 1, 2] == 0)
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(1000, 2))
    actions, log_probs, _ = model.act(observations)
    assert actions.shape == (1000, 2) and torch.all(actions[:, 1] < 2)
    # the joint log-probability is the sum over the two variables
    expected = probabilities.log().gather(-1, actions[..., None])[..., 0].sum(-1)
    torch.testing.assert_close(log_probs, expected)


@pytest.mark.parametrize("parameterization", [Softmax(), Catnat()], ids=["softmax", "catnat"])
def test_invalid_actions_have_probability_zero_at_collection_and_update(parameterization):
    torch.manual_seed(0)
    model = masked_model(parameterization)
    # the environment raises if an invalid action is ever taken
    rollout = RolloutCollector(vector_envs(MASKED_ID, 4), 64, seeds=[0, 1, 2, 3]).collect(model)
    masks = rollout.action_masks
    assert masks.shape == (64, 4, 1, 4) and masks.sum(-1).eq(2).all()
    assert torch.all(masks.gather(-1, rollout.actions[..., None]))
    states = rollout.observations.argmax(-1)
    assert torch.all(~masks[..., 0, :].gather(-1, states[..., None]))
    # the update recomputes the policy under the stored masks
    probabilities = model.policy(rollout.observations.flatten(0, 1), masks.flatten(0, 1))[0].exp()
    assert torch.all(probabilities[~masks.flatten(0, 1)] == 0)
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(256, 1))


class RatioRecordingActorCritic(ActorCritic):
    """Records the first minibatch's probability ratios, with and without its masks."""

    def loss(self, batch):
        if not hasattr(self, "ratios"):
            with torch.no_grad():
                for name, masks in [("masked", batch["action_masks"]), ("unmasked", None)]:
                    log_probs = self.policy(batch["observations"], masks)[0]
                    chosen = log_probs.gather(-1, batch["actions"][..., None]).sum((1, 2))
                    self.ratios = getattr(self, "ratios", {})
                    self.ratios[name] = (chosen - batch["log_probs"]).exp()
        return super().loss(batch)


def test_ppo_ratio_is_one_at_the_first_minibatch_under_masks(tmp_path):
    torch.manual_seed(0)
    model = RatioRecordingActorCritic(
        DiscreteLatent(4, Catnat()), observation_size=4, use_action_masks=True
    )
    data = GymnasiumDataModule(MASKED_ID, num_envs=2, num_steps=32, total_env_steps=64)
    quiet_trainer(tmp_path, limit_val_batches=0).fit(model, data)
    # 14 of the 16 transitions: the autoreset rows are not trained on
    ratios = model.ratios["masked"]
    torch.testing.assert_close(ratios, torch.ones(14), atol=1e-6, rtol=0)
    # without the masks the same actions would be less likely: the masks matter
    assert torch.all(model.ratios["unmasked"] < 0.9)


def test_greedy_evaluation_respects_the_action_mask():
    torch.manual_seed(0)
    model = masked_model()
    with torch.no_grad():
        model.actor[-1].bias.copy_(torch.tensor([5.0, 0.0, 0.0, 0.0]))  # prefers action 0
    # states 0 and 2 forbid action 0: MaskedChoiceEnv raises if it is taken
    episodes = evaluate(vector_envs(MASKED_ID, 4), model, seeds=[0, 1, 2, 3])
    assert episodes.lengths.tolist() == [5, 5, 5, 5]
    observations = torch.eye(4)
    masks = torch.tensor([[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]]).bool()
    assert model.greedy_action(observations)[:, 0].tolist() == [0, 0, 0, 0]
    greedy = model.greedy_action(observations, masks[:, None])
    assert torch.all(masks.gather(-1, greedy))


def test_action_masks_without_a_mask_in_info_name_the_environment_and_key(tmp_path):
    model = ActorCritic(DiscreteLatent(2, Softmax()), use_action_masks=True)
    data = GymnasiumDataModule("CartPole-v1", num_envs=1, num_steps=8, total_env_steps=8)
    with pytest.raises(
        ValueError, match=r"use_action_masks is true but CartPole-v1 gives no info\['action_mask'\]"
    ):
        quiet_trainer(tmp_path, limit_val_batches=0).fit(model, data)


def test_multi_discrete_masks_are_split_per_variable_and_padded():
    space = gym.spaces.MultiDiscrete([3, 2])
    infos = {"action_mask": np.array([[1, 0, 1, 0, 1], [0, 1, 1, 1, 1]], np.int8)}
    masks = read_action_masks(infos, space, "PairMatch")
    expected = [[[1, 0, 1], [0, 1, 0]], [[0, 1, 1], [1, 1, 0]]]
    assert masks.tolist() == torch.tensor(expected).bool().tolist()
    with pytest.raises(ValueError, match=r"has shape \(4,\) per environment; action sizes"):
        read_action_masks({"action_mask": np.ones((2, 4))}, space, "PairMatch")


def test_data_module_derives_action_sizes_and_checks_the_model(tmp_path):
    data = GymnasiumDataModule(PAIR_ID, num_envs=1, num_steps=8, total_env_steps=8)
    assert (data.action_sizes, data.num_actions) == ([3, 2], 3)
    model = ActorCritic(DiscreteLatent(3, Softmax()), observation_size=5)
    with pytest.raises(
        ValueError,
        match=r"action_sizes is \[3\] but catlight-test/PairMatch-v0 has action space "
        r"MultiDiscrete\(\[3 2\]\), action sizes \[3, 2\]; set model.init_args.action_sizes "
        r"to \[3, 2\]",
    ):
        quiet_trainer(tmp_path).fit(model, data)


def test_data_module_discretises_a_box_action_space():
    data = GymnasiumDataModule("Pendulum-v1", action_bins=[5])
    assert data.action_sizes == [5]
    envs = data.make_envs(2, "sync")
    model = ActorCritic(DiscreteLatent(5, Softmax()), observation_size=3, action_sizes=[5])
    rollout = RolloutCollector(envs, num_steps=4, seeds=[0, 1]).collect(model)
    assert rollout.actions.shape == (4, 2, 1) and rollout.action_masks is None
    envs.close()
    with pytest.raises(ValueError, match=r"action_bins = 3 discretises a Box action space"):
        GymnasiumDataModule("CartPole-v1", action_bins=3)


@pytest.mark.parametrize(
    "action_sizes", [[3, 4], [2, 2], [0, 3], []], ids=["above", "below", "zero", "empty"]
)
def test_actor_critic_rejects_action_sizes_that_do_not_fit_the_latent(action_sizes):
    with pytest.raises(ValueError, match=r"action_sizes must be sizes >= 1 whose maximum is"):
        ActorCritic(DiscreteLatent(3, Softmax()), action_sizes=action_sizes)


@pytest.mark.parametrize("parameterization", [Softmax(), Catnat()], ids=["softmax", "catnat"])
def test_discrete_rollout_is_the_single_variable_policy_of_the_layer(parameterization):
    # a Discrete space is N = 1: the same draws and log-probabilities as sampling the
    # layer on the actor's scores and stepping the environments by hand
    torch.manual_seed(0)
    model = ActorCritic(DiscreteLatent(2, parameterization))
    torch.manual_seed(1)
    rollout = RolloutCollector(vector_envs("CartPole-v1", 2), 16, seeds=[0, 1]).collect(model)
    torch.manual_seed(1)
    envs = vector_envs("CartPole-v1", 2)
    observations = torch.as_tensor(envs.reset(seed=[0, 1])[0])
    for step in range(16):
        with torch.no_grad():
            scores = model.actor(observations).unsqueeze(-2)
            actions, log_probs, _ = model.latent.sample_with_log_prob(scores)
        assert torch.equal(rollout.actions[step], actions)
        assert torch.equal(rollout.log_probs[step], log_probs[:, 0])
        observations = torch.as_tensor(envs.step(actions[:, 0].numpy())[0])
