"""The ``catlight`` command line: a LightningCLI over catlight's models and data."""

from __future__ import annotations

from lightning.pytorch.cli import ArgsType, LightningCLI

# imported so that YAML and the command line can name their classes by short name
import catlight.callbacks
import catlight.data
import catlight.latent
import catlight.models  # noqa: F401

__all__ = ["CatlightCLI", "main"]


class CatlightCLI(LightningCLI):
    """LightningCLI with catlight's defaults: any LightningModule / DataModule by class path.

    ``fit``, ``validate``, ``test`` and ``predict`` subcommands; every YAML key can be
    overridden on the command line (``--model.latent.estimator ReinMax
    --model.latent.estimator.tau 1.3``); the resolved config is saved with every run.
    """


def main(args: ArgsType = None) -> None:
    """Run the CLI on ``args`` (``sys.argv[1:]`` when None).

    Example::

        catlight fit --config configs/vae/gs_softmax.yaml --trainer.max_epochs 10
    """
    CatlightCLI(
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args,
    )
