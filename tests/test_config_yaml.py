"""Duplicate YAML keys in a config are an error, not a silent "last one wins"."""

from __future__ import annotations

import pytest

from catlight.cli import main
from catlight.config_yaml import DuplicateKeyError, check_duplicate_keys

NESTED_DUPLICATE = """\
model:
  init_args:
    latent:
      estimator:
        init_args:
          tau: 0.5
          hard: true
          tau: 1.0
"""


def test_check_duplicate_keys_names_the_key_and_both_lines():
    with pytest.raises(DuplicateKeyError, match=r"duplicate key 'tau' .*\(lines 6 and 8\)"):
        check_duplicate_keys(NESTED_DUPLICATE)


def test_check_duplicate_keys_accepts_equal_keys_in_different_mappings():
    check_duplicate_keys("a: {x: 1}\nb: {x: 2}\nc: [{x: 1}, {x: 2}]\n")


def test_cli_rejects_a_config_with_a_duplicate_key(tmp_path, monkeypatch, capsys):
    config = tmp_path / "dup.yaml"
    config.write_text("seed_everything: 1\nseed_everything: 2\n")
    monkeypatch.setattr("sys.argv", ["catlight"])
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(config), "--print_config"])
    assert "duplicate key 'seed_everything'" in capsys.readouterr().err
