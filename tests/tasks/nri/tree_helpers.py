"""Helpers of the NRI tree tests: a tiny config fit, replicated ELBO gradients."""

from __future__ import annotations

import math
from pathlib import Path

import torch

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


def replicated_gradients(adapter, scores, weights, kl_weight, replicates=20000):
    """Mean and standard error of ``replicates`` negative-ELBO gradient estimates.

    The cost of a sampled graph is ``weights`` summed over its type-1 ordered pairs.

    Shapes:
        - scores, weights: ``(E,)``
        - output: ``(mean, standard error)``, each ``(E,)``
    """
    leaf = scores.view(1, -1, 1).repeat(replicates, 1, 1).requires_grad_()
    sample = adapter(leaf)
    loss, _ = sample.negative_elbo(sample.z[..., 1] @ weights, kl_weight)
    (grads,) = torch.autograd.grad(loss.sum(), leaf)
    grads = grads.squeeze(-1)
    return grads.mean(0), grads.std(0) / math.sqrt(replicates)
