r"""NRI's edge latents: independent edge types, or one (directed) tree per simulation.

NRI's encoder scores every ordered pair ``(i, j)`` of the ``E = N (N - 1)`` pairs of
particles (sender-major, see
:func:`~catlight.tasks.nri.data.fully_connected_edge_index`). An *edge latent* turns
those scores into what the rest of the model needs, whatever the latent is:

- for training, edge-type weights ``z`` of shape ``(S, B, E, K)`` for the decoder and
  the negative ELBO of a cost (:class:`EdgeSample`);
- for evaluation, the type probabilities of each pair, the most probable graph and the
  KL to the prior (:class:`EdgePosterior`).

Three latents:

- :class:`IndependentEdges` (a :class:`~catlight.latent.DiscreteLatent`): one
  categorical over K types per ordered pair, with a closed-form KL to a uniform or
  sparse prior over the types (Kipf et al. 2018);
- :class:`SpanningTreeEdges` (a :class:`~catlight.latent.structured.StructuredLatent`
  over a :class:`~catlight.latent.structured.SpanningTree`): the interaction graph is
  one undirected spanning tree of the particles, K = 2 (type 1: the pair is a tree
  edge, type 0: it is not), with a uniform prior over spanning trees;
- :class:`ArborescenceEdges` (a StructuredLatent over an
  :class:`~catlight.latent.structured.Arborescence`): the interaction graph is one
  arborescence rooted at particle 0, K = 2 on the ordered pairs (type 1: parent -> child).

:func:`edge_latent` picks the one that fits the configured latent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from catlight.latent import DiscreteLatent, LatentSample, categorical_kl
from catlight.latent.structured import (
    Arborescence,
    SpanningTree,
    StructuredLatent,
    StructuredSample,
)
from catlight.tasks.nri.graph import fully_connected_edge_index

__all__ = [
    "ArborescenceEdges",
    "EdgeLatent",
    "EdgePosterior",
    "EdgeSample",
    "IndependentEdges",
    "SpanningTreeEdges",
    "edge_latent",
]

Prior = Literal["uniform", "sparse"]


class EdgeSample:
    """Edge types sampled for training, and the negative ELBO built on them.

    Attributes:
        z: edge-type weights for the decoder (one-hot or relaxed).

    Shapes:
        - z: ``(S, B, E, K)``
    """

    z: Tensor

    def negative_elbo(self, nll: Tensor, kl_weight: float) -> tuple[Tensor, Tensor]:
        """The surrogate of ``E_q[nll] + kl_weight KL`` and its KL part.

        The surrogate's value estimates the negative ELBO and its gradient is the
        latent estimator's (``nll`` may carry pathwise gradients, e.g. of the decoder).

        Shapes:
            - nll: ``(S, B)``, one cost per sample and simulation
            - output: ``(B,)`` and ``(B,)``
        """
        raise NotImplementedError


class EdgePosterior:
    """What evaluation reads from ``q(edges | trajectories)``; no estimator involved.

    Args:
        log_probs: log-probability of each type for each ordered pair (the marginals).
        mode: the most probable graph, one-hot types.
        kl: ``KL(q || prior)`` per simulation (exact or estimated, see the latent).

    Shapes:
        - log_probs, mode: ``(B, E, K)``
        - kl: ``(B,)``
    """

    def __init__(self, log_probs: Tensor, mode: Tensor, kl: Tensor) -> None:
        self.log_probs = log_probs
        self.mode = mode
        self.kl = kl


class EdgeLatent(nn.Module):
    """Base class of NRI's edge latents; subclasses set the attributes and the two methods.

    Attributes:
        latent: the configured latent layer.
        num_types: K, edge types the decoder distinguishes.
        num_scores: scores per ordered pair the encoder must output.
    """

    latent: nn.Module
    num_types: int
    num_scores: int

    def forward(self, scores: Tensor) -> EdgeSample:
        """Sample edge types for training.

        Shapes:
            - scores: ``(B, E, num_scores)``
            - output: an EdgeSample with ``z`` ``(S, B, E, K)``
        """
        raise NotImplementedError

    def posterior(self, scores: Tensor) -> EdgePosterior:
        """Type probabilities, the most probable graph and the KL, for evaluation.

        Shapes:
            - scores: ``(B, E, num_scores)``
            - output: an EdgePosterior with ``(B, E, K)`` tensors and ``kl`` ``(B,)``
        """
        raise NotImplementedError


def edge_latent(
    latent: DiscreteLatent | StructuredLatent, prior: Prior, sparse_prior_first: float
) -> EdgeLatent:
    """The edge latent that fits ``latent``.

    Args:
        latent: a DiscreteLatent (independent types) or a StructuredLatent over a
            SpanningTree or an Arborescence (one tree per simulation).
        prior: ``"uniform"`` or ``"sparse"`` (independent types only).
        sparse_prior_first: the sparse prior's probability of type 0.

    Returns:
        :class:`IndependentEdges`, :class:`SpanningTreeEdges` or
        :class:`ArborescenceEdges`.

    Raises:
        ValueError: for another kind of latent, or a sparse prior with a tree.
    """
    if isinstance(latent, DiscreteLatent):
        return IndependentEdges(latent, prior, sparse_prior_first)
    if isinstance(latent, StructuredLatent):
        if prior != "uniform":
            raise ValueError(
                f"NRI: prior must be 'uniform' with a StructuredLatent (a tree has N - 1 "
                f"edges whatever the prior; its prior is uniform over trees), got {prior!r}"
            )
        if isinstance(latent.structure, Arborescence):
            return ArborescenceEdges(latent)
        return SpanningTreeEdges(latent)
    raise ValueError(
        "NRI: latent must be a DiscreteLatent or a StructuredLatent over a SpanningTree or "
        "an Arborescence, "
        f"got {type(latent).__name__}"
    )


class IndependentEdges(EdgeLatent):
    r"""One categorical over K edge types per ordered pair (the NRI of Kipf et al.).

    The KL to the prior is closed-form and added outside the estimator's objective:
    ``objective(nll) + kl_weight sum_e KL(q_e || p)``.

    Args:
        latent: the DiscreteLatent of the types (``num_categories`` is K).
        prior: ``"uniform"`` over the K types, or ``"sparse"``: probability
            ``sparse_prior_first`` for type 0 and the rest split evenly.
        sparse_prior_first: the sparse prior's probability of type 0.

    Shapes:
        - scores: ``(B, E, latent.num_scores)``
    """

    prior_log_probs: Tensor

    def __init__(self, latent: DiscreteLatent, prior: Prior, sparse_prior_first: float) -> None:
        super().__init__()
        self.latent = latent
        self.num_types = latent.num_categories
        self.num_scores = latent.num_scores
        if prior == "sparse":
            rest = (1 - sparse_prior_first) / (self.num_types - 1)
            probs = torch.tensor([sparse_prior_first] + [rest] * (self.num_types - 1))
        else:
            probs = torch.full((self.num_types,), 1 / self.num_types)
        self.register_buffer("prior_log_probs", probs.log())

    def forward(self, scores: Tensor) -> EdgeSample:
        """Sample types with the latent's estimator. See :class:`EdgeLatent`."""
        return _IndependentSample(self.latent(scores), self.prior_log_probs)

    def posterior(self, scores: Tensor) -> EdgePosterior:
        """Exact marginals, the most probable type of each pair, the exact KL."""
        log_probs = self.latent.log_probs(scores)
        mode = F.one_hot(log_probs.argmax(-1), self.num_types).to(log_probs.dtype)
        kl = categorical_kl(log_probs, self.prior_log_probs).sum(-1)
        return EdgePosterior(log_probs, mode, kl)


