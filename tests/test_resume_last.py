"""``--ckpt_path last`` with the configs' LastCheckpoint: a SIGKILLed CLI run resumes.

The run is a real ``python -m catlight fit`` subprocess of a config under configs/
(made tiny), killed with SIGKILL once it has written ``last.ckpt``; a second run of
the same config with ``--ckpt_path last`` must continue from that checkpoint, not
from step 0. Asking for ``last`` where there is none is an error.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from catlight.checkpoints import LastCheckpoint
from tests.scale_families import FAMILIES, REPO, fit_args

FAMILY = FAMILIES["vae"]
# the resumed run writes beside the killed run's files, as a real resume does
# and the version folder's ModelCheckpoint notes that its folder is a new one
pytestmark = [
    pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty"),
    pytest.mark.filterwarnings("ignore:The dirpath has changed"),
]


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 240.0) -> None:
    """Wait until ``path`` exists (the run keeps going); fail if the run ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the run ended (code {process.returncode}) before writing {path}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {path} after {timeout} s")
        time.sleep(0.2)


def test_configs_save_last_checkpoint_where_ckpt_path_last_finds_it(run_cli, tmp_path):
    root = tmp_path / "run"
    args = fit_args(FAMILY, tmp_path / "data", f"--trainer.default_root_dir={root}")
    args.append("--trainer.max_epochs=1000")  # far more than it gets before the kill
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "catlight", "fit", *args]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        last = root / "checkpoints" / "last.ckpt"
        wait_for(last, process)
        time.sleep(1.0)  # let it train on (and perhaps write again) before the kill
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    saved_step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert saved_step > 0

    extra_steps = 3
    resumed = run_cli(
        "fit",
        *fit_args(
            FAMILY,
            tmp_path / "data",
            f"--trainer.default_root_dir={root}",
            f"--trainer.max_steps={saved_step + extra_steps}",
            "--ckpt_path=last",
        ),
    )
    assert Path(resumed.trainer.ckpt_path) == last
    assert resumed.trainer.global_step == saved_step + extra_steps


def test_ckpt_path_last_without_a_checkpoint_is_an_error(run_cli, tmp_path):
    args = fit_args(FAMILY, tmp_path / "data", "--ckpt_path=last")
    expected = str(tmp_path / "runs" / "checkpoints")
    with pytest.raises(FileNotFoundError, match=f"no last.ckpt in {expected}.*from scratch"):
        run_cli("fit", *args)


def test_last_checkpoint_keeps_only_last_ckpt(run_cli, tmp_path):
    run_cli("fit", *fit_args(FAMILY, tmp_path / "data", "--trainer.max_steps=2"))
    assert sorted(p.name for p in (tmp_path / "runs" / "checkpoints").iterdir()) == ["last.ckpt"]
    assert any(isinstance(c, LastCheckpoint) for c in run_cli.runs[-1].trainer.callbacks)
