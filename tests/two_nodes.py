"""Two-node launches rehearsed on one machine: torchrun, SLURM's variables, one node.

A rehearsal starts ``python -m catlight fit`` for a family of ``FAMILIES`` as two
nodes of one process each, on localhost with the gloo backend:

- ``torchrun``: ``torchrun --nnodes 2 --nproc-per-node 1 --node-rank {0,1}
  --master-addr 127.0.0.1 --master-port P -m catlight fit ...`` (Lightning's
  ``TorchElasticEnvironment``);
- ``slurm``: ``python -m catlight fit ...`` with the variables ``srun`` sets for the
  task of each node of a 2-node job with one task per node (Lightning's
  ``SLURMEnvironment``: ranks from ``SLURM_PROCID``/``SLURM_LOCALID``/``SLURM_NODEID``,
  the address from ``SLURM_NODELIST``, the port from ``SLURM_JOB_ID``);
- ``one_node``: the reference, one node of two processes that Lightning launches itself.

Each node has its own folder (``node0``, ``node1``) as working directory, with its own
copy of the data (``data/``) and its own run folder (``runs/``), as nodes with local
disks would. The data module records every ``prepare_data`` call Lightning makes in
``prepare_data_calls.txt`` of the node's folder, so per-node preparation can be counted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from catlight.data import BinarizedMNISTDataModule
from catlight.tasks.rl import GymnasiumDataModule
from catlight.tasks.semisupervised import SemiSupervisedMNISTDataModule
from tests.scale_families import REPO, Family, RecordedSimulation, fit_args

Launcher = Literal["torchrun", "slurm", "one_node"]
NUM_NODES = 2
PREPARE_RECORD = "prepare_data_calls.txt"
# variables of launchers and clusters that would change how Lightning sees a run
FOREIGN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "GROUP_RANK", "LOCAL_WORLD_SIZE")
FOREIGN_VARIABLES += ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID", "NODE_RANK")


class PrepareDataRecord:
    """Data-module mixin: records each ``prepare_data`` call that Lightning makes.

    Appends ``node_rank local_rank global_rank environment`` to
    ``prepare_data_calls.txt`` in the working directory (``environment``: the class of
    Lightning's cluster environment, which says what launched the process). Calls that
    the data module's own ``setup`` makes (to find files that a node already prepared)
    are not recorded.
    """

    _in_setup = False

    def prepare_data(self) -> None:
        """Record the caller's ranks, then prepare."""
        if not self._in_setup:
            trainer = self.trainer
            ranks = f"{trainer.node_rank} {trainer.local_rank} {trainer.global_rank}"
            environment = type(trainer.strategy.cluster_environment).__name__
            with (Path.cwd() / PREPARE_RECORD).open("a") as record:
                record.write(f"{ranks} {environment}\n")
        super().prepare_data()

    def setup(self, stage: str | None = None) -> None:
        """Set up without recording the ``prepare_data`` calls made from here."""
        self._in_setup = True
        try:
            super().setup(stage)
        finally:
            self._in_setup = False


class RecordedBinarizedMNIST(PrepareDataRecord, BinarizedMNISTDataModule):
    """:class:`~catlight.data.BinarizedMNISTDataModule` recording its preparations."""


class RecordedSemiSupervisedMNIST(PrepareDataRecord, SemiSupervisedMNISTDataModule):
    """:class:`~catlight.data.SemiSupervisedMNISTDataModule` recording its preparations."""


class RecordedParticles(PrepareDataRecord, RecordedSimulation):
    """Particles recording their preparations (and, as before, every simulation)."""


class RecordedGymnasium(PrepareDataRecord, GymnasiumDataModule):
    """:class:`~catlight.data.GymnasiumDataModule` recording its (empty) preparations."""


class MetricsDump(Callback):
    """Writes the metrics of a validation to a JSON file (``{name: value}``).

    Args:
        path: the file.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        metrics = {name: value.item() for name, value in trainer.callback_metrics.items()}
        self.path.write_text(json.dumps(metrics))


# the data class of a family's arguments -> the same class recording its preparations
RECORDED = {
    "BinarizedMNISTDataModule": RecordedBinarizedMNIST,
    "SemiSupervisedMNISTDataModule": RecordedSemiSupervisedMNIST,
    "tests.scale_families.RecordedSimulation": RecordedParticles,
    "GymnasiumDataModule": RecordedGymnasium,
}


def data_class(family: Family, args: list[str]) -> str:
    """The data ``class_path`` of a fit: the last override, else the family's config."""
    overrides = [arg.split("=", 1)[1] for arg in args if arg.startswith("--data.class_path=")]
    if overrides:
        return overrides[-1]
    return yaml.safe_load(family.config_path.read_text())["data"]["class_path"]


def free_port(low: int = 15000, high: int = 25000) -> int:
    """A TCP port of 127.0.0.1 in ``[low, high)`` that nothing listens on now.

    The default range holds the ports that Lightning derives from a SLURM job id
    (its last 4 digits + 15000).
    """
    for port in range(low + os.getpid() % 1000, high):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in [{low}, {high})")


def slurm_variables(node_rank: int, job_id: str) -> dict[str, str]:
    """What ``srun`` sets for the task of node ``node_rank`` of a 2-node, 1-task-a-node job.

    Both nodes are this machine, so the node list names 127.0.0.1 (SLURM would write
    e.g. ``node[01-02]``; Lightning takes its first host as the master address).
    """
    return {
        "SLURM_JOB_ID": job_id,
        "SLURM_JOB_NAME": "catlight-two-nodes",
        "SLURM_NNODES": str(NUM_NODES),
        "SLURM_NTASKS": str(NUM_NODES),
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_NODELIST": "127.0.0.1",
        "SLURM_NODEID": str(node_rank),
        "SLURM_PROCID": str(node_rank),
        "SLURM_LOCALID": "0",
    }


@dataclass(frozen=True)
class TwoNodeRun:
    """A finished rehearsal of one family under one launcher.

    Attributes:
        family: the family.
        launcher: ``"torchrun"``, ``"slurm"`` or ``"one_node"``.
        folder: holds ``node0/`` and (but for ``one_node``) ``node1/``.
        seconds: wall time from the start of the first process to the end of the last.
        shared_data: whether the nodes shared one data folder (``folder/data``), as
            on a shared file system, instead of a copy each.
    """

    family: Family
    launcher: Launcher
    folder: Path
    seconds: float
    shared_data: bool = False

    @property
    def nodes(self) -> list[Path]:
        """The node folders."""
        return sorted(self.folder.glob("node*"))

    def data_dir(self, node: Path) -> Path:
        """The data folder of a node."""
        return self.folder / "data" if self.shared_data else node / "data"

    def prepare_calls(self, node: Path) -> list[str]:
        """``node_rank local_rank global_rank environment`` of each call on a node."""
        record = node / PREPARE_RECORD
        return record.read_text().splitlines() if record.exists() else []

    def event_files(self, node: Path) -> list[Path]:
        """The TensorBoard event files a node wrote."""
        return sorted((node / "runs").rglob("events.out.tfevents.*"))

    def checkpoints(self, node: Path) -> list[Path]:
        """The checkpoints a node wrote."""
        return sorted((node / "runs").rglob("*.ckpt"))

    def last_scalars(self, metrics: tuple[str, ...] | None = None) -> dict[str, float]:
        """The last logged value of each metric (the family's by default; node 0's log)."""
        (event_file,) = self.event_files(self.nodes[0])
        events = EventAccumulator(str(event_file.parent))
        events.Reload()
        return {
            metric: events.Scalars(metric)[-1].value for metric in metrics or self.family.metrics
        }

    def step_checkpoint(self) -> Path:
        """The checkpoint that node 0 wrote at the end of training (not ``last.ckpt``)."""
        (path,) = (path for path in self.checkpoints(self.nodes[0]) if path.name != "last.ckpt")
        return path

    def final_state(self) -> dict[str, torch.Tensor]:
        """The model's weights and buffers at the end of training."""
        return torch.load(self.step_checkpoint(), weights_only=True)["state_dict"]

    def validate_one_process(self) -> dict[str, float]:
        """The family's deterministic validation metrics of the final weights, one process.

        ``catlight validate`` of :meth:`step_checkpoint` on node 0's data, over the
        validation examples of all the ranks (the family's ``one_process_overrides``).
        """
        family, node = self.family, self.nodes[0]
        output = self.folder / "one_process_metrics.json"
        dump = {"class_path": f"{__name__}.MetricsDump", "init_args": {"path": str(output)}}
        args = fit_args(
            family,
            self.data_dir(node),
            *family.ddp_overrides,
            *family.one_process_overrides,
            f"--trainer.default_root_dir={self.folder / 'one_process'}",
            f"--ckpt_path={self.step_checkpoint()}",
            "--trainer.callbacks+=" + json.dumps(dump),
        )
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "catlight", "validate", *args]
        result = subprocess.run(
            command, cwd=self.folder, env=env, capture_output=True, text=True, timeout=300
        )
        if result.returncode != 0:
            raise RuntimeError(f"one-process validation failed:\n{result.stderr[-3000:]}")
        metrics = json.loads(output.read_text())
        return {name: metrics[name] for name in family.deterministic_val_metrics}


