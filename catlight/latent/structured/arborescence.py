r"""Arborescences of the complete directed graph: Chu-Liu/Edmonds on perturbations.

An arborescence rooted at ``r`` is a spanning tree whose edges all point away from
``r``: every other node has exactly one incoming edge, and following the incoming edges
back from any node reaches ``r``. The structure is the minimum arborescence of the
perturbations ``E``, found by Chu-Liu/Edmonds written as a recursive argmin
(Struminsky et al. 2021, section on arborescences; Edmonds 1967).

**The algorithm.** The nodes are grouped; at the start each node is its own group. A
step takes the waiting group (not the root's, no incoming edge chosen yet) with the
smallest node and chooses the lightest edge entering it from outside; its active set is
every edge entering the group. The step's minimum is then subtracted from every edge of
its active set (Edmonds' reduced weights). If the chosen edges now close a cycle of
groups, the cycle becomes one waiting group. The algorithm stops when every group but
the root's has an incoming edge: then ``n - 1`` steps plus one per contraction, at most
``2n - 3`` in all.

**Why the generic trace formulas hold.** An edge ``e`` entering a contracted group
enters, inside it, a smaller group whose chosen edge the contraction made internal; its
reduced weight is ``E_e`` minus the minima of the earlier steps whose active sets held
``e``. Given the earlier steps, memorylessness makes the reduced weights of a step
independent exponentials with the rates ``exp(theta_e)`` of their edges, so each step is
a categorical over its active set and ``log p(T) = sum_t [theta_{e_t} - logsumexp_{A_t}
theta]``, as for every structure of :mod:`.base`. The conditional ``E | T`` differs: an
edge's value is the *sum* of the step increments of every step that held it (plus a fresh
exponential if it was never chosen), not the largest minimum, see :meth:`conditional`.

**The arborescence of a trace.** The final groups keep their chosen edges; inside a
contracted group, the edge that entered it replaces the chosen edge of the subgroup it
enters, and the other subgroups keep theirs, recursively. Node by node: walk the groups
holding node ``v`` from the outermost inwards, starting with the outermost one's chosen
edge; at each smaller group, keep the current edge if its head lies in that group, else
take the group's own chosen edge. The edge left is ``v``'s incoming edge.
"""

from __future__ import annotations

import torch
from torch import Tensor

from catlight.latent._checks import check_int_at_least
from catlight.latent.structured.base import (
    Structure,
    Trace,
    trace_kl_to_uniform,
    unit_exponentials,
)

__all__ = ["Arborescence"]


