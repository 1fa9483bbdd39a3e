"""Two nodes rehearsed on one machine: every family under torchrun and under SLURM's variables.

Each family of the DDP tests (tiny model and data) fits 2 steps and a validation epoch
as 2 nodes x 1 process on localhost (gloo), launched

- by ``torchrun --nnodes 2 --nproc-per-node 1 --node-rank {0,1} --master-addr
  127.0.0.1 --master-port P -m catlight fit ... --trainer.num_nodes 2
  --trainer.devices 1 --trainer.strategy ddp``, and
- as ``python -m catlight fit ...`` with the variables ``srun`` sets for a 2-node job
  of one task per node (``SLURM_NTASKS``, ``SLURM_NODEID``, ``SLURM_PROCID``, ...),

beside the reference, 1 node x 2 processes launched by Lightning itself. Each node
has its own folder and run folder, and its own data copy (nodes with local disks) or,
with ``--data shared``, one data folder for both (a shared file system). The table
counts, per node, the ``prepare_data`` calls Lightning made (and the NRI simulations
run), the TensorBoard event files and checkpoints written, and says whether the
logged metrics and the final weights equal the reference's exactly.

    python benchmarks/multinode.py                      # every family, ~3 min on 2 cores
    python benchmarks/multinode.py --families vae nri --launchers torchrun
    python benchmarks/multinode.py --launchers torchrun --data shared

Rows go to ``docs/results/multinode.csv``. What this does not check: a network between
machines (both nodes are 127.0.0.1), NCCL and GPUs, a real ``srun`` (only its
variables), and a run folder shared by the nodes (each node has its own).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import tempfile
from pathlib import Path

import torch
from _common import markdown
from _results import append_row

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tiny families of the tests

from tests.scale_families import FAMILIES, RecordedSimulation  # noqa: E402
from tests.two_nodes import TwoNodeRun, rehearse  # noqa: E402

COLUMNS = [
    "family",
    "launcher",
    "data",
    "environment",
    "prepare_data_per_node",
    "simulations",
    "event_files_per_node",
    "checkpoints_per_node",
    "metrics_equal_one_node",
    "weights_equal_one_node",
    "val_metrics_equal_one_process",
    "seconds",
]


def per_node(run: TwoNodeRun, count) -> str:
    """``count(node)`` for each node, e.g. ``1, 1``."""
    return ", ".join(str(count(node)) for node in run.nodes)


def simulations(run: TwoNodeRun) -> str:
    """The ranks that ran NRI simulations, per data folder (``-`` where none ran).

    E.g. ``0; 1``: rank 0 simulated into node 0's folder, rank 1 into node 1's;
    ``0 1``: ranks 0 and 1 both simulated into the one shared folder.
    """
    folders = dict.fromkeys(run.data_dir(node) for node in run.nodes)
    records = [folder / RecordedSimulation.record_name for folder in folders]
    ranks = [" ".join(record.read_text().split()) for record in records if record.exists()]
    return "; ".join(ranks) or "-"


def compare(run: TwoNodeRun, reference: TwoNodeRun) -> tuple[str, str]:
    """Whether the run's last metrics and final weights equal the reference's exactly."""
    metrics, expected = run.last_scalars(), reference.last_scalars()
    different = [name for name, value in metrics.items() if value != expected[name]]
    state, reference_state = run.final_state(), reference.final_state()
    unequal = [
        name for name, value in state.items() if not torch.equal(value, reference_state[name])
    ]
    return (
        "yes" if not different else "no: " + " ".join(different),
        "yes" if not unequal else f"no: {len(unequal)} of {len(state)} tensors",
    )


def compare_one_process(run: TwoNodeRun) -> str:
    """Whether the deterministic validation metrics equal one process's (relative 1e-5).

    The validation examples are split across the ranks and the metrics reduced over
    them, so the sums are taken in another order than in one process.
    """
    metrics = run.family.deterministic_val_metrics
    if not metrics:
        return "- (all sampled)"
    logged, one_process = run.last_scalars(metrics), run.validate_one_process()
    different = [
        name for name in metrics if not math.isclose(logged[name], one_process[name], rel_tol=1e-5)
    ]
    return "no: " + " ".join(different) if different else "yes: " + " ".join(metrics)


def row(run: TwoNodeRun, reference: TwoNodeRun) -> dict[str, str]:
    """The table's row of one run."""
    environments = {line.split()[-1] for node in run.nodes for line in run.prepare_calls(node)}
    metrics_equal, weights_equal = compare(run, reference)
    return {
        "family": next(name for name, family in FAMILIES.items() if family is run.family),
        "launcher": run.launcher,
        "data": "shared" if run.shared_data else "per node",
        "environment": " ".join(sorted(environments)),
        "prepare_data_per_node": per_node(run, lambda node: len(run.prepare_calls(node))),
        "simulations": simulations(run),
        "event_files_per_node": per_node(run, lambda node: len(run.event_files(node))),
        "checkpoints_per_node": per_node(run, lambda node: len(run.checkpoints(node))),
        "metrics_equal_one_node": metrics_equal,
        "weights_equal_one_node": weights_equal,
        "val_metrics_equal_one_process": compare_one_process(run),
        "seconds": f"{run.seconds:.0f}",
    }


def main() -> None:
    """Rehearse every family under every launcher, print the table, append CSV rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument(
        "--launchers", nargs="+", choices=["torchrun", "slurm"], default=["torchrun", "slurm"]
    )
    parser.add_argument(
        "--data",
        choices=["per-node", "shared"],
        default="per-node",
        help="a data folder for each node (default) or one for both",
    )
    parser.add_argument("--root-dir", type=Path, help="keep the node folders here")
    args = parser.parse_args()
    print(f"`python benchmarks/multinode.py {shlex.join(sys.argv[1:])}`\n", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.root_dir or Path(scratch)
        rows = []
        for name in args.families:
            family = FAMILIES[name]
            reference = rehearse(family, "one_node", root / name / "one_node")
            for launcher in [*args.launchers, "one_node"]:
                run = reference if launcher == "one_node" else None
                run = run or rehearse(
                    family, launcher, root / name / launcher, shared_data=args.data == "shared"
                )
                rows.append(row(run, reference))
                append_row("multinode", rows[-1], COLUMNS)
                print(f"{name} {launcher}: {run.seconds:.0f} s", file=sys.stderr, flush=True)
    header = ["family", "launcher", "data", "Lightning environment", "prepare_data calls / node"]
    header += ["NRI simulations (ranks; per folder)", "event files / node", "checkpoints / node"]
    header += ["metrics = 1 node x 2", "weights = 1 node x 2", "val metrics = 1 process", "s"]
    print(markdown(header, [[str(value) for value in row.values()] for row in rows]))


if __name__ == "__main__":
    main()
