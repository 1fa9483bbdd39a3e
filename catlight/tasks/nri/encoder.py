"""NRI encoders: edge-type scores from the trajectories of all particles (Kipf et al. 2018).

Both encoders end with the same two rounds of message passing over the fully
connected graph (:class:`EdgeRefinement`); they differ in how the first edge
embedding is made:

- :class:`MLPEncoder`: embed each particle's whole trajectory with an MLP, then
  ``h_(i,j) = f_e([h_i, h_j])`` (node -> edge);
- :class:`CNNEncoder`: run a 1-D CNN with attention pooling over time on the pair's
  stacked trajectories (sender and receiver channels side by side).

Then ``h_j = f_v(sum_{i != j} h_(i,j) / N)`` (edge -> node) and
``h'_(i,j) = f_e2([h_i, h_j, h_(i,j)])`` (node -> edge, with the first edge embedding as
a skip connection), and a linear layer gives the scores of each edge's type.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from catlight.tasks.nri.graph import edge_to_node, node_to_edge

__all__ = ["CNNEncoder", "EdgeRefinement", "EncoderMLP", "MLPEncoder"]


class EncoderMLP(nn.Module):
    """Two ELU layers followed by batch normalisation, the encoder's building block.

    Args:
        input_size: input features.
        hidden_size: width of both layers (and the output).
        dropout: dropout probability after the first layer.

    Shapes:
        - input: ``(*batch, input_size)``
        - output: ``(*batch, hidden_size)``
    """

    def __init__(self, input_size: int, hidden_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_size, hidden_size),
            nn.ELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, hidden_size),
            nn.ELU(),
        )
        self.norm = nn.BatchNorm1d(hidden_size)

    def forward(self, inputs: Tensor) -> Tensor:
        """Apply the block; batch statistics are over every leading position."""
        hidden = self.layers(inputs)
        return self.norm(hidden.flatten(0, -2)).view_as(hidden)


class EdgeRefinement(nn.Module):
    """Edge -> node -> edge message passing with a skip connection, then edge-type scores.

    ``h_j = f_v(sum_{i != j} e_(i,j) / N)``, ``s_(i,j) = W f_e([h_i, h_j, e_(i,j)]) + b``:
    aggregation divides by N (not the N - 1 incoming edges), as the dense formulation
    ``rel_rec^T @ e / N`` does.

    Args:
        hidden_size: width of the edge embeddings in and of every block.
        num_scores: scores per edge (``DiscreteLatent.num_scores``).
        dropout: dropout probability inside the blocks.

    Shapes:
        - edges: ``(B, E, hidden_size)``; edge_index: ``(2, E)``
        - output: ``(B, E, num_scores)``
    """

    def __init__(self, hidden_size: int, num_scores: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.node_mlp = EncoderMLP(hidden_size, hidden_size, dropout)
        self.edge_mlp = EncoderMLP(3 * hidden_size, hidden_size, dropout)
        self.output = nn.Linear(hidden_size, num_scores)

    def forward(self, edges: Tensor, edge_index: Tensor, num_nodes: int) -> Tensor:
        """Scores of every edge from its first embedding."""
        nodes = self.node_mlp(edge_to_node(edges, edge_index, num_nodes) / num_nodes)
        refined = self.edge_mlp(torch.cat([node_to_edge(nodes, edge_index), edges], -1))
        return self.output(refined)


class MLPEncoder(nn.Module):
    """The MLP encoder: whole trajectories embedded per particle, then message passing.

    Args:
        num_timesteps: T, steps of the trajectories it reads (fixed: the input layer
            takes ``T * D`` features).
        num_dims: D, features per particle and step (x, y, vx, vy).
        hidden_size: width of every block.
        num_scores: scores per edge.
        dropout: dropout probability inside the blocks.

    Shapes:
        - trajectories: ``(B, N, T, D)``; edge_index: ``(2, E)``
        - output: ``(B, E, num_scores)``
    """

    def __init__(
        self,
        num_timesteps: int,
        num_dims: int,
        hidden_size: int,
        num_scores: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_timesteps = num_timesteps
        self.num_dims = num_dims
        self.node_embedding = EncoderMLP(num_timesteps * num_dims, hidden_size, dropout)
        self.edge_embedding = EncoderMLP(2 * hidden_size, hidden_size, dropout)
        self.refinement = EdgeRefinement(hidden_size, num_scores, dropout)

    def forward(self, trajectories: Tensor, edge_index: Tensor) -> Tensor:
        """Edge-type scores.

        Raises:
            ValueError: if the trajectories do not have ``num_timesteps`` steps of
                ``num_dims`` features.
        """
        if tuple(trajectories.shape[-2:]) != (self.num_timesteps, self.num_dims):
            raise ValueError(
                f"MLPEncoder: trajectories must have shape (B, N, T, D) = (B, N, "
                f"{self.num_timesteps}, {self.num_dims}), got {tuple(trajectories.shape)}; "
                "set the model's num_timesteps to the data's train_steps"
            )
        nodes = self.node_embedding(trajectories.flatten(-2))
        edges = self.edge_embedding(node_to_edge(nodes, edge_index))
        return self.refinement(edges, edge_index, trajectories.shape[1])


class CNNEncoder(nn.Module):
    """The CNN encoder: a temporal CNN over each pair's trajectories, then message passing.

    For each edge the sender's and receiver's trajectories are stacked as ``2 D``
    channels and passed through two convolutions (kernel 5, ReLU, batch norm, a max
    pool of 2 between them); attention weights over time (a softmax) pool the result
    into one vector per edge. The convolutions pad by 2 (the paper's do not pad), so
    any trajectory of at least 2 steps works, e.g. the short ones of tests.

    Args:
        num_dims: D, features per particle and step.
        hidden_size: channels of the convolutions and width of every block.
        num_scores: scores per edge.
        dropout: dropout probability inside the blocks.

    Shapes:
        - trajectories: ``(B, N, T, D)`` with ``T >= 2``; edge_index: ``(2, E)``
        - output: ``(B, E, num_scores)``
    """

    def __init__(
        self, num_dims: int, hidden_size: int, num_scores: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.num_dims = num_dims
        self.convolutions = nn.Sequential(
            nn.Conv1d(2 * num_dims, hidden_size, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.BatchNorm1d(hidden_size),
            nn.Dropout(dropout),
            nn.MaxPool1d(2),
            nn.Conv1d(hidden_size, hidden_size, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.BatchNorm1d(hidden_size),
        )
        self.features = nn.Conv1d(hidden_size, hidden_size, kernel_size=1)
        self.attention = nn.Conv1d(hidden_size, 1, kernel_size=1)
        self.edge_embedding = EncoderMLP(hidden_size, hidden_size, dropout)
        self.refinement = EdgeRefinement(hidden_size, num_scores, dropout)

    def forward(self, trajectories: Tensor, edge_index: Tensor) -> Tensor:
        """Edge-type scores.

        Raises:
            ValueError: if the trajectories have fewer than 2 steps or not ``num_dims``
                features.
        """
        batch, num_nodes, num_steps, num_dims = trajectories.shape
        if num_steps < 2 or num_dims != self.num_dims:
            raise ValueError(
                f"CNNEncoder: trajectories must have shape (B, N, T, {self.num_dims}) with "
                f"T >= 2, got {tuple(trajectories.shape)}"
            )
        channels = trajectories.transpose(-2, -1).flatten(-2)  # [B, N, D T]
        pairs = node_to_edge(channels, edge_index).unflatten(-1, (2 * num_dims, num_steps))
        hidden = self.convolutions(pairs.flatten(0, 1))  # [B E, H, T']
        weights = torch.softmax(self.attention(hidden), -1)
        pooled = (self.features(hidden) * weights).sum(-1).unflatten(0, (batch, -1))
        return self.refinement(self.edge_embedding(pooled), edge_index, num_nodes)
