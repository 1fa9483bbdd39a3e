"""End-to-end runs of the ``catlight`` CLI (in-process) on a tiny binarized MNIST."""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from catlight.cli import main
from catlight.data import DataFileError
from catlight.latent import ReinMax
from catlight.tasks.vae import CategoricalVAE

REPO = Path(__file__).resolve().parents[1]
GS_CONFIG = REPO / "configs" / "vae" / "categorical" / "gs_softmax.yaml"

# a small VAE whose latent is ReinMax(tau=1.3), set through the short class names
MODEL_ARGS = [
    "--model",
    "CategoricalVAE",
    "--model.init_args.num_latents",
    "3",
    "--model.init_args.encoder_sizes",
    "[16]",
    "--model.init_args.decoder_sizes",
    "[16]",
    "--model.init_args.eval_num_samples",
    "8",
    "--model.init_args.latent",
    "DiscreteLatent",
    "--model.init_args.latent.init_args.num_categories",
    "4",
    "--model.init_args.latent.init_args.parameterization",
    "Softmax",
    "--model.init_args.latent.init_args.estimator",
    "ReinMax",
    "--model.init_args.latent.init_args.estimator.tau",
    "1.3",
]


def data_args(data_dir: Path) -> list[str]:
    return [
        "--data",
        "BinarizedMNISTDataModule",
        "--data.init_args.data_dir",
        str(data_dir),
        "--data.init_args.batch_size",
        "8",
        "--data.init_args.eval_batch_size",
        "8",
    ]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, binarized_mnist_dir, cli_runner_factory):
    """One short ``catlight fit`` shared by the tests below: (runner, fit CLI, checkpoint)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        runner = cli_runner_factory(monkeypatch, tmp_path_factory.mktemp("cli_runs"))
        cli = runner(
            "fit",
            *MODEL_ARGS,
            *data_args(binarized_mnist_dir),
            "--seed_everything",
            "0",
            "--trainer.max_epochs",
            "1",
            "--trainer.limit_train_batches",
            "2",
            "--trainer.limit_val_batches",
            "2",
            "--trainer.log_every_n_steps",
            "1",
        )
        yield runner, cli, Path(cli.trainer.checkpoint_callback.best_model_path)


def run_test(runner, data_dir: Path, checkpoint: Path, *model_args: str):
    return runner(
        "test",
        *model_args,
        *data_args(data_dir),
        "--seed_everything",
        "0",
        "--ckpt_path",
        str(checkpoint),
    )


def test_cli_fit_writes_a_checkpoint(fitted):
    _, cli, checkpoint = fitted
    assert cli.trainer.global_step == 2
    assert checkpoint.is_file()
    assert checkpoint.parent == Path(cli.trainer.log_dir) / "checkpoints"
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert saved["global_step"] == 2
    for name, value in cli.model.state_dict().items():
        torch.testing.assert_close(saved["state_dict"][name], value, msg=name)
    assert saved["state_dict"]["latent.estimator.tau"].item() == pytest.approx(1.3)


def test_cli_fit_saves_the_resolved_config_in_the_log_dir(fitted):
    _, cli, _ = fitted
    config_path = Path(cli.trainer.log_dir) / "config.yaml"
    assert config_path.is_file()
    config = yaml.safe_load(config_path.read_text())
    assert config["seed_everything"] == 0
    assert config["model"]["class_path"] == "catlight.tasks.CategoricalVAE"
    assert config["model"]["init_args"]["num_latents"] == 3
    estimator = config["model"]["init_args"]["latent"]["init_args"]["estimator"]
    assert estimator["class_path"] == "catlight.latent.ReinMax"
    assert estimator["init_args"]["tau"] == 1.3


def test_cli_fit_logs_tensorboard_events_with_a_real_hp_metric(fitted):
    _, cli, _ = fitted
    log_dir = Path(cli.trainer.log_dir)
    event_files = list(log_dir.glob("events.out.tfevents.*"))
    assert event_files
    events = EventAccumulator(str(log_dir))
    events.Reload()
    scalars = events.Tags()["scalars"]
    for tag in ("hp_metric", "val/neg_elbo", "train/neg_elbo"):
        assert tag in scalars, tag
    hp_metric = events.Scalars("hp_metric")[-1].value
    # not the -1 placeholder TensorBoardLogger writes, but the validation metric
    assert hp_metric == pytest.approx(events.Scalars("val/neg_elbo")[-1].value)
    assert hp_metric == pytest.approx(cli.trainer.callback_metrics["hp_metric"].item())
    assert hp_metric > 0


def test_cli_test_from_checkpoint_logs_nll_and_neg_elbo(fitted, binarized_mnist_dir):
    runner, _, checkpoint = fitted
    cli = run_test(runner, binarized_mnist_dir, checkpoint, *MODEL_ARGS)
    metrics = cli.trainer.callback_metrics
    for name in ("test/nll", "test/neg_elbo"):
        assert math.isfinite(metrics[name].item()), name
        assert metrics[name].item() > 0, name
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    for name, value in cli.model.state_dict().items():
        torch.testing.assert_close(value, saved[name], msg=name)


def test_cli_test_from_checkpoint_repeats_with_a_fixed_seed(fitted, binarized_mnist_dir):
    runner, _, checkpoint = fitted
    first = run_test(runner, binarized_mnist_dir, checkpoint, *MODEL_ARGS)
    first_metrics = {k: v.item() for k, v in first.trainer.callback_metrics.items()}
    second = run_test(runner, binarized_mnist_dir, checkpoint, *MODEL_ARGS)
    second_metrics = {k: v.item() for k, v in second.trainer.callback_metrics.items()}
    assert set(first_metrics) >= {"test/nll", "test/neg_elbo"}
    assert first_metrics == second_metrics


def test_cli_test_takes_model_hyperparameters_from_the_checkpoint(fitted, binarized_mnist_dir):
    runner, _, checkpoint = fitted
    cli = run_test(runner, binarized_mnist_dir, checkpoint, "--model", "CategoricalVAE")
    model = cli.model
    assert model.num_latents == 3
    assert isinstance(model.latent.estimator, ReinMax)
    assert model.latent.estimator.tau.item() == pytest.approx(1.3)
    assert math.isfinite(cli.trainer.callback_metrics["test/nll"].item())


def test_cli_test_model_override_beats_the_checkpoint_hyperparameters(fitted, binarized_mnist_dir):
    runner, _, checkpoint = fitted
    cli = run_test(
        runner,
        binarized_mnist_dir,
        checkpoint,
        "--model",
        "CategoricalVAE",
        "--model.eval_num_samples",
        "3",
    )
    assert cli.model.eval_num_samples == 3  # the checkpoint says 8
    assert cli.model.num_latents == 3  # the rest is the checkpoint's
    assert math.isfinite(cli.trainer.callback_metrics["test/nll"].item())


def test_cli_checkpoint_loads_with_load_from_checkpoint(fitted):
    _, cli, checkpoint = fitted
    model = CategoricalVAE.load_from_checkpoint(checkpoint, map_location="cpu")
    assert type(model.latent.estimator) is ReinMax
    assert model.latent.estimator.tau.item() == pytest.approx(1.3)
    assert model.num_latents == 3
    assert model.num_categories == 4
    for name, value in cli.model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, msg=name)


@pytest.mark.parametrize(
    "override",
    [
        [
            "--model.init_args.latent.init_args.estimator",
            "ReinMax",
            "--model.init_args.latent.init_args.estimator.tau",
            "1.3",
        ],
        # the spelling of the issue: no init_args, full class path
        [
            "--model.latent.estimator",
            "catlight.latent.ReinMax",
            "--model.latent.estimator.tau",
            "1.3",
        ],
        # the spelling of CatlightCLI's docstring: no init_args, short class name
        ["--model.latent.estimator", "ReinMax", "--model.latent.estimator.tau", "1.3"],
    ],
    ids=["init_args_short_name", "issue_full_path", "docstring_short_name"],
)
def test_cli_override_selects_the_estimator_by_class_name(override, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["catlight"])
    with pytest.raises(SystemExit) as raised:
        main(["fit", "--config", str(GS_CONFIG), *override, "--print_config"])
    assert raised.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    latent = config["model"]["init_args"]["latent"]["init_args"]
    assert latent["estimator"]["class_path"] == "catlight.latent.ReinMax"
    assert latent["estimator"]["init_args"]["tau"] == 1.3
    # the rest of the latent is still the config's
    assert latent["num_categories"] == 10
    assert latent["parameterization"]["class_path"] == "catlight.latent.Softmax"


@pytest.mark.parametrize(
    ("override", "bad_name"),
    [
        (["--model.init_args.latent.init_args.estimator", "NoSuchEstimator"], "NoSuchEstimator"),
        (["--model", "NoSuchModel"], "NoSuchModel"),
        (["--data", "catlight.data.NoSuchData"], "catlight.data.NoSuchData"),
    ],
    ids=["estimator", "model", "data"],
)
def test_cli_unknown_class_path_exits_naming_it(override, bad_name, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["catlight"])
    with pytest.raises(SystemExit) as raised:
        main(["fit", "--config", str(GS_CONFIG), *override, "--print_config"])
    assert raised.value.code != 0
    assert bad_name in capsys.readouterr().err


def test_cli_reinmax_tau_below_one_is_rejected_in_two_lines(run_cli, binarized_mnist_dir, capsys):
    with pytest.raises(SystemExit) as raised:
        run_cli(
            "fit",
            "--config",
            str(GS_CONFIG),
            "--model.init_args.latent.init_args.estimator",
            "ReinMax",
            "--model.init_args.latent.init_args.estimator.tau",
            "0.5",
            "--data.init_args.data_dir",
            str(binarized_mnist_dir),
            "--trainer.fast_dev_run",
            "1",
        )
    assert raised.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: model.latent.estimator.tau = 0.5: ReinMax: tau must be >= 1.0, got 0.5",
        "(CATLIGHT_DEBUG=1 or --debug shows the full error)",
    ]


def test_cli_missing_data_offline_names_the_missing_file(run_cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    expected = re.escape(str(empty / "binarized_mnist_train.amat"))
    with pytest.raises(DataFileError, match=f"missing data file {expected}.*downloads are off"):
        run_cli(
            "fit",
            *MODEL_ARGS,
            *data_args(empty),
            "--data.init_args.download",
            "false",
            "--trainer.fast_dev_run",
            "1",
        )
    assert list(empty.iterdir()) == []


def test_cli_run_failing_before_training_leaves_no_log_folder(run_cli, binarized_mnist_dir):
    crash = {"class_path": "tests.test_resume.CrashAtStep", "init_args": {"step": 0}}
    with pytest.raises(RuntimeError, match="simulated crash at step 0"):
        run_cli(
            "fit",
            *MODEL_ARGS,
            *data_args(binarized_mnist_dir),
            f"--trainer.callbacks={json.dumps([crash])}",
            "--trainer.max_steps",
            "2",
        )
    assert not list((run_cli.root_dir / "lightning_logs").glob("version_*"))


def test_cli_run_logs_no_lightning_tips(run_cli, binarized_mnist_dir, caplog):
    with caplog.at_level(logging.INFO):
        run_cli(
            "fit",
            *MODEL_ARGS,
            *data_args(binarized_mnist_dir),
            "--trainer.max_steps",
            "1",
            "--trainer.limit_val_batches",
            "1",
        )
    messages = [record.getMessage() for record in caplog.records]
    assert any("max_steps=1" in message for message in messages)  # Lightning's info is there
    assert not [message for message in messages if "Tip:" in message]