def node_command(
    family: Family,
    node: Path,
    data_dir: Path,
    launcher: Launcher,
    node_rank: int,
    port: int,
    *overrides: str,
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of the process started on one node."""
    shape = (1, 2) if launcher == "one_node" else (NUM_NODES, 1)
    args = fit_args(
        family,
        data_dir,
        *family.ddp_overrides,
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        f"--trainer.default_root_dir={node / 'runs'}",
        f"--trainer.num_nodes={shape[0]}",
        f"--trainer.devices={shape[1]}",
        "--trainer.strategy=ddp",
        *overrides,
    )
    recorded = RECORDED[data_class(family, args)]
    args.append(f"--data.class_path={recorded.__module__}.{recorded.__name__}")
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
    for key in FOREIGN_VARIABLES:
        env.pop(key, None)
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    fit = ["-m", "catlight", "fit", *args]
    if launcher == "torchrun":
        rendezvous = ["--nnodes", str(NUM_NODES), "--nproc-per-node", "1"]
        rendezvous += ["--node-rank", str(node_rank), "--master-addr", "127.0.0.1"]
        rendezvous += ["--master-port", str(port)]
        return [sys.executable, "-m", "torch.distributed.run", *rendezvous, *fit], env
    if launcher == "slurm":
        # Lightning's port is the job id's last 4 digits + 15000
        env.update(slurm_variables(node_rank, job_id=f"9{port - 15000:04d}"))
    return [sys.executable, *fit], env


def rehearse(
    family: Family,
    launcher: Launcher,
    folder: Path,
    *overrides: str,
    shared_data: bool = False,
    timeout: float = 300,
) -> TwoNodeRun:
    """Fit ``family`` for 2 steps under ``launcher``, every node's process at once.

    Args:
        family: the family.
        launcher: ``"torchrun"``, ``"slurm"`` or ``"one_node"``.
        folder: a new folder for the node folders (and the shared data folder).
        *overrides: more ``catlight fit`` arguments.
        shared_data: give the nodes one data folder instead of a copy each.
        timeout: seconds the processes may run.

    Raises:
        RuntimeError: a process failed or ran past ``timeout`` seconds (all are ended),
            with the tail of its output.
    """
    port = free_port()
    processes = []
    start = time.perf_counter()
    for node_rank in range(1 if launcher == "one_node" else NUM_NODES):
        node = folder / f"node{node_rank}"
        node.mkdir(parents=True)
        data_dir = folder / "data" if shared_data else node / "data"
        command, env = node_command(family, node, data_dir, launcher, node_rank, port, *overrides)
        with (node / "output.txt").open("w") as output:
            processes.append(
                subprocess.Popen(
                    command,
                    cwd=node,
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a group: the process and the workers it starts
                )
            )
    try:
        codes = [process.wait(timeout=timeout) for process in processes]
    except subprocess.TimeoutExpired:
        codes = [None] * len(processes)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    seconds = time.perf_counter() - start
    for node_rank, code in enumerate(codes):
        if code != 0:
            tail = (folder / f"node{node_rank}" / "output.txt").read_text()[-3000:]
            raise RuntimeError(f"{launcher} node {node_rank} ended with {code}:\n{tail}")
    return TwoNodeRun(family, launcher, folder, seconds, shared_data)
