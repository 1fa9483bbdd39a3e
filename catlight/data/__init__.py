"""Data modules and utilities shared by the task families (images, tensor loading, files)."""

from catlight.data.checks import BadDataFileError
from catlight.data.download import DataFileError, ensure_file
from catlight.data.idx import read_idx
from catlight.data.images import (
    BinarizedMNISTDataModule,
    FashionMNISTDataModule,
    ImageDataModule,
    MNISTDataModule,
)
from catlight.data.tensor_data_module import TensorDataModule
from catlight.data.tensor_loader import TensorLoader

__all__ = [
    "BadDataFileError",
    "BinarizedMNISTDataModule",
    "DataFileError",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "MNISTDataModule",
    "TensorDataModule",
    "TensorLoader",
    "ensure_file",
    "read_idx",
]
