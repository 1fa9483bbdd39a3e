"""Recursive Gumbel-Max structures: subsets, permutations, trees, arborescences (torch).

A structure is the output of a recursive argmin over exponential perturbations
``E_i ~ Exp(rate = exp(theta_i))`` of the scores; see :mod:`.base` for the sign
convention, the trace's log-probability and the conditional ``E | T``.
"""

from catlight.latent.structured.arborescence import Arborescence
from catlight.latent.structured.base import Structure, Trace, trace_kl_to_uniform
from catlight.latent.structured.binary_tree import BinaryTree
from catlight.latent.structured.critic import MLPCritic
from catlight.latent.structured.estimators import (
    ExponentialReinforce,
    Relax,
    StructuredEstimator,
    TraceReinforce,
)
from catlight.latent.structured.layer import StructuredLatent
from catlight.latent.structured.permutation import Permutation
from catlight.latent.structured.sample import StructuredSample
from catlight.latent.structured.spanning_tree import SpanningTree
from catlight.latent.structured.top_k import TopK

__all__ = [
    "Arborescence",
    "BinaryTree",
    "ExponentialReinforce",
    "MLPCritic",
    "Permutation",
    "Relax",
    "SpanningTree",
    "Structure",
    "StructuredEstimator",
    "StructuredLatent",
    "StructuredSample",
    "TopK",
    "Trace",
    "TraceReinforce",
    "trace_kl_to_uniform",
]