class _IndependentSample(EdgeSample):
    """A DiscreteLatent's sample; the closed-form KL is added to the objective."""

    def __init__(self, sample: LatentSample, prior_log_probs: Tensor) -> None:
        self.sample = sample
        self.prior_log_probs = prior_log_probs
        self.z = sample.z

    def negative_elbo(self, nll: Tensor, kl_weight: float) -> tuple[Tensor, Tensor]:
        """``objective(nll) + kl_weight KL``. See :class:`EdgeSample`."""
        kl = kl_weight * self.sample.kl(self.prior_log_probs).sum(-1)
        return self.sample.objective(nll) + kl, kl


class SpanningTreeEdges(EdgeLatent):
    r"""The interaction graph is one undirected spanning tree of the N particles.

    The encoder outputs one score ``s_(i,j)`` per ordered pair; the tree's score of the
    undirected edge ``{i, j}`` is their mean ``theta_ij = (s_(i,j) + s_(j,i)) / 2``. The
    :class:`~catlight.latent.structured.StructuredLatent` samples a tree ``T`` (Kruskal
    on ``E_ij ~ Exp(rate = exp(theta_ij))``) and both directions of a tree edge get type
    1: ``z_(i,j) = (1 - a_ij, a_ij)`` with ``a`` the tree's adjacency matrix. With
    ``skip_first`` type 0 means "no interaction", so the decoder passes messages along
    the tree's edges only.

    **ELBO.** The prior is uniform over the ``N^(N-2)`` spanning trees (Cayley), but
    ``q(T)`` sums the probabilities of the ``(N-1)!`` traces (edge orders) that build
    ``T``, which has no closed form. The latent of the bound is therefore the trace
    ``tau``: under the prior, a uniform tree and a uniform order of its edges,
    ``p(tau) = 1 / (N^(N-2) (N-1)!)``. Since the decoder reads only ``T``,
    ``log p(x) >= E_q[log p(x | T)] - KL(q(tau) || p(tau))`` is a valid ELBO of the
    uniform-tree model, and ``KL(q(tau) || p(tau)) = KL(q(T) || p(T)) +
    E_q[KL(q(order | T) || uniform)] >= KL(q(T) || p(T))``: a looser but tractable bound.
    Each Kruskal step is a categorical over its active set ``A_t``, so

    ``KL(q(tau) || p(tau)) = E_q[log(N^(N-2) (N-1)!) - sum_t H(softmax_{A_t}(theta))]``,

    estimated without bias on each sample by
    :meth:`~catlight.latent.structured.StructuredSample.kl`. The
    estimate depends on ``theta`` both through the sampled trace and pathwise, so it
    joins the cost given to the estimator's ``objective``, which differentiates both
    ways (an unbiased gradient of the KL).

    **Evaluation** (:meth:`posterior`): the mode is the maximum spanning tree of
    ``theta`` (Kruskal without noise); the marginal probability of each edge and the
    KL are Monte Carlo estimates over ``num_marginal_samples`` sampled trees.

    Args:
        latent: a StructuredLatent whose structure is a SpanningTree over N nodes.
        num_marginal_samples: trees drawn per simulation by :meth:`posterior`.

    Raises:
        ValueError: if the structure is not a SpanningTree, or ``num_marginal_samples``
            is below 1; in forward, if the scores do not cover the ``N (N - 1)`` pairs.

    Shapes:
        - scores: ``(B, E, 1)``, ``E = N (N - 1)`` ordered pairs
        - tree scores: ``(B, N (N - 1) / 2)``, upper-triangle order (as SpanningTree)
        - z: ``(S, B, E, 2)``
    """

    forward_pairs: Tensor
    backward_pairs: Tensor
    undirected_edges: Tensor

    def __init__(self, latent: StructuredLatent, num_marginal_samples: int = 64) -> None:
        super().__init__()
        if not isinstance(latent.structure, SpanningTree):
            raise ValueError(
                "NRI: a StructuredLatent edge latent needs structure SpanningTree(num_nodes="
                "number of particles) or Arborescence(num_nodes=number of particles), got "
                f"{type(latent.structure).__name__}"
            )
        if num_marginal_samples < 1:
            raise ValueError(
                f"SpanningTreeEdges: num_marginal_samples must be >= 1, got {num_marginal_samples}"
            )
        self.latent = latent
        self.num_types = 2
        self.num_scores = 1
        self.num_marginal_samples = num_marginal_samples
        num_nodes = latent.structure.num_nodes
        self.num_nodes = num_nodes
        senders, receivers = fully_connected_edge_index(num_nodes)
        ordered = torch.zeros(num_nodes, num_nodes, dtype=torch.long)
        ordered[senders, receivers] = torch.arange(senders.numel())
        upper = torch.triu_indices(num_nodes, num_nodes, 1)
        undirected = torch.zeros(num_nodes, num_nodes, dtype=torch.long)
        undirected[upper[0], upper[1]] = torch.arange(upper.shape[1])
        undirected = undirected + undirected.T
        # the ordered pairs (i, j) and (j, i) of each undirected edge i < j, and the
        # undirected edge of each ordered pair
        self.register_buffer("forward_pairs", ordered[upper[0], upper[1]], persistent=False)
        self.register_buffer("backward_pairs", ordered[upper[1], upper[0]], persistent=False)
        self.register_buffer("undirected_edges", undirected[senders, receivers], persistent=False)

    @property
    def structure(self) -> SpanningTree:
        """The latent's SpanningTree."""
        return self.latent.structure

    @property
    def log_num_traces(self) -> float:
        """``log(N^(N-2) (N-1)!)``, the number of Kruskal traces of N particles."""
        return self.structure.log_num_traces

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_nodes={self.num_nodes}, num_marginal_samples={self.num_marginal_samples}"

    def tree_scores(self, scores: Tensor) -> Tensor:
        """The mean of both directions' scores of each undirected edge, in float32.

        Shapes:
            - scores: ``(B, E, 1)``
            - output: ``(B, N (N - 1) / 2)``

        Raises:
            ValueError: unless ``scores`` has shape ``(B, N (N - 1), 1)``.
        """
        num_pairs = self.num_nodes * (self.num_nodes - 1)
        if scores.dim() != 3 or tuple(scores.shape[1:]) != (num_pairs, 1):
            raise ValueError(
                f"SpanningTreeEdges: scores must have shape (B, E, 1) = (B, {num_pairs}, 1) for "
                f"SpanningTree(num_nodes={self.num_nodes}), got {tuple(scores.shape)}; "
                "num_nodes must be the number of particles"
            )
        pair_scores = scores.squeeze(-1).float()
        return (pair_scores[:, self.forward_pairs] + pair_scores[:, self.backward_pairs]) / 2

    def edge_types(self, tree_mask: Tensor) -> Tensor:
        """Types of the ordered pairs: ``(1 - a_ij, a_ij)``, ``a`` the tree's adjacency.

        Shapes:
            - tree_mask: ``(*shape, N (N - 1) / 2)``, 0/1 per undirected edge
            - output: ``(*shape, E, 2)``
        """
        in_tree = tree_mask[..., self.undirected_edges]
        return torch.stack([1 - in_tree, in_tree], -1)

    def forward(self, scores: Tensor) -> EdgeSample:
        """Sample trees with the latent's estimator. See :class:`EdgeLatent`."""
        sample = self.latent(self.tree_scores(scores))
        return _TreeSample(sample, self.edge_types(sample.z))

    @torch.no_grad()
    def posterior(self, scores: Tensor) -> EdgePosterior:
        """Maximum spanning tree, Monte Carlo edge marginals and KL estimate (no gradient)."""
        with torch.autocast(device_type=scores.device.type, enabled=False):
            theta = self.tree_scores(scores)
        return _tree_posterior(self.latent, theta, self.num_marginal_samples, self.edge_types)


