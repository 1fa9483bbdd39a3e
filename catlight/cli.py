"""The ``catlight`` command line: a LightningCLI over catlight's models and data."""

from __future__ import annotations

import sys
import warnings
from typing import Any

from lightning.pytorch.cli import ArgsType, LightningCLI

# imported so that YAML and the command line can name their classes by short name
import catlight.callbacks
import catlight.data
import catlight.latent
import catlight.models
from catlight.data.particles import simulate_main

__all__ = ["CatlightCLI", "main"]


class CatlightCLI(LightningCLI):
    """LightningCLI with catlight's defaults: any LightningModule / DataModule by class path.

    ``fit``, ``validate``, ``test`` and ``predict`` subcommands; every YAML key can be
    overridden on the command line (``--model.latent.estimator ReinMax
    --model.latent.estimator.tau 1.3``); the resolved config is saved with every run.
    ``CatlightCLI(args=[...], run=False)`` builds the model, data and trainer of a
    config without running anything (for scripts and benchmarks).

    Args:
        args: command-line arguments (``sys.argv[1:]`` when None).
        run: run the subcommand; when False, ``args`` hold no subcommand.
        **kwargs: passed to LightningCLI.
    """

    def __init__(self, args: ArgsType = None, run: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        # appended to the config's callbacks: per-rank noise and resumable RNG state, and
        # estimator steps for a model that does not add them itself
        kwargs.setdefault(
            "trainer_defaults",
            {"callbacks": [catlight.callbacks.RandomState(), catlight.callbacks.EstimatorStep()]},
        )
        super().__init__(args=args, run=run, **kwargs)


def main(args: ArgsType = None) -> None:
    """Run the CLI on ``args`` (``sys.argv[1:]`` when None).

    ``catlight simulate ...`` is not a LightningCLI subcommand: it writes a simulated
    particles data set (:func:`catlight.data.particles.simulate_main`).

    Example::

        catlight fit --config configs/vae/categorical/gs_softmax.yaml --trainer.max_epochs 10
        catlight simulate --data_dir data --system springs --num_particles 5
    """
    command = sys.argv[1:] if args is None else args
    if isinstance(command, list) and command[:1] == ["simulate"]:
        simulate_main(command[1:])
        return
    with warnings.catch_warnings():
        # version skew between lightning, jsonargparse and torch: nothing a user can fix
        warnings.filterwarnings(
            "ignore", category=DeprecationWarning, module="lightning.pytorch.cli"
        )
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`")
        CatlightCLI(args=args)
