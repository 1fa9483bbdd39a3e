"""NRI configs: the paper's three data sets, and estimator variants on springs-5.

``configs/nri/<data set>.yaml`` are the published settings of Kipf et al. (2018):
MLP encoder and decoder of width 256, two edge types through Gumbel-Softmax
(tau 0.5, softmax), uniform prior, teacher forcing every 10 steps, output variance
5e-5, Adam 5e-4 halved every 200 epochs, batch 128, 500 epochs, 50k/10k/10k
simulations. ``configs/nri/springs5_catnat.yaml`` swaps the parameterization;
``configs/nri/estimators/springs5_<estimator>.yaml`` swap the estimator. Exact
enumeration needs ``K^E`` decoder passes (2^20 for 5 particles), so its variant
uses 3 particles (2^6 = 64). Checkpoints keep the best validation NLL, which needs
no ground-truth graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _common import CONFIGS, PARAMETERIZATIONS, latent

# data set name -> (system, particles)
DATA_SETS = {"springs5": ("springs", 5), "charged5": ("charged", 5), "springs10": ("springs", 10)}
# estimator name -> (class_path, init_args)
ESTIMATORS: dict[str, tuple[str, dict[str, Any]]] = {
    "gs": ("GumbelSoftmax", {"tau": 0.5}),
    "st_gs": ("StraightThroughGumbelSoftmax", {"tau": 0.5}),
    "reinmax": ("ReinMax", {"tau": 1.3}),
    "loo": ("LeaveOneOut", {"num_samples": 4}),
    "carms": ("CARMS", {"num_samples": 4}),
    "exact": ("Exact", {}),
}
EXACT_PARTICLES = 3
NUM_EDGE_TYPES = 2
TRAIN_STEPS = 49


def nri_config(
    system: str, num_particles: int, estimator: str = "gs", parameterization: str = "softmax"
) -> dict[str, Any]:
    """An NRI config with the paper's settings and the given latent."""
    class_path, init_args = ESTIMATORS[estimator]
    return {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": 500,
            "callbacks": [
                {
                    "class_path": "ModelCheckpoint",
                    "init_args": {"monitor": "val/nll", "mode": "min"},
                }
            ],
        },
        "model": {
            "class_path": "NRI",
            "init_args": {
                "num_timesteps": TRAIN_STEPS,
                "encoder": "mlp",
                "decoder": "mlp",
                "encoder_hidden_size": 256,
                "decoder_hidden_size": 256,
                "skip_first": False,
                "prior": "uniform",
                "prediction_steps": 10,
                "variance": 5e-5,
                "learning_rate": 5e-4,
                "lr_decay_epochs": 200,
                "lr_decay_gamma": 0.5,
                "latent": latent(
                    NUM_EDGE_TYPES, PARAMETERIZATIONS[parameterization], class_path, init_args
                ),
            },
        },
        "data": {
            "class_path": "ParticlesDataModule",
            "init_args": {
                "data_dir": "data/particles",
                "system": system,
                "num_particles": num_particles,
                "num_train": 50000,
                "num_valid": 10000,
                "num_test": 10000,
                "train_steps": TRAIN_STEPS,
                "test_steps": 99,
                "batch_size": 128,
            },
        },
    }


def configs() -> dict[Path, dict[str, Any]]:
    """Every NRI config, by path."""
    folder = CONFIGS / "nri"
    tables = {folder / f"{name}.yaml": nri_config(*setting) for name, setting in DATA_SETS.items()}
    tables[folder / "springs5_catnat.yaml"] = nri_config("springs", 5, "gs", "catnat")
    for estimator in ESTIMATORS:
        if estimator == "gs":
            continue
        if estimator == "exact":
            name, particles = f"springs{EXACT_PARTICLES}_exact", EXACT_PARTICLES
        else:
            name, particles = f"springs5_{estimator}", 5
        tables[folder / "estimators" / f"{name}.yaml"] = nri_config("springs", particles, estimator)
    return tables
