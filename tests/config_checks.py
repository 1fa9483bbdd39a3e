"""The check every family's config test shares: ``--print_config`` resolves the YAML."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from catlight.cli import main


def assert_print_config_resolves(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> tuple[dict, dict]:
    """``catlight fit --config path --print_config`` holds every setting the YAML writes.

    Returns ``(printed, written)``, the printed and the written config, for the checks
    that only one family makes.
    """
    monkeypatch.setattr(sys, "argv", ["catlight"])
    with pytest.raises(SystemExit) as raised:
        main(["fit", "--config", str(path), "--print_config"])
    assert raised.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    written = yaml.safe_load(path.read_text())
    assert_resolves(written, printed)
    return printed, written


def assert_resolves(written: Any, printed: Any, where: str = "config") -> None:
    """``printed`` holds every value of ``written``, a class given by its short name as
    the full class path: ``class_path: Exact`` or ``parameterization: Softmax`` in the
    YAML is ``class_path: catlight.latent.Exact`` / ``catlight.latent.Softmax`` printed.
    """
    if isinstance(written, dict):
        for key, value in written.items():
            assert key in printed, f"{where}.{key} is not printed"
            assert_resolves(value, printed[key], f"{where}.{key}")
    elif isinstance(written, list):
        assert len(printed) == len(written), where
        for index, (written_item, printed_item) in enumerate(zip(written, printed, strict=True)):
            assert_resolves(written_item, printed_item, f"{where}[{index}]")
    elif isinstance(printed, dict):
        assert printed["class_path"].endswith("." + written), where
    elif where.endswith(".class_path"):
        assert printed == written or printed.endswith("." + written), where
    else:
        assert printed == written, where
