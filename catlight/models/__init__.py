"""LightningModules built on the DiscreteLatent layer."""

from catlight.models.nri import NRI
from catlight.models.sbn import StructuredOutputPrediction
from catlight.models.semisupervised import SemiSupervisedVAE
from catlight.models.vae import CategoricalVAE

__all__ = [
    "NRI",
    "CategoricalVAE",
    "SemiSupervisedVAE",
    "StructuredOutputPrediction",
]
