"""The task families: one package each, every LightningModule on one base task.

- :mod:`catlight.tasks.vae`: categorical VAE and structured output prediction
- :mod:`catlight.tasks.semisupervised`: M2 semi-supervised classification
- :mod:`catlight.tasks.nri`: neural relational inference
- :mod:`catlight.tasks.rl`: actor-critic reinforcement learning

Each family's LightningModule and data modules are exported here, so a config names
them by class (``class_path: CategoricalVAE``).
"""

from catlight.tasks.base import BaseTask
from catlight.tasks.nri import NRI, ParticlesDataModule
from catlight.tasks.rl import ActorCritic, GymnasiumDataModule
from catlight.tasks.semisupervised import (
    SemiSupervisedFashionMNISTDataModule,
    SemiSupervisedMNISTDataModule,
    SemiSupervisedVAE,
)
from catlight.tasks.vae import CategoricalVAE, StructuredOutputPrediction

__all__ = [
    "NRI",
    "ActorCritic",
    "BaseTask",
    "CategoricalVAE",
    "GymnasiumDataModule",
    "ParticlesDataModule",
    "SemiSupervisedFashionMNISTDataModule",
    "SemiSupervisedMNISTDataModule",
    "SemiSupervisedVAE",
    "StructuredOutputPrediction",
]
