"""NRI configs: the paper's data sets, and estimator variants on springs-5.

``configs/nri/<data set>.yaml`` are the published settings of Kipf et al. (2018):
MLP encoder (CNN for the Kuramoto oscillators) and MLP decoder of width 256, two
edge types through Gumbel-Softmax (tau 0.5, softmax), uniform prior, teacher forcing
every 10 steps, output variance 5e-5, Adam 5e-4 halved every 200 epochs, batch 128,
500 epochs, 50k/10k/10k simulations. ``configs/nri/springs5_catnat.yaml`` swaps the
parameterization; ``configs/nri/estimators/springs5_<estimator>.yaml`` swap the
estimator. Exact enumeration needs ``K^E`` decoder passes (2^20 for 5 particles), so
its variant uses 3 particles (2^6 = 64). Checkpoints keep the best validation NLL,
which needs no ground-truth graph.

``configs/nri/kuramoto5_skip_first.yaml`` sets ``skip_first`` (type 0: no coupling),
as the authors' code of Löwe et al. (2022) does for Kuramoto, and so logs the AUROC
of edge existence.

``configs/nri/tree/springs5_tree_{independent,spanning_tree}.yaml`` compare two edge
latents on springs whose interaction graph is a uniformly random spanning tree, with
the same data, model, optimiser and epochs: independent edge types (Gumbel-Softmax, as
above) against one spanning tree per simulation (``StructuredLatent`` over
``SpanningTree``, T-REINFORCE with a leave-one-out baseline over 4 trees). Both use
``skip_first`` (type 0: no interaction), which the tree's types mean.
``configs/nri/directed_tree/springs5_directed_tree_{independent,arborescence}.yaml`` do
the same on springs along a random arborescence rooted at particle 0 (each spring pulls
the child only), with one arborescence per simulation (``StructuredLatent`` over
``Arborescence``) in place of the spanning tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _common import CONFIGS, PARAMETERIZATIONS, latent

from catlight.latent import ESTIMATORS

# data set name -> (system, particles)
DATA_SETS = {
    "springs5": ("springs", 5),
    "charged5": ("charged", 5),
    "springs10": ("springs", 10),
    "kuramoto5": ("kuramoto", 5),
}
ENCODERS = {"kuramoto": "cnn"}  # the rest: "mlp"
# an estimator variant for every estimator of catlight.latent.ESTIMATORS but these (gs
# is the data set configs' own), with the registry's settings but a fixed temperature
# of 0.5 (the paper's, for GS) for the Gumbel-Softmax pair
# IndeCateR needs N * K = 40 decoder passes per sample on 5 particles' 20 edges: not here
NOT_GENERATED = {"gs", "st", "reinforce", "indecater"}
SETTINGS: dict[str, dict[str, Any]] = {"gs": {"tau": 0.5}, "st_gs": {"tau": 0.5}}
EXACT_PARTICLES = 3
NUM_EDGE_TYPES = 2
TRAIN_STEPS = 49
TREE_PARTICLES = 5
TREE_SAMPLES = 4  # trees per simulation for T-REINFORCE's leave-one-out baseline


def tree_latent(num_particles: int, structure: str = "SpanningTree") -> dict[str, Any]:
    """The ``latent`` block of one tree per simulation, trained by T-REINFORCE+.

    ``structure`` is ``"SpanningTree"`` or ``"Arborescence"``.
    """
    return {
        "class_path": "StructuredLatent",
        "init_args": {
            "structure": {"class_path": structure, "init_args": {"num_nodes": num_particles}},
            "estimator": {
                "class_path": "TraceReinforce",
                "init_args": {"num_samples": TREE_SAMPLES, "baseline": "leave_one_out"},
            },
        },
    }


def nri_config(
    system: str, num_particles: int, estimator: str = "gs", parameterization: str = "softmax"
) -> dict[str, Any]:
    """An NRI config with the paper's settings and the given latent."""
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
                "encoder": ENCODERS.get(system, "mlp"),
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
                    NUM_EDGE_TYPES,
                    PARAMETERIZATIONS[parameterization],
                    estimator,
                    SETTINGS.get(estimator),
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
    kuramoto = nri_config("kuramoto", 5)
    kuramoto["model"]["init_args"]["skip_first"] = True
    tables[folder / "kuramoto5_skip_first.yaml"] = kuramoto
    for estimator in ESTIMATORS:
        if estimator in NOT_GENERATED:
            continue
        if estimator == "exact":
            name, particles = f"springs{EXACT_PARTICLES}_exact", EXACT_PARTICLES
        else:
            name, particles = f"springs5_{estimator}", 5
        tables[folder / "estimators" / f"{name}.yaml"] = nri_config("springs", particles, estimator)
    tables.update(tree_comparison(folder / "tree", "tree", "SpanningTree"))
    tables.update(tree_comparison(folder / "directed_tree", "directed_tree", "Arborescence"))
    return tables


def tree_comparison(folder: Path, graph: str, structure: str) -> dict[Path, dict[str, Any]]:
    """Independent edges against one tree per simulation, on springs along ``graph``.

    ``structure`` is ``"SpanningTree"`` (``graph="tree"``) or ``"Arborescence"``
    (``graph="directed_tree"``); the configs differ only in the latent.
    """
    tree_name = {"SpanningTree": "spanning_tree", "Arborescence": "arborescence"}[structure]
    tables = {}
    for name in ("independent", tree_name):
        config = nri_config("springs", TREE_PARTICLES)
        config["data"]["init_args"]["graph"] = graph
        config["model"]["init_args"]["skip_first"] = True
        if name == tree_name:
            config["model"]["init_args"]["latent"] = tree_latent(TREE_PARTICLES, structure)
        tables[folder / f"springs{TREE_PARTICLES}_{graph}_{name}.yaml"] = config
    return tables
