"""The ``catlight`` command line: a LightningCLI over catlight's models and data."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import warnings
from argparse import ArgumentError
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import (
    ArgsType,
    LightningArgumentParser,
    LightningCLI,
    instantiate_class,
)
from lightning.pytorch.utilities.types import LRSchedulerTypeUnion
from torch.optim import Optimizer

# imported so that YAML and the command line can name their classes by short name
import catlight.callbacks
import catlight.checkpoints
import catlight.config_yaml
import catlight.data
import catlight.diagnostics
import catlight.latent
import catlight.tasks
from catlight.cli_errors import DEBUG_HINT, ConfigError, locate_setting, short_parse_error
from catlight.cli_sizes import fill_model_sizes
from catlight.cli_swaps import estimators_start_from_defaults
from catlight.tasks.nri import simulate_main

__all__ = ["CatlightCLI", "main"]

_OVERRIDE_WARNING = ".*configure_optimizers` will be overridden"

DEBUG_VARIABLE = "CATLIGHT_DEBUG"
SUBCOMMANDS_EPILOG = (
    "One more subcommand: simulate, which writes a simulated particles data set for NRI "
    "(catlight simulate --help)."
)


class CatlightCLI(LightningCLI):
    """LightningCLI with catlight's defaults: any LightningModule / DataModule by class path.

    ``fit``, ``validate``, ``test`` and ``predict`` subcommands; every YAML key can be
    overridden on the command line (``--model.latent.estimator ReinMax
    --model.latent.estimator.tau 1.3``). Naming an estimator class on the command line
    starts it from its own defaults: none of the config's estimator settings carry
    over to it. Sizes that the data determines (the actions and observation size of
    an environment, the classes of a labeled data set, the steps of a trajectory, the
    pixels of an image) come from the data module: see :mod:`catlight.cli_sizes`.
    The resolved config is saved with every run.
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
        # appended to the config's callbacks: per-rank noise and resumable RNG state
        kwargs.setdefault("trainer_defaults", {"callbacks": [catlight.callbacks.RandomState()]})
        catlight.config_yaml.use_strict_yaml()
        if args is None:
            args = sys.argv[1:]
        if isinstance(args, list):
            args = estimators_start_from_defaults(args)
        super().__init__(args=args, run=run, **kwargs)

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse ``args``, keeping the ``--model.*`` overrides among them for later.

        ``--print_config`` prints the config with the sizes that the data module gives
        the model (:mod:`catlight.cli_sizes`), so the data module is built to print it.
        """
        self._model_overrides = _model_overrides(args) if isinstance(args, list) else []
        print_config = _print_config_option(args) if isinstance(args, list) else None
        if print_config is None:
            super().parse_arguments(parser, args)
            return
        super().parse_arguments(parser, [arg for arg in args if not _is_print_config(arg)])
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        with _settings_named_by_key(config):
            self._data_with_model_sizes(config, subcommand)
        printing = [subcommand, print_config] if subcommand else [print_config]
        self.parser.parse_args(printing, namespace=self.config)  # prints and exits

    def _parse_ckpt_path(self) -> None:
        """Take the model's hyperparameters from ``--ckpt_path``, then the command line's.

        Lightning replaces the model settings with the checkpoint's; a ``--model.*``
        override given on the command line (say ``--model.eval_num_samples 100`` for
        ``catlight test``) is applied again on top of them.
        """
        super()._parse_ckpt_path()
        subcommand = self.config.get("subcommand")
        if subcommand and self.config[subcommand].get("ckpt_path") and self._model_overrides:
            self.config = self.parser.parse_args(
                [subcommand, *self._model_overrides], namespace=self.config
            )

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

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer; it steps the estimators of a model that is not a BaseTask too."""
        trainer = super().instantiate_trainer(**kwargs)
        if not isinstance(self.model, catlight.tasks.BaseTask):
            trainer.callbacks.append(catlight.callbacks.EstimatorStep())
        return trainer

    @staticmethod
    def configure_optimizers(
        lightning_module: LightningModule,
        optimizer: Optimizer,
        lr_scheduler: LRSchedulerTypeUnion | None = None,
    ) -> Any:
        """What ``--optimizer`` / ``--lr_scheduler`` give a model's ``configure_optimizers``.

        A :class:`~catlight.tasks.BaseTask` takes them as its own injected ones
        (:meth:`~catlight.tasks.BaseTask.optimizer_config`): its default scheduler
        stays when only ``--optimizer`` is given, and a ``ReduceLROnPlateau`` watches
        the task's metric. Any other model gets LightningCLI's behaviour.
        """
        if isinstance(lightning_module, catlight.tasks.BaseTask):
            return lightning_module.optimizer_config(optimizer, lr_scheduler)
        return LightningCLI.configure_optimizers(lightning_module, optimizer, lr_scheduler)

    def _add_configure_optimizers_method_to_model(self, subcommand: str | None) -> None:
        """LightningCLI's, for a BaseTask without its warning and with a lone scheduler.

        LightningCLI ignores ``--lr_scheduler`` given without ``--optimizer``; a
        BaseTask takes it, with its default optimizer.
        """
        task = isinstance(self.model, catlight.tasks.BaseTask)
        with warnings.catch_warnings():
            if task:
                warnings.filterwarnings("ignore", message=_OVERRIDE_WARNING)
            super()._add_configure_optimizers_method_to_model(subcommand)
        scheduler_init = self._get(self.config_init, "lr_scheduler")
        if task and scheduler_init and not self._get(self.config_init, "optimizer"):
            self.model.lr_scheduler_factory = partial(instantiate_class, init=scheduler_init)

    def _run_subcommand(self, subcommand: str) -> None:
        """Run it; a run that fails before its first training step leaves no log folder."""
        try:
            super()._run_subcommand(subcommand)
        except BaseException:
            _remove_unused_log_dir(self.trainer)
            raise

    def instantiate_classes(self) -> None:
        """Build the classes; a rejected setting raises a ConfigError naming its key.

        The data module is built first and gives the model its sizes
        (:func:`~catlight.cli_sizes.fill_model_sizes`); a size the model section
        states otherwise raises a ConfigError naming both.
        """
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        with _settings_named_by_key(config):
            data_config = config.get("data")
            if data_config is None:
                super().instantiate_classes()
                return
            config.data = self._data_with_model_sizes(config, self.subcommand)
            try:
                super().instantiate_classes()  # keeps the data module already built
            finally:
                config.data = data_config

    def _data_with_model_sizes(
        self, config: Namespace, subcommand: str | None
    ) -> LightningDataModule | None:
        """Build the data module of ``config`` and set the model's sizes in ``config``."""
        if config.get("data") is None:
            return None
        parser = self._parser(subcommand)
        # ``instantiate_classes`` was renamed ``instantiate`` in jsonargparse 4.49
        instantiate = getattr(parser, "instantiate", parser.instantiate_classes)
        datamodule = instantiate(Namespace(data=config.data)).data
        fill_model_sizes(config, datamodule)
        return datamodule


