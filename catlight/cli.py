"""The ``catlight`` command line: a LightningCLI over catlight's models and data."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from argparse import ArgumentError
from typing import Any

from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

# imported so that YAML and the command line can name their classes by short name
import catlight.callbacks
import catlight.data
import catlight.latent
import catlight.models
from catlight.cli_errors import DEBUG_HINT, ConfigError, locate_setting, short_parse_error
from catlight.cli_swaps import estimators_start_from_defaults
from catlight.data.particles import simulate_main

__all__ = ["CatlightCLI", "main"]

DEBUG_VARIABLE = "CATLIGHT_DEBUG"
SUBCOMMANDS_EPILOG = (
    "other subcommand: simulate   write a simulated particles data set for NRI "
    "(catlight simulate --help)"
)


class CatlightCLI(LightningCLI):
    """LightningCLI with catlight's defaults: any LightningModule / DataModule by class path.

    ``fit``, ``validate``, ``test`` and ``predict`` subcommands; every YAML key can be
    overridden on the command line (``--model.latent.estimator ReinMax
    --model.latent.estimator.tau 1.3``). Naming an estimator class on the command line
    starts it from its own defaults: none of the config's estimator settings carry
    over to it. The resolved config is saved with every run.
    ``CatlightCLI(args=[...], run=False)`` builds the model, data and trainer of a
    config without running anything (for scripts and benchmarks).

    Parse errors raise ``argparse.ArgumentError`` and a value that a class rejects
    when it is built raises :class:`~catlight.cli_errors.ConfigError` naming its key;
    :func:`main` prints both in a few lines.

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
        if args is None:
            args = sys.argv[1:]
        if isinstance(args, list):
            args = estimators_start_from_defaults(args)
        super().__init__(args=args, run=run, **kwargs)

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """Parsers that raise their errors, for :func:`main` to print them briefly."""
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    def setup_parser(
        self, add_subcommands: bool, main_kwargs: dict[str, Any], subparser_kwargs: dict[str, Any]
    ) -> None:
        """The main parser's help also lists ``simulate``."""
        if add_subcommands:
            main_kwargs.setdefault("epilog", SUBCOMMANDS_EPILOG)
        super().setup_parser(add_subcommands, main_kwargs, subparser_kwargs)

    def instantiate_classes(self) -> None:
        """Build the classes; a rejected setting raises a ConfigError naming its key."""
        try:
            super().instantiate_classes()
        except ValueError as error:
            config = self.config.get(self.subcommand) if self.subcommand else self.config
            found = locate_setting(config.as_dict(), str(error))
            if found is None:
                raise
            raise ConfigError(*found) from error


class _DropTips(logging.Filter):
    """Drops Lightning's advertisements ("Tip: ... try installing litlogger")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)


_DROP_TIPS = _DropTips()


def main(args: ArgsType = None) -> None:
    """Run the CLI on ``args`` (``sys.argv[1:]`` when None).

    ``catlight simulate ...`` is not a LightningCLI subcommand: it writes a simulated
    particles data set (:func:`catlight.data.particles.simulate_main`). Modules in
    the working directory can be named in YAML (``class_path: mymodel.MyModel``), as
    with ``python -m catlight``. A configuration error prints a few lines and exits
    with status 2; ``--debug`` or ``CATLIGHT_DEBUG=1`` shows the full error instead.

    Example::

        catlight fit --config configs/vae/categorical/gs_softmax.yaml --trainer.max_epochs 10
        catlight simulate --data_dir data --system springs --num_particles 5
    """
    command = sys.argv[1:] if args is None else args
    if isinstance(command, list) and command[:1] == ["simulate"]:
        simulate_main(command[1:])
        return
    debug = os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
    if isinstance(command, list) and "--debug" in command:
        debug = True
        command = [arg for arg in command if arg != "--debug"]
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DROP_TIPS)
    with warnings.catch_warnings():
        # version skew between lightning, jsonargparse and torch: nothing a user can fix
        warnings.filterwarnings(
            "ignore", category=DeprecationWarning, module="lightning.pytorch.cli"
        )
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`")
        # CatlightCLI passes on sys.argv (with estimator defaults inserted) as args
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        try:
            CatlightCLI(args=command)
        except ArgumentError as error:
            if debug:
                raise
            _exit_with(short_parse_error(str(error)))
        except ConfigError as error:
            if debug:
                raise
            _exit_with(f"error: {error}")


def _exit_with(message: str) -> None:
    print(f"{message}\n{DEBUG_HINT}", file=sys.stderr)
    raise SystemExit(2)
