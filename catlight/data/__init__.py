"""LightningDataModules and the data utilities behind them."""

from catlight.data.download import DataFileError, ensure_file
from catlight.data.idx import read_idx
from catlight.data.images import (
    BinarizedMNISTDataModule,
    FashionMNISTDataModule,
    ImageDataModule,
    MNISTDataModule,
)
from catlight.data.tensor_loader import TensorLoader

__all__ = [
    "BinarizedMNISTDataModule",
    "DataFileError",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "MNISTDataModule",
    "TensorLoader",
    "ensure_file",
    "read_idx",
]
