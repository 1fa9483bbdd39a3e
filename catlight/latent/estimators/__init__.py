"""Gradient estimators for categorical variables, one family per module."""

from catlight.latent.estimators.base import Estimator, MultiSampleEstimator, sample_categories
from catlight.latent.estimators.carms import CARMS
from catlight.latent.estimators.disarm_tree import DisARMTree
from catlight.latent.estimators.exact import Exact
from catlight.latent.estimators.gapped import GappedStraightThrough
from catlight.latent.estimators.gumbel_rao import GumbelRao
from catlight.latent.estimators.indecater import IndeCateR
from catlight.latent.estimators.registry import ESTIMATORS, EstimatorEntry, estimator_entry
from catlight.latent.estimators.relaxed import (
    GumbelSoftmax,
    ReinMax,
    RelaxedEstimator,
    StraightThrough,
    StraightThroughGumbelSoftmax,
)
from catlight.latent.estimators.score import LeaveOneOut, Reinforce
from catlight.latent.estimators.unordered_set import UnorderedSet

__all__ = [
    "CARMS",
    "ESTIMATORS",
    "DisARMTree",
    "Estimator",
    "EstimatorEntry",
    "Exact",
    "GappedStraightThrough",
    "GumbelRao",
    "GumbelSoftmax",
    "IndeCateR",
    "LeaveOneOut",
    "MultiSampleEstimator",
    "ReinMax",
    "Reinforce",
    "RelaxedEstimator",
    "StraightThrough",
    "StraightThroughGumbelSoftmax",
    "UnorderedSet",
    "estimator_entry",
    "sample_categories",
]
