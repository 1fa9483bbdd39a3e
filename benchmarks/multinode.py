"""Two nodes rehearsed on one machine: every family under torchrun and under SLURM's variables.

Each family of the DDP tests (tiny model and data) fits 2 steps and a validation epoch
as 2 nodes x 1 process on localhost (gloo), launched

- by ``torchrun --nnodes 2 --nproc-per-node 1 --node-rank {0,1} --master-addr
  127.0.0.1 --master-port P -m catlight fit ... --trainer.num_nodes 2
  --trainer.devices 1 --trainer.strategy ddp``, and
- as ``python -m catlight fit ...`` with the variables ``srun`` sets for a 2-node job
  of one task per node (``SLURM_NTASKS``, ``SLURM_NODEID``, ``SLURM_PROCID``, ...),

beside the reference, 1 node x 2 processes launched by Lightning itself. Each node
has its own folder, data copy and run folder (nodes with local disks). The table
counts, per node, the ``prepare_data`` calls Lightning made (and the NRI simulations
run), the TensorBoard event files and checkpoints written, and says whether the
logged metrics and the final weights equal the reference's exactly.

    python benchmarks/multinode.py                      # every family, ~3 min on 2 cores
    python benchmarks/multinode.py --families vae nri --launchers torchrun

Rows go to ``docs/results/multinode.csv``. What this does not check: a network between
machines (both nodes are 127.0.0.1), NCCL and GPUs, a real ``srun`` (only its
variables), and a run folder shared by the nodes.
"""

from __future__ import annotations

import argparse
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
    "environment",
    "prepare_data_per_node",
    "simulations_per_node",
    "event_files_per_node",
    "checkpoints_per_node",
    "metrics_equal_one_node",
    "weights_equal_one_node",
    "seconds",
]


def per_node(run: TwoNodeRun, count) -> str:
    """``count(node)`` for each node, e.g. ``1, 1``."""
    return ", ".join(str(count(node)) for node in run.nodes)


def simulations(node: Path) -> int:
    """NRI simulations run on a node (0 for the families that simulate nothing)."""
    record = node / "data" / RecordedSimulation.record_name
    return len(record.read_text().split()) if record.exists() else 0


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


def row(run: TwoNodeRun, reference: TwoNodeRun) -> dict[str, str]:
    """The table's row of one run."""
    environments = {line.split()[-1] for node in run.nodes for line in run.prepare_calls(node)}
    metrics_equal, weights_equal = compare(run, reference)
    return {
        "family": next(name for name, family in FAMILIES.items() if family is run.family),
        "launcher": run.launcher,
        "environment": " ".join(sorted(environments)),
        "prepare_data_per_node": per_node(run, lambda node: len(run.prepare_calls(node))),
        "simulations_per_node": per_node(run, simulations),
        "event_files_per_node": per_node(run, lambda node: len(run.event_files(node))),
        "checkpoints_per_node": per_node(run, lambda node: len(run.checkpoints(node))),
        "metrics_equal_one_node": metrics_equal,
        "weights_equal_one_node": weights_equal,
        "seconds": f"{run.seconds:.0f}",
    }


def main() -> None:
    """Rehearse every family under every launcher, print the table, append CSV rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument(
        "--launchers", nargs="+", choices=["torchrun", "slurm"], default=["torchrun", "slurm"]
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
                run = run or rehearse(family, launcher, root / name / launcher)
                rows.append(row(run, reference))
                append_row("multinode", rows[-1], COLUMNS)
                print(f"{name} {launcher}: {run.seconds:.0f} s", file=sys.stderr, flush=True)
    header = ["family", "launcher", "Lightning environment", "prepare_data calls / node"]
    header += ["NRI simulations / node", "event files / node", "checkpoints / node"]
    header += ["metrics = 1 node x 2", "weights = 1 node x 2", "s"]
    print(markdown(header, [[str(value) for value in row.values()] for row in rows]))


if __name__ == "__main__":
    main()
