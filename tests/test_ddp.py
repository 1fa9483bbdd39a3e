"""Data parallelism on CPU (gloo): every family trains under 2-process DDP, the
gradient of 2 ranks equals the gradient of their joint batch, ranks draw different
noise, and the REINFORCE baseline is all-reduced.

DDP runs go through ``python -m catlight fit`` in a subprocess: Lightning's ``ddp``
strategy relaunches the command line for the other ranks, which must not be pytest.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.pytorch import Callback, LightningModule, Trainer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from catlight.latent import DiscreteLatent, Reinforce, Softmax
from tests.scale_families import FAMILIES, REPO, Family, fit_args

CPU_PRESET = str(REPO / "configs" / "trainer" / "cpu.yaml")
TWO_PROCESSES = ("--trainer.devices=2", "--trainer.strategy=ddp")


class LatentNoiseProbe(Callback):
    """Saves, on every rank, samples of a latent for all-zero scores at the start of training.

    Args:
        latent: the name of a DiscreteLatent submodule.
        output_dir: where ``rank<r>.pt`` is written.
    """

    def __init__(self, latent: str, output_dir: str) -> None:
        self.latent = latent
        self.output_dir = output_dir

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        layer = pl_module.get_submodule(self.latent)
        samples = layer(torch.zeros(16, 2, layer.num_scores)).z
        torch.save(samples, Path(self.output_dir) / f"rank{trainer.global_rank}.pt")


def run_fit(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m catlight fit *args`` in a subprocess (one intra-op thread per process)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "catlight", "fit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def probe_args(family: Family, output_dir: Path) -> str:
    probe = {
        "class_path": "tests.test_ddp.LatentNoiseProbe",
        "init_args": {"latent": family.latent, "output_dir": str(output_dir)},
    }
    return "--trainer.callbacks+=" + json.dumps(probe)


def ddp_fit(family: Family, tmp_path: Path, *overrides: str) -> Path:
    """A 2-process fit of 2 steps and one validation batch; returns its log dir."""
    run_fit(
        fit_args(
            family,
            tmp_path / "data",
            *TWO_PROCESSES,
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
            f"--trainer.default_root_dir={tmp_path / 'runs'}",
            probe_args(family, tmp_path),
            *overrides,
        ),
        cwd=tmp_path,
    )
    (log_dir,) = (tmp_path / "runs" / "lightning_logs").iterdir()  # rank 0 logs alone
    return log_dir


@pytest.mark.parametrize("name", FAMILIES)
def test_ddp_two_cpu_processes_train_log_and_draw_different_noise(name, tmp_path):
    family = FAMILIES[name]
    log_dir = ddp_fit(family, tmp_path, "--config", CPU_PRESET, *TWO_PROCESSES)

    events = EventAccumulator(str(log_dir))
    events.Reload()
    for metric in family.metrics:
        values = [event.value for event in events.Scalars(metric)]
        assert values and all(math.isfinite(value) for value in values), metric
    assert len(list(log_dir.glob("events.out.tfevents.*"))) == 1

    (checkpoint_path,) = (log_dir / "checkpoints").iterdir()
    checkpoint = torch.load(checkpoint_path, weights_only=True)
    assert checkpoint["global_step"] == 2
    assert len(checkpoint["random_states"]) == 2  # RandomState, a CLI default

    noise = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    assert noise[0].shape == noise[1].shape
    assert not torch.equal(noise[0], noise[1])


def test_ddp_step_over_two_ranks_equals_one_step_on_their_joint_batch(run_cli, tmp_path):
    family = FAMILIES["vae"]
    exact = (
        f"{family.latent_arg}.init_args.estimator=Exact",
        "--trainer.callbacks=[]",
        "--trainer.max_steps=1",
        "--trainer.limit_val_batches=0",
    )
    run_fit(
        fit_args(
            family,
            tmp_path / "data",
            *exact,
            *TWO_PROCESSES,
            f"--trainer.default_root_dir={tmp_path / 'ddp'}",
        ),
        cwd=tmp_path,
    )
    (checkpoint_path,) = (tmp_path / "ddp").rglob("*.ckpt")
    ddp_state = torch.load(checkpoint_path, weights_only=True)["state_dict"]

    def one_process_step(batch_size: int) -> dict[str, torch.Tensor]:
        batch = f"--data.init_args.batch_size={batch_size}"
        return run_cli(
            "fit", *fit_args(family, tmp_path / "data", *exact, batch)
        ).model.state_dict()

    # each rank takes every other example of the shared permutation: ranks 0 and 1 with
    # batches of 4 see the first 8 examples that one process with batches of 8 sees
    joint = one_process_step(8)
    assert ddp_state.keys() == joint.keys()
    for name, value in joint.items():
        torch.testing.assert_close(ddp_state[name], value, msg=name)
    rank_zero_alone = one_process_step(4)
    assert not torch.equal(rank_zero_alone["encoder.0.weight"], joint["encoder.0.weight"])


# -- the REINFORCE moving-average baseline under torch.distributed -------------------------


def mean_costs(rank: int, steps: int) -> list[float]:
    """The mean cost that rank ``rank`` sees at each step (different on every rank)."""
    return [float(10 * rank + step + 1) for step in range(steps)]


def baseline_worker(rank: int, world_size: int, init_file: str, output_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    torch.manual_seed(rank)
    layer = DiscreteLatent(3, Softmax(), Reinforce(baseline="moving_average", decay=0.5))
    values = []
    for cost in mean_costs(rank, steps=3):
        scores = torch.randn(4, 2, 3, requires_grad=True)
        out = layer(scores)
        out.objective(torch.full((1, 4), cost)).sum().backward()
        values.append(layer.estimator.baseline_value.item())
    torch.save(values, Path(output_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_reinforce_baseline_is_the_moving_average_of_the_mean_over_ranks(tmp_path):
    world_size, decay = 2, 0.5
    mp.spawn(
        baseline_worker,
        args=(world_size, str(tmp_path / "init"), str(tmp_path)),
        nprocs=world_size,
    )
    per_rank = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(world_size)]
    assert per_rank[0] == per_rank[1]

    expected, baseline = [], 0.0
    for costs in zip(*(mean_costs(rank, 3) for rank in range(world_size)), strict=True):
        baseline = decay * baseline + (1 - decay) * sum(costs) / world_size
        expected.append(baseline)
    assert per_rank[0] == pytest.approx(expected)  # [3.0, 5.0, 6.5]
