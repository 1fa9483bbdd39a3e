"""One ``fast_dev_run`` fit of an NRI config on a tiny simulated data set."""

from __future__ import annotations

from pathlib import Path

TINY_DATA = {
    "num_train": 8,
    "num_valid": 4,
    "num_test": 4,
    "train_steps": 10,
    "test_steps": 20,
    "batch_size": 4,
}


def fit_on_tiny_data(run_cli, config: Path, tmp_path: Path):
    """Run ``catlight fit`` on ``config`` with tiny data under ``tmp_path``; the CLI."""
    settings = {"data_dir": tmp_path / "particles", **TINY_DATA}
    args = [item for key, value in settings.items() for item in (f"--data.{key}", str(value))]
    return run_cli(
        "fit", "--config", str(config), "--trainer.fast_dev_run", "1", *args,
        "--model.num_timesteps", "10",
    )  # fmt: skip