@contextlib.contextmanager
def _settings_named_by_key(config: Namespace) -> Iterator[None]:
    """A ValueError raised inside names the setting of ``config`` it rejects, if found."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as error:
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
    particles data set (:func:`catlight.tasks.nri.data.simulate_main`). Modules in
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


# what a run writes into its log folder before the first training step
_EARLY_LOG_FILES = ("events.out.tfevents.*", "hparams.yaml", "config.yaml")


def _remove_unused_log_dir(trainer: Trainer) -> None:
    """Remove the log folder of a run that failed before training, if it holds nothing else.

    Only a logger's own ``version_N`` folder: without a logger, ``trainer.log_dir`` is
    the root directory, which is never touched.
    """
    if trainer.global_step > 0 or not trainer.is_global_zero or trainer.logger is None:
        return
    log_dir = Path(trainer.log_dir or "")
    if not (re.fullmatch(r"version_\d+", log_dir.name) and log_dir.is_dir()):
        return
    early = {path for pattern in _EARLY_LOG_FILES for path in log_dir.glob(pattern)}
    if set(log_dir.iterdir()) - early:
        return
    for path in early:
        path.unlink()
    log_dir.rmdir()


def _model_overrides(args: list[str]) -> list[str]:
    """The ``--model.<key> value`` and ``--model.<key>=value`` items of ``args``."""
    overrides = []
    for index, arg in enumerate(args):
        if arg.startswith("--model."):
            has_value = "=" in arg or index + 1 == len(args) or args[index + 1].startswith("--")
            overrides += [arg] if has_value else [arg, args[index + 1]]
    return overrides


def _print_config_option(args: list[str]) -> str | None:
    """The last ``--print_config`` or ``--print_config=FLAGS`` item of ``args``, if any."""
    options = [arg for arg in args if _is_print_config(arg)]
    return options[-1] if options else None


def _is_print_config(arg: str) -> bool:
    return arg.split("=")[0] == "--print_config"


def _exit_with(message: str) -> None:
    print(f"{message}\n{DEBUG_HINT}", file=sys.stderr)
    raise SystemExit(2)
