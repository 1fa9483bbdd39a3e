"""LightningModules built on the DiscreteLatent layer."""

from catlight.models.actor_critic import ActorCritic
from catlight.models.latent_model import LatentModelMixin
from catlight.models.nri import NRI
from catlight.models.sbn import StructuredOutputPrediction
from catlight.models.semisupervised import SemiSupervisedVAE
from catlight.models.vae import CategoricalVAE

__all__ = [
    "NRI",
    "ActorCritic",
    "CategoricalVAE",
    "LatentModelMixin",
    "SemiSupervisedVAE",
    "StructuredOutputPrediction",
]
