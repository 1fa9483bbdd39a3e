"""The DiscreteLatent layer: parameterizations and gradient estimators (plain torch)."""

from catlight.latent.estimators import (
    CARMS,
    ESTIMATORS,
    Estimator,
    EstimatorEntry,
    Exact,
    GumbelSoftmax,
    LeaveOneOut,
    MultiSampleEstimator,
    Reinforce,
    ReinMax,
    RelaxedEstimator,
    StraightThrough,
    StraightThroughGumbelSoftmax,
    estimator_entry,
)
from catlight.latent.layer import DiscreteLatent
from catlight.latent.parameterizations import Catnat, Parameterization, Softmax
from catlight.latent.sample import LatentSample
from catlight.latent.structured import StructuredLatent
from catlight.latent.validation import set_default_validate_args

__all__ = [
    "CARMS",
    "ESTIMATORS",
    "Catnat",
    "DiscreteLatent",
    "Estimator",
    "EstimatorEntry",
    "Exact",
    "GumbelSoftmax",
    "LatentSample",
    "LeaveOneOut",
    "MultiSampleEstimator",
    "Parameterization",
    "ReinMax",
    "Reinforce",
    "RelaxedEstimator",
    "Softmax",
    "StraightThrough",
    "StraightThroughGumbelSoftmax",
    "StructuredLatent",
    "estimator_entry",
    "set_default_validate_args",
]
