"""Image encoders and decoders, fully connected or convolutional, for square images.

The semi-supervised model picks one architecture for all its networks: ``"mlp"``
reads the flat pixels directly; ``"conv"`` reads them through two stride-2
convolutions (and its decoder mirrors them with transposed convolutions).
"""

from __future__ import annotations

import math
from typing import Literal

from torch import Tensor, nn

from catlight.tasks.networks import Activation, activation_layer, mlp

__all__ = ["Architecture", "ConvDecoder", "ConvFeatures", "image_decoder", "image_features"]

Architecture = Literal["mlp", "conv"]

_CHANNELS = (32, 64)  # channels after the first and second stride-2 convolution


def _image_side(input_size: int, owner: str) -> int:
    """The side of a square image whose side halves twice: ``sqrt(input_size)``."""
    side = math.isqrt(input_size)
    if side * side != input_size or side % 4:
        raise ValueError(
            f"{owner}: a convolutional network needs square images whose side is a "
            f"multiple of 4; input_size = {input_size} is not (784 = 28 x 28 is)"
        )
    return side


class ConvFeatures(nn.Module):
    """Two stride-2 convolutions (4 x 4 kernels) over a flat square image, flattened.

    Args:
        input_size: pixels per image, ``side * side`` with ``side`` a multiple of 4.
        activation: the activation after each convolution.

    Raises:
        ValueError: if ``input_size`` is not such a square.

    Shapes:
        - input: ``(*, input_size)``
        - output: ``(*, out_features)``, ``out_features = 64 * (side / 4)^2``
    """

    def __init__(self, input_size: int, activation: Activation = "relu") -> None:
        super().__init__()
        self.side = _image_side(input_size, "ConvFeatures")
        first, second = _CHANNELS
        self.layers = nn.Sequential(
            nn.Conv2d(1, first, 4, stride=2, padding=1),
            activation_layer(activation),
            nn.Conv2d(first, second, 4, stride=2, padding=1),
            activation_layer(activation),
        )
        self.out_features = second * (self.side // 4) ** 2

    def forward(self, images: Tensor) -> Tensor:
        """Flattened feature maps; see the class docstring for shapes."""
        leading = images.shape[:-1]
        maps = self.layers(images.reshape(-1, 1, self.side, self.side))
        return maps.reshape(*leading, self.out_features)


class ConvDecoder(nn.Module):
    """A vector to Bernoulli logits of a square image, mirroring :class:`ConvFeatures`.

    ``input -> hidden -> 64 maps of (side / 4)^2 -> 32 maps of (side / 2)^2 -> image``
    (transposed convolutions with 4 x 4 kernels and stride 2).

    Args:
        in_features: width of the input vector.
        hidden_size: width of the fully connected hidden layer.
        output_size: pixels per image, ``side * side`` with ``side`` a multiple of 4.
        activation: the hidden activation.

    Raises:
        ValueError: if ``output_size`` is not such a square.

    Shapes:
        - input: ``(*, in_features)``
        - output: ``(*, output_size)`` logits
    """

    def __init__(
        self, in_features: int, hidden_size: int, output_size: int, activation: Activation = "relu"
    ) -> None:
        super().__init__()
        self.side = _image_side(output_size, "ConvDecoder")
        first, second = _CHANNELS
        self.map_shape = (second, self.side // 4, self.side // 4)
        self.dense = nn.Sequential(
            mlp([in_features, hidden_size, math.prod(self.map_shape)], activation),
            activation_layer(activation),
        )
        self.deconvolutions = nn.Sequential(
            nn.ConvTranspose2d(second, first, 4, stride=2, padding=1),
            activation_layer(activation),
            nn.ConvTranspose2d(first, 1, 4, stride=2, padding=1),
        )

    def forward(self, inputs: Tensor) -> Tensor:
        """Logits of every pixel; see the class docstring for shapes."""
        leading = inputs.shape[:-1]
        maps = self.dense(inputs).reshape(-1, *self.map_shape)
        return self.deconvolutions(maps).reshape(*leading, self.side * self.side)


def image_features(
    architecture: Architecture, input_size: int, activation: Activation
) -> tuple[nn.Module, int]:
    """The input stage of an encoder and its output width.

    ``"mlp"``: the flat pixels themselves (``nn.Identity``, width ``input_size``);
    ``"conv"``: :class:`ConvFeatures`.

    Raises:
        ValueError: for an unknown architecture, or non-square images with ``"conv"``.

    Shapes:
        - input: ``(*, input_size)``; output: ``(*, width)``
    """
    if architecture == "mlp":
        return nn.Identity(), input_size
    if architecture == "conv":
        features = ConvFeatures(input_size, activation)
        return features, features.out_features
    raise ValueError(f"image_features: architecture must be 'mlp' or 'conv', got {architecture!r}")


def image_decoder(
    architecture: Architecture,
    in_features: int,
    hidden_size: int,
    output_size: int,
    activation: Activation,
) -> nn.Module:
    """A decoder to pixel logits: one hidden layer (``"mlp"``) or :class:`ConvDecoder`.

    Raises:
        ValueError: for an unknown architecture, or non-square images with ``"conv"``.

    Shapes:
        - input: ``(*, in_features)``; output: ``(*, output_size)`` logits
    """
    if architecture == "mlp":
        return mlp([in_features, hidden_size, output_size], activation)
    if architecture == "conv":
        return ConvDecoder(in_features, hidden_size, output_size, activation)
    raise ValueError(f"image_decoder: architecture must be 'mlp' or 'conv', got {architecture!r}")
