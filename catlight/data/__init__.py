"""LightningDataModules and the data utilities behind them."""

from catlight.data.checks import BadDataFileError
from catlight.data.download import DataFileError, ensure_file
from catlight.data.idx import read_idx
from catlight.data.images import (
    BinarizedMNISTDataModule,
    FashionMNISTDataModule,
    ImageDataModule,
    MNISTDataModule,
)
from catlight.data.particles import ParticlesDataModule, fully_connected_edge_index
from catlight.data.rl import Agent, Episodes, GymnasiumDataModule, Rollout, RolloutCollector
from catlight.data.semisupervised import (
    SemiSupervisedFashionMNISTDataModule,
    SemiSupervisedLoader,
    SemiSupervisedMNISTDataModule,
    balanced_subset,
)
from catlight.data.simulation import ParticleSystem, random_spanning_trees
from catlight.data.tensor_data_module import TensorDataModule
from catlight.data.tensor_loader import TensorLoader

__all__ = [
    "Agent",
    "BadDataFileError",
    "BinarizedMNISTDataModule",
    "DataFileError",
    "Episodes",
    "FashionMNISTDataModule",
    "GymnasiumDataModule",
    "ImageDataModule",
    "MNISTDataModule",
    "ParticleSystem",
    "ParticlesDataModule",
    "Rollout",
    "RolloutCollector",
    "SemiSupervisedFashionMNISTDataModule",
    "SemiSupervisedLoader",
    "SemiSupervisedMNISTDataModule",
    "TensorDataModule",
    "TensorLoader",
    "balanced_subset",
    "ensure_file",
    "fully_connected_edge_index",
    "random_spanning_trees",
    "read_idx",
]
