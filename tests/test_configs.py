"""Every YAML in configs/ is generated; the VAE and SBN ones parse and train one step.

The other families test their own configs beside their models (tests/models/).
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from catlight.latent import ESTIMATORS
from tests.config_checks import assert_print_config_resolves

REPO = Path(__file__).resolve().parents[1]
ALL_CONFIG_FILES = sorted((REPO / "configs").rglob("*.yaml"))
CONFIG_FILES = [path for path in ALL_CONFIG_FILES if path.parts[-3] in ("vae", "sbn")]
CONFIG_IDS = [str(path.relative_to(REPO / "configs")) for path in CONFIG_FILES]

# the small evaluation sample counts of each model (its __init__ argument names)
EVAL_OVERRIDES = {
    "CategoricalVAE": ["--model.init_args.eval_num_samples", "4"],
    "StructuredOutputPrediction": [
        "--model.init_args.val_num_samples",
        "4",
        "--model.init_args.eval_num_samples",
        "4",
    ],
}
TRAIN_METRIC = {"CategoricalVAE": "train/neg_elbo", "StructuredOutputPrediction": "train/loss"}
VAL_METRIC = {"CategoricalVAE": "val/neg_elbo", "StructuredOutputPrediction": "val/nll"}


def _short_name(class_path: str) -> str:
    return class_path.rsplit(".", 1)[-1]


def _latent(config: dict) -> dict:
    return config["model"]["init_args"]["latent"]["init_args"]


def test_configs_on_disk_are_exactly_the_generated_ones():
    spec = importlib.util.spec_from_file_location("generate", REPO / "configs" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    generated = set(generate.all_configs())
    assert set(ALL_CONFIG_FILES) == generated
    # 2 models x 2 latent settings x the estimators x 2 parameterizations + the grid points
    per_model = len(generate.LATENTS) * len(generate.VAE_ESTIMATORS) * 2
    assert len(CONFIG_FILES) == 2 * per_model + len(generate.REINMAX_GRID)
    assert generate.VAE_ESTIMATORS == [name for name in ESTIMATORS if name != "exact"]


def test_configs_generate_check_passes():
    result = subprocess.run(
        [sys.executable, "configs/generate.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "out of date" not in result.stderr


@pytest.mark.parametrize("path", CONFIG_FILES, ids=CONFIG_IDS)
def test_configs_print_config_resolves_the_yaml(path, monkeypatch, capsys):
    assert_print_config_resolves(path, monkeypatch, capsys)


@pytest.mark.parametrize("path", CONFIG_FILES, ids=CONFIG_IDS)
def test_configs_fast_dev_run_trains_one_step(path, run_cli, binarized_mnist_dir):
    written = yaml.safe_load(path.read_text())
    model_name = _short_name(written["model"]["class_path"])
    cli = run_cli(
        "fit",
        "--config",
        str(path),
        "--trainer.fast_dev_run",
        "1",
        "--data.init_args.data_dir",
        str(binarized_mnist_dir),
        "--data.init_args.batch_size",
        "8",
        "--data.init_args.eval_batch_size",
        "8",
        *EVAL_OVERRIDES[model_name],
    )
    trainer = cli.trainer
    assert type(cli.model).__name__ == model_name
    assert trainer.state.finished
    assert trainer.global_step == 1
    estimator = _latent(written)["estimator"]["class_path"]
    for latent in cli.model.modules():
        if type(latent).__name__ == "DiscreteLatent":
            assert type(latent.estimator).__name__ == estimator
            assert latent.num_categories == _latent(written)["num_categories"]
    for name in (TRAIN_METRIC[model_name], VAL_METRIC[model_name]):
        assert math.isfinite(trainer.callback_metrics[name].item()), name
