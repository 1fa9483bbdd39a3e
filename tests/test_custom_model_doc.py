"""docs/custom_model.md works as written: its code blocks run, its YAML trains."""

from __future__ import annotations

import re
import shlex
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "custom_model.md"


def code_blocks(language: str) -> list[str]:
    """The ```language fenced blocks of the page, in order."""
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    """A working directory holding the page's mymodel.py and my.yaml, as a user's would."""
    (module,) = [block for block in code_blocks("python") if block.startswith('"""mymodel.py')]
    (config,) = code_blocks("yaml")
    (tmp_path / "mymodel.py").write_text(module)
    (tmp_path / "my.yaml").write_text(config)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield tmp_path
    sys.modules.pop("mymodel", None)


def test_plain_torch_example_runs():
    (example,) = [block for block in code_blocks("python") if "layer.step()" in block]
    exec(compile(example, str(DOC), "exec"), {})


def test_the_pages_commands_train_the_model(model_dir, run_cli, binarized_mnist_dir):
    (commands,) = code_blocks("bash")
    tiny = [
        "--data.init_args.data_dir",
        str(binarized_mnist_dir),
        "--data.init_args.batch_size",
        "8",
        "--trainer.fast_dev_run",
        "1",
    ]
    runs = [shlex.split(line) for line in commands.replace("\\\n", " ").splitlines() if line]
    assert [run[:2] for run in runs] == [["catlight", "fit"]] * 2
    estimators = []
    for run in runs:
        cli = run_cli("fit", *run[2:], *tiny)
        assert type(cli.model).__name__ == "DiscreteAutoencoder"
        assert cli.trainer.global_step == 1
        assert cli.trainer.callback_metrics["train/neg_elbo"].isfinite()
        estimators.append(cli.model.latent.estimator)
    assert type(estimators[0]).__name__ == "GumbelSoftmax"
    assert estimators[0].anneal_rate == 1e-4
    assert estimators[0].num_steps.item() == 1  # stepped by the mixin's EstimatorStep
    assert type(estimators[1]).__name__ == "LeaveOneOut"
    assert estimators[1].num_samples == 4


def test_the_pages_model_reloads_from_a_checkpoint_without_warnings(
    model_dir, run_cli, binarized_mnist_dir
):
    cli = run_cli(
        "fit",
        "--config",
        "my.yaml",
        "--data.init_args.data_dir",
        str(binarized_mnist_dir),
        "--data.init_args.batch_size",
        "8",
        "--trainer.max_steps",
        "2",
        "--trainer.limit_val_batches",
        "1",
    )
    checkpoint = cli.trainer.checkpoint_callback.best_model_path
    model_class = type(cli.model)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*nn.Module")
        reloaded = model_class.load_from_checkpoint(checkpoint)
    assert reloaded.hparams["num_latents"] == 8
    assert reloaded.latent.estimator.num_steps.item() == 2
    assert reloaded.latent.estimator.tau.item() == cli.model.latent.estimator.tau.item()
