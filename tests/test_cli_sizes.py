"""Sizes come from the data: the CLI fills the model's sizes from the data module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from catlight.cli import CatlightCLI, main
from catlight.cli_errors import ConfigError
from catlight.latent import DiscreteLatent, Softmax
from catlight.tasks import NRI, ActorCritic, GymnasiumDataModule

REPO = Path(__file__).resolve().parents[1]
ACROBOT = REPO / "configs" / "rl" / "acrobot" / "a2c_softmax.yaml"
NRI_CONFIG = REPO / "configs" / "nri" / "springs5.yaml"
VAE_CONFIG = REPO / "configs" / "vae" / "categorical" / "gs_softmax.yaml"
SBN_CONFIG = REPO / "configs" / "sbn" / "categorical" / "gs_softmax.yaml"
M2_CONFIG = REPO / "configs" / "semisupervised" / "mnist" / "gs_softmax.yaml"
TINY_RL = [
    "--data.num_envs=2",
    "--data.num_steps=4",
    "--data.total_env_steps=8",
    "--data.eval_episodes=1",
]


def build(config: Path, *args: str) -> CatlightCLI:
    """The model, data and trainer of ``config`` with ``args``, without running."""
    return CatlightCLI(args=["--config", str(config), "--trainer.logger=false", *args], run=False)


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["catlight"])
    monkeypatch.delenv("CATLIGHT_DEBUG", raising=False)


def test_configs_state_the_data_sizes_once():
    acrobot = yaml.safe_load(ACROBOT.read_text())["model"]["init_args"]
    nri = yaml.safe_load(NRI_CONFIG.read_text())["model"]["init_args"]
    assert "observation_size" not in acrobot
    assert "num_timesteps" not in nri


def test_a_config_without_the_observation_size_trains_with_the_environments(run_cli):
    cli = run_cli("fit", "--config", str(ACROBOT), "--trainer.fast_dev_run=1", *TINY_RL)
    assert cli.trainer.state.finished
    assert cli.model.observation_size == 6  # Acrobot-v1; the model's default is 4
    assert cli.config.fit.model.init_args.observation_size == 6  # as saved with the run


def test_the_model_reads_the_steps_of_the_training_trajectories():
    cli = build(NRI_CONFIG, "--data.train_steps=12")
    assert cli.model.num_timesteps == cli.datamodule.train_steps == 12
    assert cli.config.model.init_args.num_timesteps == 12


def test_a_size_stated_in_both_sections_that_agrees_is_kept():
    cli = build(NRI_CONFIG, "--data.train_steps=12", "--model.num_timesteps=12")
    assert cli.model.num_timesteps == 12
    cli = build(ACROBOT, "--model.observation_size=6")
    assert cli.model.observation_size == 6


@pytest.mark.parametrize(
    ("config", "args", "message"),
    [
        (
            NRI_CONFIG,
            ["--model.num_timesteps=12"],
            r"model.num_timesteps = 12: .*ParticlesDataModule\) has train_steps = 49.*"
            "leave model.num_timesteps out or make it 49",
        ),
        (
            NRI_CONFIG,
            ["--model.num_dims=3"],
            r"model.num_dims = 3: .*ParticlesDataModule\) has num_dims = 4",
        ),
        (
            ACROBOT,
            ["--model.observation_size=5"],
            r"model.observation_size = 5: .*GymnasiumDataModule\) has observation_size = 6",
        ),
        (
            ACROBOT,
            ["--model.latent.num_categories=2"],
            r"model.latent.num_categories = 2: .*has num_actions = 3.*make it 3",
        ),
        (
            M2_CONFIG,
            ["--model.latent.num_categories=5"],
            r"model.latent.num_categories = 5: .*MNISTDataModule\) has num_classes = 10",
        ),
        (
            VAE_CONFIG,
            ["--model.input_size=100"],
            r"model.input_size = 100: .*MNISTDataModule\) has image_size = 784",
        ),
        (
            SBN_CONFIG,
            ["--model.image_size=100"],
            r"model.image_size = 100: .*MNISTDataModule\) has image_size = 784",
        ),
    ],
    ids=[
        "nri-steps",
        "nri-dims",
        "rl-observations",
        "rl-actions",
        "m2-classes",
        "vae-pixels",
        "sbn-pixels",
    ],
)
def test_a_size_that_disagrees_with_the_data_is_an_error_naming_both(config, args, message):
    with pytest.raises(ConfigError, match=message):
        build(config, *args)


def test_print_config_shows_the_sizes_from_the_data(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["fit", "--config", str(ACROBOT), "--print_config"])
    assert raised.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]
    assert printed["observation_size"] == 6
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(NRI_CONFIG), "--data.train_steps=12", "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]["num_timesteps"] == 12


def test_print_config_keeps_its_flags(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--print_config=skip_default", "--config", str(ACROBOT)])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert "seed" not in printed["data"]["init_args"]  # a default
    assert printed["model"]["init_args"]["observation_size"] == 6  # not the model's default


def test_the_command_line_prints_the_disagreement_in_one_line(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["fit", "--config", str(ACROBOT), "--model.observation_size=5"])
    assert raised.value.code == 2
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("error: model.observation_size = 5: the data module")


def test_models_built_by_hand_take_their_sizes_as_arguments():
    policy = DiscreteLatent(3, Softmax())
    agent = ActorCritic(latent=policy, observation_size=6)
    data = GymnasiumDataModule("Acrobot-v1", num_envs=1, num_steps=4, total_env_steps=4)
    assert (agent.observation_size, agent.num_actions) == (
        data.observation_size,
        data.num_actions,
    )
    assert NRI(num_timesteps=12).num_timesteps == 12
