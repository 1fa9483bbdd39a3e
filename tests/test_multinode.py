"""Two nodes under torchrun, rehearsed on localhost: the VAE prepares its data once per
node, logs and checkpoints once (on node 0), and trains exactly as one node of two
processes does. ``benchmarks/multinode.py`` runs every family, and SLURM's variables.
"""

from __future__ import annotations

import pytest
import torch

from tests.scale_families import FAMILIES
from tests.two_nodes import rehearse


# ~16 s on an idle machine, but on a machine whose cores are busy the two torchrun
# agents were seen not to exit within 300 s after training: run with --runslow
@pytest.mark.slow
def test_torchrun_two_nodes_prepare_per_node_log_once_and_train_as_one_node(tmp_path):
    family = FAMILIES["vae"]
    run = rehearse(family, "torchrun", tmp_path / "torchrun")
    reference = rehearse(family, "one_node", tmp_path / "one_node")

    node0, node1 = run.nodes
    assert run.prepare_calls(node0) == ["0 0 0 TorchElasticEnvironment"]
    assert run.prepare_calls(node1) == ["1 0 1 TorchElasticEnvironment"]
    (one_node,) = reference.nodes
    assert reference.prepare_calls(one_node) == ["0 0 0 LightningEnvironment"]

    assert len(run.event_files(node0)) == 1
    assert {path.name for path in run.checkpoints(node0)} == {"last.ckpt", "epoch=0-step=2.ckpt"}
    assert not list((node1 / "runs").rglob("*"))  # node 1 writes no log, no checkpoint

    assert run.last_scalars() == reference.last_scalars()
    state, expected = run.final_state(), reference.final_state()
    assert state.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(state[name], value), name
