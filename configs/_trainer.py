"""Trainer presets: partial configs holding only a ``trainer:`` block.

Stack one after a model config; its keys override the model config's::

    catlight fit --config configs/vae/categorical/gs_softmax.yaml --config configs/trainer/ddp.yaml

The DDP presets use every GPU of the node
(``devices: -1``); ``--trainer.num_nodes`` scales out (see docker/README.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _common import CONFIGS

PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"accelerator": "cpu", "devices": 1, "precision": "32-true"},
    "gpu": {"accelerator": "gpu", "devices": 1, "precision": "32-true"},
    "ddp": {"accelerator": "gpu", "devices": -1, "strategy": "ddp", "precision": "32-true"},
    "ddp_bf16": {
        "accelerator": "gpu",
        "devices": -1,
        "strategy": "ddp",
        "precision": "bf16-mixed",
    },
}


def configs() -> dict[Path, dict[str, Any]]:
    """The presets, by path: ``configs/trainer/<name>.yaml``."""
    return {
        CONFIGS / "trainer" / f"{name}.yaml": {"trainer": settings}
        for name, settings in PRESETS.items()
    }
