"""ActorCritic: policy heads, the PPO / A2C losses, on-policy rollouts, learning, configs."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import pytest
import torch
import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from catlight.latent import Catnat, DiscreteLatent, GumbelSoftmax, Softmax
from catlight.tasks.rl import ActorCritic, GymnasiumDataModule
from tests.config_checks import assert_print_config_resolves

REPO = Path(__file__).resolve().parents[3]
RL_CONFIGS = sorted((REPO / "configs" / "rl").rglob("*.yaml"))
RL_IDS = [str(path.relative_to(REPO / "configs" / "rl")) for path in RL_CONFIGS]


def has_box2d() -> bool:
    """Whether LunarLander can be made (gymnasium's box2d extra: Box2D and pygame)."""
    try:
        gym.make("LunarLander-v3").close()
    except gym.error.DependencyNotInstalled:
        return False
    return True


HAS_BOX2D = has_box2d()
# CartPole PPO settings of configs/rl/cartpole/ppo_*.yaml
CARTPOLE_PPO = {
    "learning_rate": 1e-3,
    "gamma": 0.98,
    "gae_lambda": 0.8,
    "update_epochs": 20,
    "num_minibatches": 1,
    "entropy_coef": 0.0,
}


def actor_critic(parameterization=None, num_actions: int = 2, **kwargs) -> ActorCritic:
    latent = DiscreteLatent(num_actions, parameterization or Softmax())
    return ActorCritic(latent, **kwargs)


def quiet_trainer(tmp_path, **kwargs) -> Trainer:
    settings = {
        "max_epochs": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "default_root_dir": tmp_path,
        **kwargs,
    }
    return Trainer(**settings)


@pytest.mark.parametrize(("parameterization", "num_scores"), [(Softmax(), 3), (Catnat(), 2)])
def test_actor_critic_outputs_num_scores_and_starts_near_uniform(parameterization, num_scores):
    torch.manual_seed(0)
    model = actor_critic(parameterization, num_actions=3, observation_size=5)
    observations = torch.randn(7, 5)
    scores, values = model(observations)
    assert scores.shape == (7, 1, num_scores) and values.shape == (7,)
    log_probs, _ = model.policy(observations)
    # the policy head is initialised with gain 0.01: close to the policy of zero scores,
    # uniform for both parameterizations
    at_zero = model.latent.log_probs(torch.zeros(1, 1, num_scores)).exp()[:, 0]
    torch.testing.assert_close(at_zero, torch.full((1, 3), 1 / 3))
    torch.testing.assert_close(log_probs.exp()[:, 0], at_zero.expand(7, 3), atol=0.02, rtol=0)
    actions, action_log_probs, action_values = model.act(observations)
    assert actions.shape == (7, 1) and action_log_probs.shape == action_values.shape == (7,)
    torch.testing.assert_close(action_log_probs, log_probs[:, 0].gather(-1, actions)[:, 0])


def test_actor_critic_shared_network_has_one_torso():
    model = actor_critic(observation_size=4, shared_network=True, hidden_sizes=[16, 8])
    assert isinstance(model.actor, torch.nn.Linear) and model.actor.in_features == 8
    assert sum(isinstance(m, torch.nn.Linear) for m in model.torso.modules()) == 2
    assert model(torch.zeros(3, 4))[0].shape == (3, 1, 2)


@pytest.mark.parametrize("parameterization", [Softmax(), Catnat()])
def test_actor_critic_sampled_actions_follow_the_policy(parameterization):
    # seeded; with 40k samples the frequencies are within 0.015 of the probabilities
    # with failure probability far below 1e-6 (Hoeffding)
    torch.manual_seed(0)
    model = actor_critic(parameterization, num_actions=5, observation_size=2)
    with torch.no_grad():
        model.actor[-1].weight.normal_(0, 1.0)
        observations = torch.ones(40_000, 2)
        actions, _, _ = model.act(observations)
        probabilities = model.policy(observations[:1])[0].exp()[0, 0]
    frequencies = torch.bincount(actions[:, 0], minlength=5).float() / actions.numel()
    torch.testing.assert_close(frequencies, probabilities, atol=0.015, rtol=0)


def minibatch(model: ActorCritic, advantages, ratios) -> dict[str, torch.Tensor]:
    """Two transitions whose collecting policy had the given probability ratios."""
    observations = torch.randn(2, 4)
    actions = torch.tensor([[0], [1]])
    with torch.no_grad():
        log_probs = model.policy(observations)[0][:, 0].gather(-1, actions)[:, 0]
    return {
        "observations": observations,
        "actions": actions,
        "log_probs": log_probs - torch.tensor(ratios).log(),
        "values": torch.zeros(2),
        "advantages": torch.tensor(advantages),
        "returns": torch.zeros(2),
    }


def test_ppo_loss_clips_the_ratio_by_hand():
    torch.manual_seed(0)
    model = actor_critic(
        observation_size=4, normalize_advantages=False, entropy_coef=0.0, value_coef=0.0
    )
    batch = minibatch(model, advantages=[1.0, -1.0], ratios=[1.5, 1.0])
    loss, diagnostics = model.loss(batch)
    # mean(max(-1 * 1.5, -1 * 1.2), max(1 * 1, 1 * 1)) = (-1.2 + 1) / 2
    torch.testing.assert_close(diagnostics["policy_loss"], torch.tensor(-0.1))
    torch.testing.assert_close(loss, torch.tensor(-0.1))
    assert diagnostics["clip_fraction"].item() == 0.5
    # approx-KL estimate E[r - 1 - log r] = (0.5 - log 1.5) / 2
    expected_kl = (0.5 - math.log(1.5)) / 2
    torch.testing.assert_close(diagnostics["approx_kl"], torch.tensor(expected_kl))


def test_ppo_and_a2c_gradients_agree_on_fresh_data():
    # at ratio 1 the clip is inactive and grad(-A rho) = -A grad log pi: A2C's gradient
    gradients = []
    for algorithm in ("ppo", "a2c"):
        torch.manual_seed(0)
        model = actor_critic(
            observation_size=4, algorithm=algorithm, update_epochs=1, num_minibatches=1
        )
        torch.manual_seed(1)
        loss, _ = model.loss(minibatch(model, advantages=[0.5, -2.0], ratios=[1.0, 1.0]))
        loss.backward()
        gradients.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(gradients[0], gradients[1])


def test_ppo_value_clipping_keeps_the_larger_error():
    torch.manual_seed(0)
    model = actor_critic(observation_size=4, value_clip_range=0.1, value_coef=1.0)
    batch = minibatch(model, advantages=[0.0, 0.0], ratios=[1.0, 1.0])
    with torch.no_grad():
        values = model(batch["observations"])[1]
    batch["values"] = values - 1.0  # the collecting critic was 1 lower
    batch["returns"] = values + 2.0
    _, diagnostics = model.loss(batch)
    # clipped prediction: old + 0.1 = values - 0.9, error 2.9 > unclipped error 2
    torch.testing.assert_close(diagnostics["value_loss"], torch.tensor(0.5 * 2.9**2))


class RecordingActorCritic(ActorCritic):
    """Records how far each rollout's stored log-probabilities are from the policy."""

    def _optimize(self, transitions):
        with torch.no_grad():
            log_probs = self.policy(transitions["observations"])[0]
            current = log_probs.gather(-1, transitions["actions"][..., None]).sum((1, 2))
        self.gaps.append((current - transitions["log_probs"]).abs().max().item())
        return super()._optimize(transitions)


def test_actor_critic_trains_each_rollout_with_the_policy_that_collected_it(tmp_path):
    torch.manual_seed(0)
    model = RecordingActorCritic(DiscreteLatent(2, Catnat()), **CARTPOLE_PPO)
    model.gaps = []
    data = GymnasiumDataModule(num_envs=2, num_steps=16, total_env_steps=128, eval_episodes=1)
    quiet_trainer(tmp_path, limit_val_batches=0).fit(model, data)
    # a prefetched rollout would come from the policy before the previous update
    assert len(model.gaps) == 4 and max(model.gaps) < 1e-5
    assert model.env_steps.item() == 128


def test_ppo_on_cartpole_improves_the_return(tmp_path):
    torch.manual_seed(0)
    model = actor_critic(**CARTPOLE_PPO)
    data = GymnasiumDataModule(num_envs=8, num_steps=32, total_env_steps=20_000, seed=0)
    trainer = quiet_trainer(tmp_path, val_check_interval=1.0)
    before = trainer.validate(model, data, verbose=False)[0]["val/episodic_return"]
    trainer.fit(model, data)
    after = trainer.callback_metrics["val/episodic_return"].item()
    # seeded: 108.7 before (the near-uniform initial policy's argmax), 500 after 20k steps
    assert after >= 400
    assert after > before + 200


def test_actor_critic_logs_against_environment_steps(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.manual_seed(0)
    model = actor_critic(normalize_observations=True, update_epochs=1, num_minibatches=2)
    data = GymnasiumDataModule(num_envs=2, num_steps=64, total_env_steps=512, eval_episodes=2)
    logger = TensorBoardLogger(tmp_path, name="rl")
    trainer = quiet_trainer(tmp_path, logger=logger, val_check_interval=2, log_every_n_steps=1)
    trainer.fit(model, data)
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    assert [e.step for e in events.Scalars("val/episodic_return")] == [256, 512]
    assert [e.step for e in events.Scalars("train/approx_kl")] == [128, 256, 384, 512]
    assert [e.step for e in events.Scalars("hp_metric")][-2:] == [256, 512]
    # the observation statistics saw every valid transition
    assert 0 < model.observation_normalizer.count.item() <= 512


def test_actor_critic_checkpoint_restores_policy_and_statistics(tmp_path):
    torch.manual_seed(0)
    model = actor_critic(normalize_observations=True, update_epochs=1, num_minibatches=1)
    data = GymnasiumDataModule(num_envs=2, num_steps=32, total_env_steps=128, eval_episodes=1)
    trainer = quiet_trainer(tmp_path, limit_val_batches=0)
    trainer.fit(model, data)
    trainer.save_checkpoint(tmp_path / "rl.ckpt")
    # the hyperparameters hold the latent module built in Python: a full unpickle
    restored = ActorCritic.load_from_checkpoint(tmp_path / "rl.ckpt", weights_only=False)
    observations = torch.randn(16, 4)
    torch.testing.assert_close(restored.policy(observations), model.policy(observations))
    assert restored.env_steps.item() == 128
    torch.testing.assert_close(
        restored.observation_normalizer.var, model.observation_normalizer.var
    )


def test_actor_critic_rejects_a_model_that_does_not_fit_the_environment(tmp_path):
    model = actor_critic(num_actions=3)
    data = GymnasiumDataModule("CartPole-v1", num_envs=1, num_steps=8, total_env_steps=8)
    with pytest.raises(ValueError, match="num_categories is 3 but CartPole-v1 has 2 actions"):
        quiet_trainer(tmp_path).fit(model, data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"algorithm": "a2c"}, "'a2c' takes one full-batch step.*got 4 and 4"),
        ({"algorithm": "trpo"}, "algorithm must be 'ppo' or 'a2c', got 'trpo'"),
        (
            {"algorithm": "a2c", "update_epochs": 1, "num_minibatches": 1, "value_clip_range": 0.2},
            "value_clip_range is a PPO setting",
        ),
        ({"gamma": 1.5}, r"gamma must be in \[0, 1\], got 1.5"),
        ({"clip_range": 0.0}, "clip_range must be > 0, got 0.0"),
        ({"value_clip_range": -1.0}, "value_clip_range must be > 0 or None"),
        ({"entropy_coef": -0.1}, "entropy_coef must be >= 0"),
        ({"shared_network": True, "hidden_sizes": []}, "shared_network needs hidden_sizes"),
    ],
)
def test_actor_critic_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        actor_critic(**kwargs)


