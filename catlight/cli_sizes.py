"""Sizes come from the data: the model settings that its data module determines.

A config states such a size once, in its data section: :class:`~catlight.cli.CatlightCLI`
builds the data module first and fills each :data:`SIZE_LINKS` target that the model
accepts with the data module's attribute, before it builds the model. A size the
model section also states must agree (older configs state both); a different value is
an error naming both. A value equal to the model's default counts as not stated.

jsonargparse's ``link_arguments(..., apply_on="instantiate")`` does not fit one
parser shared by every family: a link to a setting that the chosen model lacks adds
it to the model's saved hyperparameters, a link from an attribute that the data
module lacks prints the data module (which loads its data), and a linked value
silently replaces a stated one.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import LightningDataModule

from catlight.cli_errors import ConfigError

__all__ = ["SIZE_LINKS", "SizeLink", "fill_model_sizes"]


@dataclass(frozen=True)
class SizeLink:
    """One model setting filled from a data module attribute.

    Args:
        source: the data module's attribute (``num_actions``).
        target: the setting under ``model.init_args``
            (``latent.init_args.num_categories``).
    """

    source: str
    target: str

    @property
    def key(self) -> str:
        """The target as on the command line, e.g. ``model.latent.num_categories``."""
        return "model." + self.target.replace("init_args.", "")


SIZE_LINKS = (
    SizeLink("num_classes", "latent.init_args.num_categories"),  # M2: q(y|x) over the classes
    SizeLink("num_actions", "latent.init_args.num_categories"),  # actor-critic: the policy
    SizeLink("observation_size", "observation_size"),  # actor-critic: the network's inputs
    SizeLink("action_sizes", "action_sizes"),  # actor-critic: the action variables' sizes
    SizeLink("train_steps", "num_timesteps"),  # NRI: the steps the encoder reads
    SizeLink("num_dims", "num_dims"),  # NRI: features per particle and step
    SizeLink("image_size", "input_size"),  # CategoricalVAE, M2: pixels per image
    SizeLink("image_size", "image_size"),  # StructuredOutputPrediction: the same
)


def fill_model_sizes(config: Namespace, datamodule: LightningDataModule) -> None:
    """Set the model's sizes in ``config`` from the data module's attributes.

    A link applies when the data module has its source attribute and ``config``
    has its target (the model accepts the setting).

    Args:
        config: the parsed config (``model`` section), changed in place.
        datamodule: the data module built from the config's ``data`` section.

    Raises:
        ConfigError: if the model section states a size other than the data's and
            other than the model's default, naming both.
    """
    for link in SIZE_LINKS:
        key = f"model.init_args.{link.target}"
        if not hasattr(datamodule, link.source) or key not in config:
            continue
        data_value = getattr(datamodule, link.source)
        stated = config[key]
        if stated not in (None, data_value, _default(config.model.class_path, link.target)):
            raise ConfigError(
                link.key,
                stated,
                f"the data module ({type(datamodule).__name__}) has {link.source} = "
                f"{data_value}, which sets {link.key}; "
                + ("make it" if "." in link.target else f"leave {link.key} out or make it")
                + f" {data_value}",
            )
        config[key] = data_value


def _default(class_path: str, target: str) -> Any:
    """The default of a top-level setting of the model ``class_path``; none for a nested one."""
    if "." in target:
        return inspect.Parameter.empty
    module, _, name = class_path.rpartition(".")
    model_class = getattr(__import__(module, fromlist=[name]), name)
    parameter = inspect.signature(model_class).parameters.get(target)
    return inspect.Parameter.empty if parameter is None else parameter.default