class Arborescence(Structure):
    r"""An arborescence over ``m`` nodes rooted at ``root``: the minimum one of ``E``.

    The ``E = m (m - 1)`` directed edges are the ordered pairs ``(i, j)``, ``i != j``,
    row by row (``(0, 1), (0, 2), ..., (1, 0), (1, 2), ...``: edge ``e = i (m - 1) + j -
    [j > i]``, NRI's order); edge ``(i, j)`` points from the parent ``i`` to the child
    ``j``. :attr:`edges` holds the parents (row 0) and children (row 1). Edges into the
    root are never chosen: their scores get no gradient. High-scoring edges are likely in
    the arborescence. See the module docstring for the algorithm.

    Traces with fewer than ``2m - 3`` steps (fewer than ``m - 2`` contractions) end
    with padding steps whose only active edge is the first edge into the root: their
    probability is one, so they change neither ``log p(T)`` nor the KL. The number of
    traces differs from one arborescence to another, so the prior of :meth:`trace_kl` is
    the trace distribution at zero scores (each step uniform over its active set), not
    the uniform distribution over traces.

    The whole batch runs at once: each step compares group labels of all edges
    (``O(E + m^2)`` work per step, no per-graph Python loop).

    Args:
        num_nodes: m >= 2.
        root: the root node, ``0 <= root < m``.

    Raises:
        ValueError: if ``num_nodes < 2`` or ``root`` is not a node.

    Shapes:
        - scores: ``(*batch, E)``, one per directed edge
        - trace: ``selected`` ``(*shape, 2m - 3)`` edge indices in order of choice,
          ``active`` ``(*shape, 2m - 3, E)``
        - encode: ``(*shape, E)`` float32 mask of the arborescence's ``m - 1`` edges
    """

    edges: Tensor

    def __init__(self, num_nodes: int, root: int = 0) -> None:
        super().__init__()
        check_int_at_least("Arborescence", "num_nodes", num_nodes, 2)
        if isinstance(root, bool) or not isinstance(root, int) or not 0 <= root < num_nodes:
            raise ValueError(
                f"Arborescence: root must be a node, an int in [0, {num_nodes - 1}], got {root!r}"
            )
        self.num_nodes = num_nodes
        self.root = root
        self.num_scores = num_nodes * (num_nodes - 1)
        self.num_steps = 2 * num_nodes - 3
        off_diagonal = ~torch.eye(num_nodes, dtype=torch.bool)
        self.register_buffer("edges", off_diagonal.nonzero().t().contiguous(), persistent=False)
        self.padding_edge = int((self.edges[1] == root).nonzero()[0])

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_nodes={self.num_nodes}, root={self.root}"

    @property
    def log_num_traces(self) -> float:
        """Not defined: arborescences have different numbers of traces.

        Raises:
            ValueError: always; :meth:`trace_kl` uses the zero-score prior instead.
        """
        raise ValueError(
            "Arborescence: log_num_traces is not defined (arborescences are built by "
            "different numbers of traces); trace_kl compares with the zero-score prior"
        )

    def trace(self, exponentials: Tensor) -> Trace:
        """Chu-Liu/Edmonds on the batch. See the class for shapes."""
        weights = exponentials.detach()
        shape = weights.shape[:-1]
        n, device = self.num_nodes, weights.device
        nodes = torch.arange(n, device=device)
        parents, children = (end.expand(*shape, -1) for end in self.edges)
        padding = torch.zeros_like(weights, dtype=torch.bool)
        padding[..., self.padding_edge] = True
        group = nodes.expand(*shape, n).clone()  # group label of each node: its smallest node
        incoming = torch.full((*shape, n), -1, dtype=torch.long, device=device)
        reduced = weights.clone()
        selected, active = [], []
        for _ in range(self.num_steps):
            waiting = (group == nodes) & (incoming < 0) & (nodes != self.root)
            done = ~waiting.any(-1, keepdim=True)  # (*, 1)
            current = torch.where(waiting, nodes, n).amin(-1, keepdim=True).clamp(max=n - 1)
            parent_group, child_group = group.gather(-1, parents), group.gather(-1, children)
            enters = (child_group == current) & (parent_group != current)
            enters = torch.where(done, padding, enters)  # (*, E)
            candidates = reduced.masked_fill(~enters, torch.inf)
            choice = candidates.argmin(-1, keepdim=True)
            reduced = reduced - candidates.gather(-1, choice) * enters
            selected.append(choice.squeeze(-1))
            active.append(enters)
            chosen = torch.where(done, incoming.gather(-1, current), choice)
            incoming = incoming.scatter(-1, current, chosen)
            group, incoming = self._contract_cycle(group, incoming, current, done)
        return Trace(torch.stack(selected, -1), torch.stack(active, -2))

    def _contract_cycle(
        self, group: Tensor, incoming: Tensor, current: Tensor, done: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Merge the groups of a cycle closed by the current group's edge into one.

        Walks back from the current group along the chosen edges (at most ``m`` groups);
        if the walk returns to it, every group on the way joins it, under the smallest
        node, with no incoming edge.

        Shapes:
            - group, incoming: ``(*shape, m)``
            - current, done: ``(*shape, 1)``
            - output: ``(group, incoming)``, each ``(*shape, m)``
        """
        n = self.num_nodes
        nodes = torch.arange(n, device=group.device)
        parent_node = self.edges[0][incoming.clamp(min=0)]
        parent_group = torch.where(incoming >= 0, group.gather(-1, parent_node), nodes)
        cursor = parent_group.gather(-1, current)
        closed = torch.zeros_like(done)
        on_cycle = nodes == current  # (*, m) over group labels
        for _ in range(n):
            closed = closed | (cursor == current)
            on_cycle = on_cycle | ((nodes == cursor) & ~closed)
            cursor = parent_group.gather(-1, cursor)
        merging = on_cycle.gather(-1, group) & closed & ~done  # (*, m) over nodes
        merged = torch.where(merging, nodes, n).amin(-1, keepdim=True)
        group = torch.where(merging, merged, group)
        incoming = torch.where(merging & (nodes == merged), -1, incoming)
        return group, incoming

    def encode(self, trace: Trace) -> Tensor:
        """The mask of the arborescence's edges, shape ``(*shape, E)``.

        Each step's group is the set of children of its active edges (every node of a
        group has edges from outside it); padding steps, whose group is the root, are
        skipped. See the module docstring for the rule.
        """
        n = self.num_nodes
        children = self.edges[1]
        child_of = torch.nn.functional.one_hot(children, n).to(torch.float32)  # (E, m)
        in_group = (trace.active.to(torch.float32) @ child_of) > 0  # (*, T, m)
        real = ~in_group[..., self.root]  # (*, T)
        kept = torch.full_like(in_group[..., 0, :], -1, dtype=torch.long)  # (*, m)
        for step in reversed(range(trace.selected.shape[-1])):
            members = in_group[..., step, :] & real[..., step, None]
            kept_child = children[kept.clamp(min=0)]
            still_inside = (kept >= 0) & members.gather(-1, kept_child)
            kept = torch.where(members & ~still_inside, trace.selected[..., step, None], kept)
        edge_of_node = torch.nn.functional.one_hot(kept.clamp(min=0), self.num_scores)
        return (edge_of_node * (kept >= 0).unsqueeze(-1)).sum(-2).to(torch.float32)

    def conditional(self, scores: Tensor, trace: Trace) -> Tensor:
        """A reparameterised sample of ``E | T`` (differentiable in ``scores``).

        Each real step ``t`` gets an increment ``X_t ~ Exp(rate = sum_{A_t}
        exp(theta))``, the minimum of its reduced weights; an edge's value is the sum of
        the increments of the steps whose active sets held it, plus ``Exp(rate =
        exp(theta_e))`` if no step chose it. Padding steps add nothing.

        Shapes:
            - scores: ``(*batch, E)``, broadcast against the trace's ``*shape``
            - trace: ``selected`` ``(*shape, T)``, ``active`` ``(*shape, T, E)``
            - output: ``(*shape, E)`` float32
        """
        active, selected = trace.active, trace.selected
        real = selected != self.padding_edge  # (*, T)
        held = (active & real.unsqueeze(-1)).to(scores.dtype)
        step_scores = scores.unsqueeze(-2).expand(active.shape)
        log_step_rates = step_scores.masked_fill(~active, -torch.inf).logsumexp(-1)
        num_steps = selected.shape[-1]
        noise = unit_exponentials((*active.shape[:-2], num_steps + active.shape[-1]), scores.device)
        increments = noise[..., :num_steps] * torch.exp(-log_step_rates)  # (*, T)
        floor = (increments.unsqueeze(-2) @ held).squeeze(-2)  # (*, E)
        was_chosen = torch.zeros_like(active[..., 0, :]).scatter_(-1, selected, real)
        excess = noise[..., num_steps:] * torch.exp(-scores)
        return floor + excess.masked_fill(was_chosen, 0.0)

    def trace_kl(self, scores: Tensor, trace: Trace) -> Tensor:
        r"""One-sample estimate of ``KL(q(tau) || p_0(tau))``, ``p_0`` the zero-score prior.

        ``p_0`` is the trace distribution at ``theta = 0`` (i.i.d. ``Exp(1)``
        perturbations): each step uniform over its active set. So the estimate is
        ``sum_t [log |A_t| - H(softmax_{A_t}(theta))]``, unbiased by the chain rule of
        entropy and differentiable in ``scores`` (see
        :func:`~catlight.latent.structured.trace_kl_to_uniform`).

        Shapes:
            - scores: ``(*batch, E)``, broadcast against the trace's ``*shape``
            - trace: ``selected`` ``(*shape, T)``, ``active`` ``(*shape, T, E)``
            - output: ``(*shape)``
        """
        log_step_sizes = trace.active.sum(-1).float().log().sum(-1)
        return trace_kl_to_uniform(scores, trace, 0.0) + log_step_sizes