def test_rl_configs_cover_every_algorithm_environment_and_policy():
    names = {(path.parent.name, path.stem) for path in RL_CONFIGS}
    parameterizations = ("softmax", "catnat")
    assert names == {
        (env, f"{algorithm}_{parameterization}")
        for env in ("cartpole", "acrobot", "lunarlander")
        for algorithm in ("ppo", "a2c")
        for parameterization in parameterizations
    } | {
        (env, f"{algorithm}_{parameterization}")
        for env, algorithms in [
            ("taxi", ("ppo", "ppo_masked")),
            ("lunarlander_multidiscrete", ("ppo",)),
        ]
        for algorithm in algorithms
        for parameterization in parameterizations
    }


@pytest.mark.parametrize("path", RL_CONFIGS, ids=RL_IDS)
def test_rl_configs_print_config_resolves_the_yaml(path, monkeypatch, capsys):
    printed, _ = assert_print_config_resolves(path, monkeypatch, capsys)
    assert printed["model"]["class_path"] == "catlight.tasks.ActorCritic"
    parameterization = printed["model"]["init_args"]["latent"]["init_args"]["parameterization"]
    assert parameterization["class_path"].endswith(path.stem.split("_")[-1].capitalize())


@pytest.mark.parametrize("path", RL_CONFIGS, ids=RL_IDS)
def test_rl_configs_fast_dev_run_trains_one_rollout(path, run_cli):
    if path.parent.name.startswith("lunarlander") and not HAS_BOX2D:
        pytest.skip("LunarLander-v3 needs Box2D (pip install 'gymnasium[box2d]')")
    cli = run_cli(
        "fit",
        "--config",
        str(path),
        "--trainer.fast_dev_run",
        "1",
        "--data.init_args.eval_episodes",
        "2",
    )
    written = yaml.safe_load(path.read_text())
    data = written["data"]["init_args"]
    assert cli.trainer.state.finished
    assert cli.model.env_steps.item() == data["num_envs"] * data["num_steps"]
    assert math.isfinite(cli.trainer.callback_metrics["val/episodic_return"].item())
    assert math.isfinite(cli.trainer.callback_metrics["train/entropy"].item())


def test_policy_rejects_a_latent_with_an_estimator():
    latent = DiscreteLatent(2, Softmax(), GumbelSoftmax())
    with pytest.raises(
        ValueError,
        match=r"latent\.estimator \(model\.init_args\.latent\.init_args\.estimator\) must be "
        r"null, got GumbelSoftmax; the policy samples through the layer's own "
        r"sample_with_log_prob / distribution .* an estimator would be ignored",
    ):
        ActorCritic(latent)


def test_policy_acts_through_the_layer_sampling():
    torch.manual_seed(0)
    model = ActorCritic(DiscreteLatent(3, Catnat()), observation_size=4)
    observations = torch.randn(64, 4)
    torch.manual_seed(1)
    actions, log_probs, values = model.act(observations)
    torch.manual_seed(1)
    scores, expected_values = model(observations)
    expected_actions, expected_log_probs, _ = model.latent.sample_with_log_prob(scores)
    assert torch.equal(actions, expected_actions)
    assert torch.equal(log_probs, expected_log_probs[:, 0])
    assert torch.equal(values, expected_values)
