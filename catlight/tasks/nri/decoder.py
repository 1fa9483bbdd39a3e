"""NRI decoders: the next state of every particle given the (sampled) edge types.

Each edge type k has its own message function ``f_e^k``; the message of edge ``(i, j)``
is ``sum_k z_(i,j),k f_e^k(...)``, so a one-hot ``z`` selects one function and a relaxed
``z`` mixes them. With ``skip_first`` type 0 means "no interaction": it has no message
function and contributes nothing. Messages are summed at their receivers.

Both decoders predict steps ``1 .. T-1`` of a trajectory and are fed the ground truth
every ``prediction_steps`` steps (teacher forcing), their own predictions in between:
``prediction_steps = 1`` gives one-step predictions, ``prediction_steps >= T - 1``
an open-loop roll-out from the first state.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from catlight.tasks.nri.graph import edge_to_node, node_to_edge

__all__ = ["MLPDecoder", "RNNDecoder", "TypedMessages"]


class TypedMessages(nn.Module):
    """One message MLP per edge type, mixed by the edge-type weights.

    Args:
        input_size: features of an edge (sender and receiver concatenated).
        hidden_size: width of the MLPs and of the messages.
        num_edge_types: K.
        skip_first: type 0 carries no message (no MLP for it).
        activation: the MLPs' nonlinearity, after both layers.
        dropout: dropout probability between the layers.

    Raises:
        ValueError: if ``num_edge_types < 2``.

    Shapes:
        - pairs: ``(*batch, E, input_size)``
        - edge_weights: ``(*batch, E, K)`` (broadcastable)
        - output: ``(*batch, E, hidden_size)``
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_edge_types: int,
        skip_first: bool,
        activation: type[nn.Module],
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_edge_types < 2:
            raise ValueError(f"TypedMessages: num_edge_types must be >= 2, got {num_edge_types}")
        self.num_edge_types = num_edge_types
        self.first_type = 1 if skip_first else 0
        self.functions = nn.ModuleList(
            nn.Sequential(
                nn.Linear(input_size, hidden_size),
                activation(),
                nn.Dropout(dropout),
                nn.Linear(hidden_size, hidden_size),
                activation(),
            )
            for _ in range(self.first_type, num_edge_types)
        )

    def forward(self, pairs: Tensor, edge_weights: Tensor) -> Tensor:
        """``sum_k edge_weights[..., k] * f_e^k(pairs)`` over the types with a message."""
        messages = 0.0
        for edge_type, function in enumerate(self.functions, start=self.first_type):
            messages = messages + edge_weights[..., edge_type : edge_type + 1] * function(pairs)
        return messages


def _output_mlp(input_size: int, hidden_size: int, output_size: int, dropout: float) -> nn.Module:
    """The decoders' output MLP: two ReLU layers of ``hidden_size``, each followed by dropout."""
    return nn.Sequential(
        nn.Linear(input_size, hidden_size),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden_size, hidden_size),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden_size, output_size),
    )


def _check_inputs(
    owner: str, trajectories: Tensor, edge_weights: Tensor, num_edge_types: int, steps: int
) -> None:
    """Raise a ValueError for inputs the decoders cannot use."""
    if trajectories.dim() != 4 or trajectories.shape[2] < 2:
        raise ValueError(
            f"{owner}: trajectories must have shape (B, N, T, D) with T >= 2, "
            f"got {tuple(trajectories.shape)}"
        )
    batch, num_nodes = trajectories.shape[:2]
    num_edges = num_nodes * (num_nodes - 1)
    if edge_weights.dim() != 4 or tuple(edge_weights.shape[1:]) != (
        batch,
        num_edges,
        num_edge_types,
    ):
        raise ValueError(
            f"{owner}: edge_weights must have shape (S, B, E, K) = (S, {batch}, {num_edges}, "
            f"{num_edge_types}), got {tuple(edge_weights.shape)}"
        )
    if steps < 1:
        raise ValueError(f"{owner}: prediction_steps must be >= 1, got {steps}")


