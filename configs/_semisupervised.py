"""Semi-supervised M2 configs: the estimators x parameterizations on MNIST and Fashion-MNIST.

``configs/semisupervised/<data set>/<estimator>_<parameterization>.yaml``; ``exact``
is the classic marginalisation over the 10 labels, the others sample the label
(Jang et al. 2017, section 4.3). All share Kingma et al.'s MLP networks (one hidden
layer of 500, z of dimension 50), 100 labels, dynamic binarization and Adam.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _common import CONFIGS, PARAMETERIZATIONS, latent

from catlight.latent import ESTIMATORS

# every estimator of catlight.latent.ESTIMATORS with its registry settings (the
# Gumbel-Softmax annealing then updates every epoch of 500 steps), but these
NOT_GENERATED = {"st"}
DATA_MODULES = {
    "mnist": "SemiSupervisedMNISTDataModule",
    "fashion_mnist": "SemiSupervisedFashionMNISTDataModule",
}
NUM_CLASSES = 10
MAX_EPOCHS = 100


def semisupervised_config(data: str, parameterization: str, estimator: str) -> dict[str, Any]:
    """A SemiSupervisedVAE config: 100 labels, batches of 100 unlabeled + 100 labeled."""
    callbacks: list[dict[str, Any]] = [
        {"class_path": "ModelCheckpoint", "init_args": {"monitor": "val/accuracy", "mode": "max"}},
    ]
    return {
        "seed_everything": 0,
        "trainer": {"max_epochs": MAX_EPOCHS, "callbacks": callbacks},
        "model": {
            "class_path": "SemiSupervisedVAE",
            "init_args": {
                "latent_size": 50,
                "hidden_size": 500,
                "architecture": "mlp",
                "learning_rate": 1e-3,
                "latent": latent(NUM_CLASSES, PARAMETERIZATIONS[parameterization], estimator),
            },
        },
        "data": {
            "class_path": DATA_MODULES[data],
            "init_args": {
                "data_dir": "data",
                "num_labeled": 100,
                "batch_size": 100,
                "binarization": "dynamic",
            },
        },
    }


def configs() -> dict[Path, dict[str, Any]]:
    """Every semi-supervised config, by path."""
    return {
        CONFIGS / "semisupervised" / data / f"{estimator}_{parameterization}.yaml": (
            semisupervised_config(data, parameterization, estimator)
        )
        for data in DATA_MODULES
        for estimator in ESTIMATORS
        if estimator not in NOT_GENERATED
        for parameterization in PARAMETERIZATIONS
    }
