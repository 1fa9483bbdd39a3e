"""Image grids of flat images: what the image-model tasks show in TensorBoard."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["image_grid", "reconstructions_and_samples"]


def image_grid(images: Tensor, height: int | None = None, columns: int = 8) -> Tensor:
    """Tile flat images into one grayscale image, row by row, padding with black.

    Args:
        images: pixel means in ``[0, 1]``.
        height: image height; None: square images (``H = sqrt(H * W)``).
        columns: tiles per row.

    Raises:
        ValueError: if the pixels per image are not a multiple of ``height``.

    Shapes:
        - images: ``(B, H * W)``
        - output: ``(1, rows * H, columns * W)``, ``rows = ceil(B / columns)``
    """
    pixels = images.shape[-1]
    height = math.isqrt(pixels) if height is None else height
    if height < 1 or pixels % height:
        raise ValueError(f"image_grid: {pixels} pixels per image do not make rows of {height}")
    images = images.detach().float().cpu().view(images.shape[0], height, -1)
    rows = -(-images.shape[0] // columns)
    padded = torch.zeros(rows * columns, *images.shape[1:])
    padded[: images.shape[0]] = images
    tiles = padded.view(rows, columns, *images.shape[1:]).permute(0, 2, 1, 3)
    return tiles.reshape(1, rows * images.shape[1], columns * images.shape[2])


def reconstructions_and_samples(
    stage: str,
    images: Tensor,
    reconstruct: Callable[[Tensor], Tensor],
    sample: Callable[[int], Tensor] | None = None,
    num_images: int = 32,
    height: int | None = None,
) -> dict[str, Tensor]:
    """Grids ``<stage>/reconstructions`` (inputs beside reconstructions), ``<stage>/prior_samples``.

    Args:
        stage: the tags' prefix, ``"val"`` or ``"test"``.
        images: a batch of inputs; the first ``num_images`` are shown.
        reconstruct: pixel means of the reconstructions of inputs.
        sample: pixel means of samples from the model; None: no sample grid.
        num_images: inputs (and samples) per grid.
        height: image height; None: square images.

    Shapes:
        - images, reconstruct's output: ``(B, H * W)``; sample's output ``(num_images, H * W)``
        - output values: ``(1, rows * H, 8 * W)``
    """
    inputs = images[:num_images].float()
    pairs = torch.stack([inputs, reconstruct(inputs).float()], 1).flatten(0, 1)
    grids = {f"{stage}/reconstructions": image_grid(pairs, height)}
    if sample is not None:
        grids[f"{stage}/prior_samples"] = image_grid(sample(num_images), height)
    return grids