class MLPDecoder(nn.Module):
    """Markovian decoder: ``mu^(t+1)_j = x^t_j + f_v([x^t_j, sum_i m^t_(i,j)])``.

    The message of edge ``(i, j)`` is ``m_(i,j) = sum_k z_(i,j),k f_e^k([x_i, x_j])``.
    Because a step depends only on the current state, the roll-outs that start from
    the ground truth at ``0, P, 2P, ...`` run in parallel (one step advances them all).

    Args:
        num_dims: D, features per particle and step.
        num_edge_types: K.
        hidden_size: width of the message and output MLPs.
        skip_first: edge type 0 is "no interaction".
        dropout: dropout probability inside the MLPs.

    Shapes:
        - trajectories: ``(B, N, T, D)``; edge_weights: ``(S, B, E, K)``
        - edge_index: ``(2, E)``
        - output: ``(S, B, N, T - 1, D)``, the predictions of steps ``1 .. T-1``
    """

    def __init__(
        self,
        num_dims: int,
        num_edge_types: int,
        hidden_size: int = 256,
        skip_first: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_edge_types = num_edge_types
        self.messages = TypedMessages(
            2 * num_dims, hidden_size, num_edge_types, skip_first, nn.ReLU, dropout
        )
        self.output = _output_mlp(num_dims + hidden_size, hidden_size, num_dims, dropout)

    def step(self, states: Tensor, edge_weights: Tensor, edge_index: Tensor) -> Tensor:
        """One step forward.

        Shapes:
            - states: ``(*batch, N, D)``; edge_weights: ``(*batch, E, K)`` (broadcastable)
            - output: ``(*batch, N, D)``
        """
        messages = self.messages(node_to_edge(states, edge_index), edge_weights)
        incoming = edge_to_node(messages, edge_index, states.shape[-2])
        return states + self.output(torch.cat([states, incoming], -1))

    def forward(
        self, trajectories: Tensor, edge_weights: Tensor, edge_index: Tensor, prediction_steps: int
    ) -> Tensor:
        """Predictions of steps ``1 .. T-1``, teacher-forced every ``prediction_steps``.

        Raises:
            ValueError: for shapes that do not match or ``prediction_steps < 1``.
        """
        _check_inputs(
            "MLPDecoder", trajectories, edge_weights, self.num_edge_types, prediction_steps
        )
        num_targets = trajectories.shape[2] - 1
        chunk = min(prediction_steps, num_targets)
        starts = trajectories[:, :, :num_targets:chunk].transpose(1, 2)  # [B, C, N, D]
        states = starts.expand(edge_weights.shape[0], *starts.shape)  # [S, B, C, N, D]
        weights = edge_weights.unsqueeze(2)  # [S, B, 1, E, K]: shared by the chunks
        predictions = []
        for _ in range(chunk):
            states = self.step(states, weights, edge_index)
            predictions.append(states)
        # [S, B, C, P, N, D]: chunk c, step p predicts time c P + p + 1
        stacked = torch.stack(predictions, 3).flatten(2, 3)[:, :, :num_targets]
        return stacked.transpose(2, 3)


class RNNDecoder(nn.Module):
    """Recurrent decoder: a GRU per particle whose input includes the incoming messages.

    ``m_(i,j) = sum_k z_(i,j),k f_e^k([h_i, h_j])``,
    ``h_j <- GRU([x_j, sum_i m_(i,j)], h_j)``, ``mu_j = x_j + f_out(h_j)``, where ``x``
    is the ground truth every ``prediction_steps`` steps and the last prediction in
    between. The hidden state carries over the teacher-forced steps. A variant of
    Kipf et al.'s recurrent decoder: messages are summed (not averaged over senders and
    types) and enter a standard ``GRUCell`` as input, so its numbers are not directly
    comparable with the paper's RNN rows.

    Args:
        num_dims: D, features per particle and step.
        num_edge_types: K.
        hidden_size: width of the hidden state, messages and output MLP.
        skip_first: edge type 0 is "no interaction".
        dropout: dropout probability inside the output MLP and the messages.

    Shapes:
        - trajectories: ``(B, N, T, D)``; edge_weights: ``(S, B, E, K)``
        - edge_index: ``(2, E)``
        - output: ``(S, B, N, T - 1, D)``, the predictions of steps ``1 .. T-1``
    """

    def __init__(
        self,
        num_dims: int,
        num_edge_types: int,
        hidden_size: int = 256,
        skip_first: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_edge_types = num_edge_types
        self.hidden_size = hidden_size
        self.messages = TypedMessages(
            2 * hidden_size, hidden_size, num_edge_types, skip_first, nn.Tanh, dropout
        )
        self.cell = nn.GRUCell(num_dims + hidden_size, hidden_size)
        self.output = _output_mlp(hidden_size, hidden_size, num_dims, dropout)

    def forward(
        self, trajectories: Tensor, edge_weights: Tensor, edge_index: Tensor, prediction_steps: int
    ) -> Tensor:
        """Predictions of steps ``1 .. T-1``, teacher-forced every ``prediction_steps``.

        Raises:
            ValueError: for shapes that do not match or ``prediction_steps < 1``.
        """
        _check_inputs(
            "RNNDecoder", trajectories, edge_weights, self.num_edge_types, prediction_steps
        )
        num_samples = edge_weights.shape[0]
        batch, num_nodes, num_steps = trajectories.shape[:3]
        hidden = trajectories.new_zeros(num_samples, batch, num_nodes, self.hidden_size)
        predictions: list[Tensor] = []
        for step in range(num_steps - 1):
            if step % prediction_steps == 0:
                inputs = trajectories[:, :, step].expand(num_samples, -1, -1, -1)
            else:
                inputs = predictions[-1]
            messages = self.messages(node_to_edge(hidden, edge_index), edge_weights)
            incoming = edge_to_node(messages, edge_index, num_nodes)
            cell_inputs = torch.cat([inputs, incoming], -1).flatten(0, -2)
            hidden = self.cell(cell_inputs, hidden.flatten(0, -2)).view_as(hidden)
            predictions.append(inputs + self.output(hidden))
        return torch.stack(predictions, -2)
