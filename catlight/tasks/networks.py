"""Small network builders shared by the models."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

from torch import nn

__all__ = ["Activation", "activation_layer", "mlp"]

Activation = Literal["relu", "leaky_relu", "tanh", "elu", "softplus"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
}


def activation_layer(name: Activation) -> nn.Module:
    """A new activation module by name.

    Raises:
        ValueError: for a name that is not an :data:`Activation`.
    """
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]()


def mlp(sizes: Sequence[int], activation: Activation = "relu") -> nn.Sequential:
    """A multilayer perceptron ``sizes[0] -> ... -> sizes[-1]``, no activation at the end.

    ``mlp([784, 200])`` is a single linear layer.

    Raises:
        ValueError: for fewer than two sizes, a size < 1 or an unknown activation.

    Shapes:
        - input: ``(*, sizes[0])``; output: ``(*, sizes[-1])``
    """
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"mlp: sizes must list >= 2 positive widths, got {list(sizes)}")
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"mlp: activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
        )
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(itertools.pairwise(sizes)):
        if index:
            layers.append(activation_layer(activation))
        layers.append(nn.Linear(width_in, width_out))
    return nn.Sequential(*layers)
