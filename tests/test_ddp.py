"""Data parallelism on CPU (gloo): every family trains under 2-process DDP on
different examples on each rank (for RL, in environments seeded per rank), with
different noise, ending with the same weights on every rank, logging from rank 0
metrics reduced across ranks; the gradient of 2 ranks equals the gradient of their
joint batch, and the REINFORCE baseline is all-reduced.

DDP runs go through ``python -m catlight fit`` in a subprocess: Lightning's ``ddp``
strategy relaunches the command line for the other ranks, which must not be pytest.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
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


class RankProbe(Callback):
    """Saves, on every rank, what the rank trained on, the noise it draws and its weights.

    ``rank<r>.pt`` in ``output_dir`` holds ``noise``, the family's ``draw_noise`` at
    the start of training (e.g. samples of its latent for all-zero scores),
    ``examples``, the family's ``example_rows`` of every training batch of the rank,
    and ``state``, the model's state dict at the end of training.

    Args:
        family: a key of ``FAMILIES``.
        output_dir: where ``rank<r>.pt`` is written.
    """

    def __init__(self, family: str, output_dir: str) -> None:
        self.family = FAMILIES[family]
        self.output_dir = output_dir
        self.noise: torch.Tensor | None = None
        self.examples: list[tuple[torch.Tensor, ...]] = []

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.noise = self.family.draw_noise(pl_module)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: object, batch_idx: int
    ) -> None:
        streams = self.family.example_rows(batch)
        self.examples.append(tuple(rows.detach().cpu() for rows in streams))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        state = {name: value.detach().cpu() for name, value in pl_module.state_dict().items()}
        record = {"noise": self.noise, "examples": self.examples, "state": state}
        torch.save(record, Path(self.output_dir) / f"rank{trainer.global_rank}.pt")


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


def probe_args(name: str, output_dir: Path) -> str:
    probe = {
        "class_path": "tests.test_ddp.RankProbe",
        "init_args": {"family": name, "output_dir": str(output_dir)},
    }
    return "--trainer.callbacks+=" + json.dumps(probe)


@dataclass(frozen=True)
class DDPRun:
    """A finished 2-process fit of 2 steps and a validation epoch of one family.

    Attributes:
        family: the family.
        folder: holds ``data/``, ``runs/`` and the probe's ``rank<r>.pt``.
        log_dir: the one TensorBoard log folder (rank 0's).
    """

    family: Family
    folder: Path
    log_dir: Path

    def rank_records(self) -> list[dict]:
        """What :class:`RankProbe` saved on ranks 0 and 1."""
        return [torch.load(self.folder / f"rank{rank}.pt") for rank in range(2)]

    def scalars(self, metric: str) -> list[float]:
        """The logged values of a metric."""
        events = EventAccumulator(str(self.log_dir))
        events.Reload()
        return [event.value for event in events.Scalars(metric)]


@pytest.fixture(scope="module", params=list(FAMILIES))
def ddp_run(request, tmp_path_factory) -> DDPRun:
    """Each family's 2-process fit with the CPU preset, run once for the tests below.

    Each rank trains 2 batches and validates one: half of the 16 validation examples.
    """
    name = request.param
    family = FAMILIES[name]
    folder = tmp_path_factory.mktemp(f"ddp_{name}")
    run_fit(
        fit_args(
            family,
            folder / "data",
            *family.ddp_overrides,
            "--config",
            CPU_PRESET,
            *TWO_PROCESSES,
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
            f"--trainer.default_root_dir={folder / 'runs'}",
            probe_args(name, folder),
        ),
        cwd=folder,
    )
    (log_dir,) = (folder / "runs" / "lightning_logs").iterdir()  # rank 0 logs alone
    return DDPRun(family, folder, log_dir)


def test_ddp_fit_logs_finite_metrics_and_checkpoints_from_rank_zero(ddp_run):
    for metric in ddp_run.family.metrics:
        values = ddp_run.scalars(metric)
        assert values and all(math.isfinite(value) for value in values), metric
    assert len(list(ddp_run.log_dir.glob("events.out.tfevents.*"))) == 1

    (checkpoint_path,) = (ddp_run.log_dir / "checkpoints").iterdir()
    checkpoint = torch.load(checkpoint_path, weights_only=True)
    assert checkpoint["global_step"] == 2 * ddp_run.family.optimizer_steps_per_batch
    assert len(checkpoint["random_states"]) == 2  # RandomState, a CLI default


def test_ddp_ranks_draw_different_noise(ddp_run):
    noise = [record["noise"] for record in ddp_run.rank_records()]
    assert noise[0].shape == noise[1].shape
    assert not torch.equal(noise[0], noise[1])


def example_keys(examples: list[tuple[torch.Tensor, ...]], stream: int) -> list[bytes]:
    """One key per example of a stream, over all the batches of a rank."""
    return [row.numpy().tobytes() for batch in examples for row in batch[stream]]


def test_ddp_ranks_train_on_different_examples_of_data_prepared_once(ddp_run):
    # every stream of examples (images; unlabeled and labeled images; trajectories)
    # is sharded: the ranks train on different examples, none twice
    examples = [record["examples"] for record in ddp_run.rank_records()]
    assert len(examples[0]) == len(examples[1]) == 2
    assert examples[0][0]
    for stream in range(len(examples[0][0])):
        keys = [example_keys(rank, stream) for rank in examples]
        assert len(set(keys[0] + keys[1])) == len(keys[0]) + len(keys[1]), stream
    if ddp_run.family.check_ddp_data is not None:
        ddp_run.family.check_ddp_data(ddp_run.folder / "data")


def test_ddp_ranks_start_from_their_own_first_examples(ddp_run):
    """Where a rank's first examples are known (environments reset from per-rank seeds)."""
    family = ddp_run.family
    if family.first_rows is None:
        pytest.skip("the family's first examples depend on a shared shuffle")
    for rank, record in enumerate(ddp_run.rank_records()):
        expected = family.first_rows(rank)
        first_batch = record["examples"][0]
        for stream, rows in zip(first_batch, expected, strict=True):
            assert torch.equal(stream[: len(rows)], rows), rank


def test_ddp_ranks_end_with_the_same_parameters_and_buffers(ddp_run):
    """Gradients are all-reduced at every optimizer step (several per batch under manual
    optimisation) and buffers are all-reduced or broadcast, so no rank drifts."""
    states = [record["state"] for record in ddp_run.rank_records()]
    assert states[0].keys() == states[1].keys()
    for name, value in states[0].items():
        assert torch.equal(states[1][name], value), name


# the 1-process validation of the 2-process checkpoint: no generators for 1 rank, a new
# version folder for the checkpoints
@pytest.mark.filterwarnings("ignore:RandomState. the checkpoint holds 2 ranks")
@pytest.mark.filterwarnings("ignore:The dirpath has changed")
def test_ddp_validation_metrics_are_reduced_over_ranks(ddp_run, run_cli):
    """The 2 half validation sets log what 1 process logs for the whole set."""
    family = ddp_run.family
    if not family.deterministic_val_metrics:
        pytest.skip("the family's validation metrics are all sampled")
    (checkpoint_path,) = (ddp_run.log_dir / "checkpoints").iterdir()
    args = fit_args(
        family,
        ddp_run.folder / "data",
        *family.ddp_overrides,
        *family.one_process_overrides,
        f"--ckpt_path={checkpoint_path}",
    )
    one_process = run_cli("validate", *args).trainer.callback_metrics
    for metric in family.deterministic_val_metrics:
        logged = ddp_run.scalars(metric)[-1]
        assert logged == pytest.approx(one_process[metric].item(), rel=1e-5), metric


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
        layer.step()  # after the optimizer step: all-reduces the recorded costs
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
