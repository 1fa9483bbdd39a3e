"""Message passing on the fully connected interaction graph of NRI, batched over simulations.

Every simulation of a batch has the same N particles and the same graph (all ordered
pairs ``(i, j)``, ``i != j``), so the graph is one ``edge_index`` of shape ``(2, E)``
and the batch stays a leading tensor dimension: nodes ``(*batch, N, F)``, edges
``(*batch, E, F)``. No per-graph index offsets, no concatenation of the batch into one
big graph: gathering is one ``index_select`` along the node dimension and aggregation
one ``scatter`` (torch_geometric) along it, for any number of leading dimensions
(samples of the latent, simulations, chunks of time).

In the dense formulation of Kipf et al. (2018) with one-hot matrices
``rel_send, rel_rec`` of shape ``(E, N)``, :func:`node_to_edge` is
``concat(rel_send @ x, rel_rec @ x)`` and :func:`edge_to_node` is ``rel_rec^T @ e``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import scatter

__all__ = ["edge_to_node", "fully_connected_edge_index", "node_to_edge"]


def node_to_edge(nodes: Tensor, edge_index: Tensor) -> Tensor:
    """Features of each edge's sender and receiver, concatenated (sender first).

    Args:
        nodes: node features.
        edge_index: ``(2, E)``; row 0 senders, row 1 receivers.

    Returns:
        ``concat(nodes[sender], nodes[receiver])`` for every edge.

    Shapes:
        - nodes: ``(*batch, N, F)``
        - edge_index: ``(2, E)``
        - output: ``(*batch, E, 2F)``
    """
    senders = nodes.index_select(-2, edge_index[0])
    receivers = nodes.index_select(-2, edge_index[1])
    return torch.cat([senders, receivers], -1)


def edge_to_node(edges: Tensor, edge_index: Tensor, num_nodes: int) -> Tensor:
    """Sum of the features of the edges arriving at each node.

    Args:
        edges: edge features.
        edge_index: ``(2, E)``; row 1 (receivers) says where each edge arrives.
        num_nodes: N.

    Returns:
        ``sum_{e : receiver(e) = j} edges[e]`` for every node j.

    Shapes:
        - edges: ``(*batch, E, F)``
        - edge_index: ``(2, E)``
        - output: ``(*batch, N, F)``
    """
    return scatter(edges, edge_index[1], dim=-2, dim_size=num_nodes, reduce="sum")


def fully_connected_edge_index(num_particles: int) -> Tensor:
    """Every ordered pair of distinct particles, sender-major.

    Edge ``e = i (N - 1) + j - [j > i]`` goes from sender ``i`` to receiver ``j``: the
    off-diagonal entries of an ``N x N`` matrix read row by row.

    Args:
        num_particles: ``N`` (at least 2).

    Returns:
        Row 0 the senders, row 1 the receivers (int64).

    Raises:
        ValueError: if ``num_particles < 2``.

    Shapes:
        - output: ``(2, N (N - 1))``

    Example::

        >>> fully_connected_edge_index(3).tolist()
        [[0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1]]
    """
    if num_particles < 2:
        raise ValueError(
            f"fully_connected_edge_index: num_particles must be >= 2, got {num_particles}"
        )
    off_diagonal = ~torch.eye(num_particles, dtype=torch.bool)
    return off_diagonal.nonzero().T.contiguous()
