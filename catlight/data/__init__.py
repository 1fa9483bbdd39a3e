"""LightningDataModules and the data utilities behind them."""

from catlight.data.download import DataFileError, ensure_file
from catlight.data.idx import read_idx
from catlight.data.images import (
    BinarizedMNISTDataModule,
    FashionMNISTDataModule,
    ImageDataModule,
    MNISTDataModule,
)
from catlight.data.particles import ParticlesDataModule, fully_connected_edge_index
from catlight.data.semisupervised import (
    SemiSupervisedFashionMNISTDataModule,
    SemiSupervisedLoader,
    SemiSupervisedMNISTDataModule,
    balanced_subset,
)
from catlight.data.simulation import ParticleSystem, random_spanning_trees
from catlight.data.tensor_loader import TensorLoader

__all__ = [
    "BinarizedMNISTDataModule",
    "DataFileError",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "MNISTDataModule",
    "ParticleSystem",
    "ParticlesDataModule",
    "SemiSupervisedFashionMNISTDataModule",
    "SemiSupervisedLoader",
    "SemiSupervisedMNISTDataModule",
    "TensorLoader",
    "balanced_subset",
    "ensure_file",
    "fully_connected_edge_index",
    "random_spanning_trees",
    "read_idx",
]
