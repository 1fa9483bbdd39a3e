"""Semi-supervised classification with the M2 model (Kingma et al. 2014).

Read in the order data flows: :mod:`.data` (a few labeled and many unlabeled images
per batch), :mod:`.networks` (the image encoders and decoders), :mod:`.m2` (the model,
whose class label is a :class:`~catlight.latent.DiscreteLatent`).
"""

from catlight.tasks.semisupervised.data import (
    SemiSupervisedFashionMNISTDataModule,
    SemiSupervisedLoader,
    SemiSupervisedMNISTDataModule,
    balanced_subset,
)
from catlight.tasks.semisupervised.m2 import SemiSupervisedVAE, confusion_image

__all__ = [
    "SemiSupervisedFashionMNISTDataModule",
    "SemiSupervisedLoader",
    "SemiSupervisedMNISTDataModule",
    "SemiSupervisedVAE",
    "balanced_subset",
    "confusion_image",
]
