import math
import subprocess
import sys

import pytest
import torch
from lightning.pytorch import LightningModule

from catlight.cli import main
from catlight.cli_swaps import estimators_start_from_defaults
from catlight.data import TensorLoader
from catlight.latent import DiscreteLatent, GumbelSoftmax, Softmax


def test_main_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["--help"])
    assert raised.value.code == 0
    help_text = capsys.readouterr().out
    for subcommand in ("fit", "validate", "test", "predict"):
        assert subcommand in help_text


def test_python_dash_m_catlight_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "catlight", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "fit" in result.stdout


def test_main_fit_help_lists_model_data_and_checkpoint_options(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["catlight"])
    with pytest.raises(SystemExit) as raised:
        main(["fit", "--help"])
    assert raised.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--model", "--data", "--trainer.callbacks", "--ckpt_path", "--seed_everything"):
        assert option in help_text, option


def test_main_help_lists_simulate(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "simulate" in capsys.readouterr().out


def test_estimator_named_on_the_command_line_starts_from_its_own_defaults():
    args = ["--model.latent.estimator", "ReinMax", "--model.latent.estimator.tau", "1.3"]
    assert estimators_start_from_defaults(args) == [
        "--model.latent.estimator",
        "ReinMax",
        "--model.latent.estimator.tau=1.0",
        "--model.latent.estimator.num_samples=1",
        "--model.latent.estimator.tau",
        "1.3",
    ]
    assert estimators_start_from_defaults(["--x.estimator=catlight.latent.Reinforce"]) == [
        "--x.estimator=catlight.latent.Reinforce",
        "--x.estimator.num_samples=1",
        "--x.estimator.baseline=none",
        "--x.estimator.decay=0.99",
        "--x.estimator.nonfinite_cost=raise",
    ]
    untouched = [
        "--model.latent.estimator",
        '{"class_path": "Exact"}',
        "--model.latent.num_categories=3",
    ]
    assert estimators_start_from_defaults(untouched) == untouched
    assert estimators_start_from_defaults(["--model.latent.estimator", "NoSuch"]) == [
        "--model.latent.estimator",
        "NoSuch",
    ]


def test_main_imports_a_model_from_the_working_directory(tmp_path, monkeypatch, capsys):
    (tmp_path / "mymodel_in_cwd.py").write_text(
        "from catlight.tasks import CategoricalVAE\n\n\nclass MyModel(CategoricalVAE):\n    pass\n"
    )
    (tmp_path / "my.yaml").write_text("model:\n  class_path: mymodel_in_cwd.MyModel\n")
    monkeypatch.chdir(tmp_path)
    # as under the console script: neither the working directory nor '' on sys.path
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.setattr(sys, "argv", ["catlight"])
    with pytest.raises(SystemExit) as raised:
        main(["fit", "--config", "my.yaml", "--print_config"])
    assert raised.value.code == 0
    assert "class_path: mymodel_in_cwd.MyModel" in capsys.readouterr().out


class PlainLatentModel(LightningModule):
    """A model that is not a BaseTask: the CLI must step its estimator all the same."""

    def __init__(self) -> None:
        super().__init__()
        estimator = GumbelSoftmax(1.0, tau_min=0.5, anneal_rate=0.1, anneal_interval=1)
        self.latent = DiscreteLatent(3, Softmax(), estimator)
        self.encoder = torch.nn.Linear(4, 2 * 3)

    def training_step(self, batch, batch_idx):
        out = self.latent(self.encoder(batch[0]).view(-1, 2, 3))
        return out.objective((out.z[..., 0] - 1.0).pow(2).sum(-1)).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return TensorLoader((torch.randn(8, 4),), batch_size=2)


def test_cli_steps_the_estimators_of_a_model_without_the_mixin(run_cli):
    cli = run_cli(
        "fit",
        "--model",
        "tests.test_cli.PlainLatentModel",
        "--trainer.max_steps",
        "3",
        "--trainer.logger",
        "false",
        "--trainer.enable_checkpointing",
        "false",
    )
    estimator = cli.model.latent.estimator
    assert estimator.num_steps.item() == 3
    assert estimator.tau.item() == pytest.approx(math.exp(-0.3))
