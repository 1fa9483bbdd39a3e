import subprocess
import sys

import pytest

from catlight.cli import main


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
