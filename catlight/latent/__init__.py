"""The DiscreteLatent layer: parameterizations and gradient estimators (plain torch)."""

from catlight.latent.estimators import (
    CARMS,
    ESTIMATORS,
    DisARMTree,
    Estimator,
    EstimatorEntry,
    Exact,
    GappedStraightThrough,
    GumbelRao,
    GumbelSoftmax,
    IndeCateR,
    LeaveOneOut,
    MultiSampleEstimator,
    Reinforce,
    ReinMax,
    RelaxedEstimator,
    StraightThrough,
    StraightThroughGumbelSoftmax,
    UnorderedSet,
    estimator_entry,
    sample_categories,
)
from catlight.latent.layer import DiscreteLatent
from catlight.latent.parameterizations import Catnat, Parameterization, Softmax
from catlight.latent.protocol import Latent, Sample, leave_one_out_weights, score_function_surrogate
from catlight.latent.sample import LatentSample, categorical_entropy, categorical_kl
from catlight.latent.structured import StructuredLatent
from catlight.latent.validation import set_default_validate_args

__all__ = [
    "CARMS",
    "ESTIMATORS",
    "Catnat",
    "DisARMTree",
    "DiscreteLatent",
    "Estimator",
    "EstimatorEntry",
    "Exact",
    "GappedStraightThrough",
    "GumbelRao",
    "GumbelSoftmax",
    "IndeCateR",
    "Latent",
    "LatentSample",
    "LeaveOneOut",
    "MultiSampleEstimator",
    "Parameterization",
    "ReinMax",
    "Reinforce",
    "RelaxedEstimator",
    "Sample",
    "Softmax",
    "StraightThrough",
    "StraightThroughGumbelSoftmax",
    "StructuredLatent",
    "UnorderedSet",
    "categorical_entropy",
    "categorical_kl",
    "estimator_entry",
    "leave_one_out_weights",
    "sample_categories",
    "score_function_surrogate",
    "set_default_validate_args",
]