def _tree_posterior(
    latent: StructuredLatent,
    theta: Tensor,
    num_samples: int,
    edge_types: Callable[[Tensor], Tensor],
) -> EdgePosterior:
    """The mode, Monte Carlo edge marginals and KL estimate of a tree latent (no gradient).

    Args:
        latent: the StructuredLatent.
        theta: the structure's float32 scores.
        num_samples: trees drawn per simulation for the marginals and the KL.
        edge_types: maps a tree's edge mask (or marginals) to the ordered pairs' types.

    Shapes:
        - theta: ``(B, num_scores)``
        - output: an EdgePosterior with ``(B, E, 2)`` tensors and ``kl`` ``(B,)``
    """
    with torch.autocast(device_type=theta.device.type, enabled=False):
        mode = latent.mode(theta)
        trees = latent.sample(theta, num_samples)
        marginals = trees.z.mean(0)
        kl = trees.kl().mean(0)
    # an edge that no sampled tree holds gets the smallest positive probability
    tiny = torch.finfo(marginals.dtype).tiny
    log_probs = edge_types(marginals).clamp_min(tiny).log()
    return EdgePosterior(log_probs, edge_types(mode), kl)


class ArborescenceEdges(EdgeLatent):
    r"""The interaction graph is one arborescence of the N particles (a directed tree).

    The :class:`~catlight.latent.structured.Arborescence` numbers its directed edges
    as NRI numbers the ordered pairs, so the encoder's score ``s_(i,j)`` is the score of
    the edge ``i -> j`` (``i`` the parent). A sampled arborescence ``A`` gives the pair
    ``(i, j)`` the types ``(1 - a_ij, a_ij)``: with ``skip_first`` messages flow from
    each parent to its children only.

    **ELBO.** As with :class:`SpanningTreeEdges`, the latent of the bound is the trace
    ``tau`` of the algorithm (Chu-Liu/Edmonds), whose KL bounds that of the
    arborescence from above. Arborescences are built by different numbers of traces,
    so the prior is the trace distribution at zero scores (each step uniform over its
    active set; see :meth:`~catlight.latent.structured.Arborescence.trace_kl`), and
    :meth:`~catlight.latent.structured.StructuredSample.kl` estimates the KL without
    bias on each sample; it joins the cost given to the estimator's ``objective``.

    **Evaluation** (:meth:`posterior`): the mode is the arborescence the algorithm
    builds without noise (the minimum arborescence of ``exp(-theta)``); the marginal
    probability of each edge and the KL are Monte Carlo estimates over
    ``num_marginal_samples`` sampled arborescences.

    Args:
        latent: a StructuredLatent whose structure is an Arborescence over N nodes.
        num_marginal_samples: arborescences drawn per simulation by :meth:`posterior`.

    Raises:
        ValueError: if the structure is not an Arborescence, or ``num_marginal_samples``
            is below 1; in forward, if the scores do not cover the ``N (N - 1)`` pairs.

    Shapes:
        - scores: ``(B, E, 1)``, ``E = N (N - 1)`` ordered pairs
        - z: ``(S, B, E, 2)``
    """

    def __init__(self, latent: StructuredLatent, num_marginal_samples: int = 64) -> None:
        super().__init__()
        if not isinstance(latent.structure, Arborescence):
            raise ValueError(
                "ArborescenceEdges: the StructuredLatent needs structure Arborescence("
                f"num_nodes=number of particles), got {type(latent.structure).__name__}"
            )
        if num_marginal_samples < 1:
            raise ValueError(
                f"ArborescenceEdges: num_marginal_samples must be >= 1, got {num_marginal_samples}"
            )
        self.latent = latent
        self.num_types = 2
        self.num_scores = 1
        self.num_marginal_samples = num_marginal_samples
        self.num_nodes = latent.structure.num_nodes

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_nodes={self.num_nodes}, num_marginal_samples={self.num_marginal_samples}"

    def edge_scores(self, scores: Tensor) -> Tensor:
        """The scores of the directed edges, in float32.

        Shapes:
            - scores: ``(B, E, 1)``
            - output: ``(B, E)``

        Raises:
            ValueError: unless ``scores`` has shape ``(B, N (N - 1), 1)``.
        """
        num_pairs = self.num_nodes * (self.num_nodes - 1)
        if scores.dim() != 3 or tuple(scores.shape[1:]) != (num_pairs, 1):
            raise ValueError(
                f"ArborescenceEdges: scores must have shape (B, E, 1) = (B, {num_pairs}, 1) "
                f"for Arborescence(num_nodes={self.num_nodes}), got {tuple(scores.shape)}; "
                "num_nodes must be the number of particles"
            )
        return scores.squeeze(-1).float()

    @staticmethod
    def edge_types(edge_mask: Tensor) -> Tensor:
        """Types of the ordered pairs: ``(1 - a_ij, a_ij)``.

        Shapes:
            - edge_mask: ``(*shape, E)``, 0/1 (or a probability) per directed edge
            - output: ``(*shape, E, 2)``
        """
        return torch.stack([1 - edge_mask, edge_mask], -1)

    def forward(self, scores: Tensor) -> EdgeSample:
        """Sample arborescences with the latent's estimator. See :class:`EdgeLatent`."""
        sample = self.latent(self.edge_scores(scores))
        return _TreeSample(sample, self.edge_types(sample.z))

    @torch.no_grad()
    def posterior(self, scores: Tensor) -> EdgePosterior:
        """Noise-free arborescence, Monte Carlo edge marginals and KL estimate."""
        theta = self.edge_scores(scores)
        return _tree_posterior(self.latent, theta, self.num_marginal_samples, self.edge_types)


class _TreeSample(EdgeSample):
    """A StructuredLatent's trees; the per-sample KL estimate joins the cost."""

    def __init__(self, sample: StructuredSample, z: Tensor) -> None:
        self.sample = sample
        self.z = z

    def negative_elbo(self, nll: Tensor, kl_weight: float) -> tuple[Tensor, Tensor]:
        """``objective(nll + kl_weight KL_s)``. See :class:`EdgeSample`."""
        kl = kl_weight * self.sample.kl()
        return self.sample.objective(nll + kl), kl.mean(0)
