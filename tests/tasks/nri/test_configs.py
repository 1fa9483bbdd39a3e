"""Every NRI config parses and trains a step on a tiny simulated data set; test and images run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from catlight.latent import ESTIMATORS
from tests.config_checks import assert_print_config_resolves

REPO = Path(__file__).resolve().parents[3]
CONFIG_FILES = sorted((REPO / "configs" / "nri").rglob("*.yaml"))
CONFIG_IDS = [str(path.relative_to(REPO / "configs")) for path in CONFIG_FILES]
TRAIN_STEPS, TEST_STEPS = 10, 20


@pytest.fixture(scope="module")
def particles_dir(tmp_path_factory) -> Path:
    """One data_dir for the module: each data setting is simulated once and cached."""
    return tmp_path_factory.mktemp("particles")


def tiny_data_args(data_dir: Path) -> list[str]:
    """8 / 4 / 4 simulations of 10 (test: 20) steps, and the model reading 10 steps."""
    settings = {
        "data_dir": str(data_dir),
        "num_train": 8,
        "num_valid": 4,
        "num_test": 4,
        "train_steps": TRAIN_STEPS,
        "test_steps": TEST_STEPS,
        "batch_size": 4,
    }
    args = [
        item for key, value in settings.items() for item in (f"--data.init_args.{key}", str(value))
    ]
    return [*args, "--model.init_args.num_timesteps", str(TRAIN_STEPS)]


def test_nri_configs_cover_the_data_sets_and_estimators():
    names = set(CONFIG_IDS)
    assert {"nri/springs5.yaml", "nri/charged5.yaml", "nri/springs10.yaml"} <= names
    assert {"nri/kuramoto5.yaml", "nri/kuramoto5_skip_first.yaml"} <= names
    assert "nri/springs5_catnat.yaml" in names
    estimators = {
        yaml.safe_load(path.read_text())["model"]["init_args"]["latent"]["init_args"]["estimator"][
            "class_path"
        ]
        for path in CONFIG_FILES
    }
    # every estimator of the registry but ST, REINFORCE and IndeCateR (N K decoder passes
    # per sample), and the spanning tree's
    variants = {entry.cls.__name__ for entry in ESTIMATORS.values()}
    left_out = {"StraightThrough", "Reinforce", "IndeCateR"}
    assert estimators == variants - left_out | {"TraceReinforce"}


@pytest.mark.parametrize("path", CONFIG_FILES, ids=CONFIG_IDS)
def test_nri_config_print_config_resolves(path, monkeypatch, capsys):
    printed, _ = assert_print_config_resolves(path, monkeypatch, capsys)
    assert printed["model"]["class_path"] == "catlight.tasks.NRI"


@pytest.mark.parametrize("path", CONFIG_FILES, ids=CONFIG_IDS)
def test_nri_config_fast_dev_run_trains_one_step(path, run_cli, particles_dir):
    cli = run_cli(
        "fit", "--config", str(path), "--trainer.fast_dev_run", "1", *tiny_data_args(particles_dir)
    )
    written = yaml.safe_load(path.read_text())
    estimator = written["model"]["init_args"]["latent"]["init_args"]["estimator"]["class_path"]
    assert type(cli.model.latent.estimator).__name__ == estimator
    assert cli.trainer.global_step == 1
    metrics = cli.trainer.callback_metrics
    for name in ("train/loss", "val/nll", "val/mse_1step", "val/edge_acc_best", "hp_metric"):
        assert math.isfinite(metrics[name].item()), name
    assert 0 <= metrics["val/edge_acc_best"].item() <= 1
    # edge existence is ranked when type 0 means "no edge"
    assert ("val/edge_auroc" in metrics) == written["model"]["init_args"]["skip_first"]


def test_nri_test_reports_mse_by_horizon_and_tensorboard_gets_images(run_cli, particles_dir):
    config = str(REPO / "configs" / "nri" / "springs5.yaml")
    common = [
        "--config",
        config,
        *tiny_data_args(particles_dir),
        "--model.init_args.test_horizons",
        "[1, 5, 9]",
    ]
    cli = run_cli(
        "fit",
        *common,
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "1",
        "--trainer.num_sanity_val_steps",
        "0",
        "--trainer.log_every_n_steps",
        "1",
    )
    events = EventAccumulator(cli.trainer.logger.log_dir)
    events.Reload()
    assert {"val/graphs_true_vs_inferred", "val/paths_true_vs_predicted"} <= set(
        events.Tags()["images"]
    )
    assert "hp_metric" in events.Tags()["scalars"]

    cli = run_cli("test", *common)
    metrics = cli.trainer.callback_metrics
    for name in ("test/edge_acc", "test/edge_acc_best", "test/mse_1step", "test/mse_9step"):
        assert math.isfinite(metrics[name].item()), name
    # errors grow with the horizon of an untrained open-loop roll-out
    assert metrics["test/mse_9step"] > metrics["test/mse_1step"]
