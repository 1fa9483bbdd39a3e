"""Pictures of NRI's graphs and trajectories as plain image tensors (no plotting library).

TensorBoard shows them with ``add_image``: values in ``[0, 1]``, channels first.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["graph_comparison_image", "trajectory_image"]

# one colour per particle (cycled), RGB in [0, 1]
_PALETTE = torch.tensor(
    [
        [0.90, 0.10, 0.10],
        [0.10, 0.60, 0.95],
        [0.20, 0.80, 0.20],
        [0.95, 0.70, 0.10],
        [0.70, 0.30, 0.90],
        [0.10, 0.85, 0.85],
        [0.95, 0.40, 0.70],
        [0.60, 0.60, 0.60],
        [0.55, 0.35, 0.15],
        [1.00, 1.00, 1.00],
    ]
)


def _adjacency(values: Tensor, edge_index: Tensor, num_nodes: int) -> Tensor:
    """Edge values as an ``N x N`` matrix (row: sender, column: receiver; diagonal grey)."""
    matrix = torch.eye(num_nodes) * 0.5
    matrix[edge_index[0], edge_index[1]] = values
    return matrix


def graph_comparison_image(
    true_values: Tensor, inferred_values: Tensor, edge_index: Tensor, cell: int = 8
) -> Tensor:
    """True and inferred adjacency matrices side by side, one example per row.

    Each matrix has one ``cell x cell`` square per ordered pair (row: sender, column:
    receiver), white for value 1 and black for 0; a grey gap separates the matrices.

    Args:
        true_values: the true edge values in ``[0, 1]`` (e.g. type / (K - 1)).
        inferred_values: the inferred ones in ``[0, 1]`` (e.g. expected type / (K - 1)).
        edge_index: ``(2, E)`` sender and receiver of each edge.
        cell: pixels per matrix entry.

    Returns:
        A grey-level image.

    Shapes:
        - true_values, inferred_values: ``(M, E)``
        - output: ``(1, M (N cell + 2) - 2, 2 N cell + 2)``
    """
    num_nodes = int(edge_index.max()) + 1
    gap = 2
    side = num_nodes * cell
    rows = []
    for true, inferred in zip(
        true_values.float().cpu(), inferred_values.float().cpu(), strict=True
    ):
        pair = [_adjacency(v, edge_index.cpu(), num_nodes) for v in (true, inferred)]
        pair = [m.repeat_interleave(cell, 0).repeat_interleave(cell, 1) for m in pair]
        rows.append(torch.cat([pair[0], torch.full((side, gap), 0.5), pair[1]], 1))
        rows.append(torch.full((gap, 2 * side + gap), 0.5))
    return torch.cat(rows[:-1], 0).clamp(0, 1).unsqueeze(0)


def trajectory_image(true_positions: Tensor, predicted_positions: Tensor, size: int = 96) -> Tensor:
    """True (left) and predicted (right) paths of the particles, rasterised.

    Each particle has its own colour, brighter as time goes on; both panels share
    the scale of the true paths (with a 10 % margin; predictions outside it are
    clamped to the border).

    Args:
        true_positions: positions ``(x, y)`` of each particle at each step.
        predicted_positions: the predicted ones.
        size: pixels per side of each panel.

    Returns:
        An RGB image.

    Shapes:
        - true_positions, predicted_positions: ``(N, T, 2)``
        - output: ``(3, size, 2 size + 2)``
    """
    true_positions = true_positions.detach().float().cpu()
    predicted_positions = predicted_positions.detach().float().cpu()
    low = true_positions.amin((0, 1))
    extent = (true_positions.amax((0, 1)) - low).clamp(min=1e-6)
    low, extent = low - 0.1 * extent, 1.2 * extent
    panels = []
    for positions in (true_positions, predicted_positions):
        num_nodes, num_steps = positions.shape[:2]
        pixels = ((positions - low) / extent * (size - 1)).round().long().clamp(0, size - 1)
        brightness = torch.linspace(0.3, 1.0, num_steps)
        colours = _PALETTE[torch.arange(num_nodes) % len(_PALETTE)]  # [N, 3]
        colours = colours[:, None, :] * brightness[None, :, None]  # [N, T, 3]
        panel = torch.zeros(size, size, 3)
        # image rows go down: row = size - 1 - y
        panel[size - 1 - pixels[..., 1], pixels[..., 0]] = colours
        panels.append(panel.permute(2, 0, 1))
    return torch.cat([panels[0], torch.full((3, size, 2), 0.5), panels[1]], 2)
