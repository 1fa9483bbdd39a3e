"""Image grids: tiles in row order, black padding, and the reconstruction pairs."""

import pytest
import torch

from catlight.tasks.image_grid import image_grid, reconstructions_and_samples


def tiles_of(grid: torch.Tensor, rows: int, height: int = 28, columns: int = 8) -> torch.Tensor:
    """Undo the tiling: ``(1, rows * H, columns * W) -> (rows * columns, H, W)``."""
    width = grid.shape[-1] // columns
    return grid[0].view(rows, height, columns, width).permute(0, 2, 1, 3).flatten(0, 1)


def test_image_grid_tiles_row_by_row_and_pads_with_black():
    images = torch.rand(10, 28 * 28)
    grid = image_grid(images)
    assert grid.shape == (1, 2 * 28, 8 * 28)
    tiles = tiles_of(grid, rows=2)
    for index in range(10):
        assert torch.equal(tiles[index], images[index].view(28, 28))
    assert (tiles[10:] == 0).all()


def test_image_grid_takes_a_height_for_images_that_are_not_square():
    grid = image_grid(torch.rand(3, 14 * 28), height=14)
    assert grid.shape == (1, 14, 8 * 28)


def test_image_grid_rejects_a_height_that_does_not_divide_the_pixels():
    with pytest.raises(ValueError, match="10 pixels per image do not make rows of 3"):
        image_grid(torch.rand(2, 10), height=3)


def test_reconstructions_sit_beside_their_inputs_and_samples_get_their_own_grid():
    images = torch.bernoulli(torch.full((9, 784), 0.5), generator=torch.Generator().manual_seed(0))
    grids = reconstructions_and_samples(
        "val", images, lambda x: 1 - x, lambda n: torch.full((n, 784), 0.25), num_images=5
    )
    assert set(grids) == {"val/reconstructions", "val/prior_samples"}
    tiles = tiles_of(grids["val/reconstructions"], rows=2)
    for index in range(5):
        assert torch.equal(tiles[2 * index], images[index].view(28, 28))
        assert torch.equal(tiles[2 * index + 1], 1 - images[index].view(28, 28))
    samples = grids["val/prior_samples"]
    assert samples.shape == (1, 28, 8 * 28)
    assert (samples[..., : 5 * 28] == 0.25).all() and (samples[..., 5 * 28 :] == 0).all()


def test_without_a_sampler_there_is_no_sample_grid():
    grids = reconstructions_and_samples("test", torch.ones(2, 784), lambda x: x)
    assert set(grids) == {"test/reconstructions"}
