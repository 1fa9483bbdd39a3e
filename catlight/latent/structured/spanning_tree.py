"""Undirected spanning trees of the complete graph: Kruskal's algorithm on perturbations."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from catlight.latent._checks import check_int_at_least
from catlight.latent.structured.base import Structure, Trace, selection_mask

__all__ = ["SpanningTree"]


class SpanningTree(Structure):
    r"""A spanning tree over ``m`` nodes, the minimum spanning tree of the perturbations.

    The ``E = m (m - 1) / 2`` edges of the complete graph are numbered as
    ``torch.triu_indices(m, m, offset=1)`` lists them (row-major upper triangle:
    ``(0, 1), (0, 2), ..., (1, 2), ...``); :attr:`edges` holds their endpoints. Kruskal's
    algorithm as a recursive argmin: step ``t`` (of ``m - 1``) chooses the lightest edge
    among those that join two different components of the forest built so far (the
    active set). High-scoring edges are likely in the tree. Every order of a tree's
    edges is a possible trace, so ``(m - 1)!`` traces build each tree.

    The whole batch runs at once: each step compares component labels of all edges
    (``O(E m)`` work per step, no per-graph Python loop).

    Args:
        num_nodes: m >= 2.

    Raises:
        ValueError: if ``num_nodes < 2``.

    Shapes:
        - scores: ``(*batch, E)``, one per edge of the complete graph
        - trace: ``selected`` ``(*shape, m - 1)`` edge indices in order of choice,
          ``active`` ``(*shape, m - 1, E)``
        - encode: ``(*shape, E)`` float32 mask of the tree's edges
    """

    edges: Tensor

    def __init__(self, num_nodes: int) -> None:
        super().__init__()
        check_int_at_least("SpanningTree", "num_nodes", num_nodes, 2)
        self.num_nodes = num_nodes
        self.num_scores = num_nodes * (num_nodes - 1) // 2
        self.register_buffer("edges", torch.triu_indices(num_nodes, num_nodes, 1), persistent=False)

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_nodes={self.num_nodes}"

    @property
    def log_num_traces(self) -> float:
        """``log(m^(m-2) (m - 1)!)``: Cayley's count of trees times the orders of their edges."""
        return (self.num_nodes - 2) * math.log(self.num_nodes) + math.lgamma(self.num_nodes)

    def trace(self, exponentials: Tensor) -> Trace:
        """Kruskal's algorithm on the batch. See the class for shapes."""
        weights = exponentials.detach()
        shape = weights.shape[:-1]
        component = torch.arange(self.num_nodes, device=weights.device).expand(*shape, -1)
        ends = [self.edges[end].expand(*shape, -1) for end in (0, 1)]
        selected, active = [], []
        for _ in range(self.num_nodes - 1):
            first, second = (component.gather(-1, end) for end in ends)  # (*, E) labels
            joins = first != second
            choice = weights.masked_fill(~joins, torch.inf).argmin(-1, keepdim=True)
            kept, absorbed = first.gather(-1, choice), second.gather(-1, choice)
            component = torch.where(component == absorbed, kept, component)
            selected.append(choice.squeeze(-1))
            active.append(joins)
        return Trace(torch.stack(selected, -1), torch.stack(active, -2))

    def encode(self, trace: Trace) -> Tensor:
        """The mask of the tree's edges, shape ``(*shape, E)``."""
        return selection_mask(trace.selected, self.num_scores)

    def adjacency(self, edge_mask: Tensor) -> Tensor:
        """The symmetric adjacency matrix of an edge mask (e.g. :meth:`encode`'s).

        Shapes:
            - edge_mask: ``(*shape, E)``
            - output: ``(*shape, m, m)``, zero diagonal
        """
        flat = self.edges[0] * self.num_nodes + self.edges[1]
        matrix = edge_mask.new_zeros(*edge_mask.shape[:-1], self.num_nodes**2)
        matrix = matrix.index_copy(-1, flat, edge_mask).unflatten(-1, (self.num_nodes,) * 2)
        return matrix + matrix.transpose(-1, -2)
