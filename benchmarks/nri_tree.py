"""NRI on tree-structured springs: a spanning-tree edge latent against independent edges.

The springs of each simulation join the particles along a uniformly random spanning
tree (``ParticlesDataModule(graph="tree")``). NRI models with the same data,
encoder, decoder, optimiser and epochs differ only in the edge latent:

- independent edges, one categorical per ordered pair with a uniform prior over the
  two types (the NRI of Kipf et al. 2018), trained by Gumbel-Softmax tau 0.5 (softmax;
  one decoder pass per step) or by the leave-one-out score function over 4 samples
  (``LeaveOneOut``: the same kind of estimator and the same 4 decoder passes per step
  as the tree, so that row isolates the structure prior);
- spanning tree: one tree per simulation (``StructuredLatent(SpanningTree(N))``),
  T-REINFORCE with a leave-one-out baseline over 4 sampled trees, uniform prior over
  trees (:mod:`catlight.models.nri_edge_latents`).

Both use ``skip_first`` (type 0: no interaction). The table gives the test edge accuracy
of the most probable graph (plain, and under the best relabelling of the two types),
the share of test simulations whose whole graph is right, the test MSE 1, 10 and 20
steps ahead (normalised units) and the training time. For 5 particles a tree has 4 of
the 10 pairs: predicting "no interaction" everywhere scores 60 %, a random tree 52 %.

Presets (``--quick`` is the default):

- quick (CPU, about 16 minutes on 2 shared cores at 1 thread): 5,000 / 500 / 500
  simulations, width 64, batch 32, Adam 1e-3, 12 epochs;
- full (needs a GPU; hours per row, not run here): the settings of
  ``configs/nri/tree/springs5_tree_{independent,spanning_tree}.yaml``: 50,000 /
  10,000 / 10,000 simulations, width 256, batch 128, Adam 5e-4 halved every 200
  epochs, 500 epochs.

    python benchmarks/nri_tree.py --quick --data-dir /tmp/nri_tree_data
    python benchmarks/nri_tree.py --full --data-dir data/particles --accelerator gpu
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from _common import markdown
from lightning.pytorch import Trainer
from nri_simulation import cpu_model

from catlight.data import ParticlesDataModule
from catlight.latent import DiscreteLatent, GumbelSoftmax, LeaveOneOut, Softmax
from catlight.latent.structured import SpanningTree, StructuredLatent, TraceReinforce
from catlight.models import NRI


@dataclass(frozen=True)
class Preset:
    """How much each row trains."""

    num_train: int
    num_valid: int
    num_test: int
    epochs: int
    hidden_size: int
    batch_size: int
    learning_rate: float


PRESETS = {
    "quick": Preset(5000, 500, 500, 12, 64, 32, 1e-3),
    "full": Preset(50000, 10000, 10000, 500, 256, 128, 5e-4),
}
NUM_PARTICLES = 5
TREE_SAMPLES = 4
LATENTS = {
    "independent edges (GS tau 0.5)": lambda: DiscreteLatent(2, Softmax(), GumbelSoftmax(0.5)),
    f"independent edges (leave-one-out, {TREE_SAMPLES} samples)": lambda: DiscreteLatent(
        2, Softmax(), LeaveOneOut(TREE_SAMPLES)
    ),
    f"spanning tree (T-REINFORCE+, {TREE_SAMPLES} trees)": lambda: StructuredLatent(
        SpanningTree(NUM_PARTICLES), TraceReinforce(TREE_SAMPLES, "leave_one_out")
    ),
}


def describe(preset: Preset) -> str:
    """The preset in words, for the header."""
    return (
        f"{preset.num_train:,} / {preset.num_valid:,} / {preset.num_test:,} tree-structured "
        f"springs-{NUM_PARTICLES} simulations, {preset.epochs} epochs, width "
        f"{preset.hidden_size}, batch {preset.batch_size}, Adam {preset.learning_rate:g}, "
        "skip_first True"
    )


def make_data(args: argparse.Namespace, preset: Preset) -> ParticlesDataModule:
    """Tree-structured springs (simulated once, then read from ``args.data_dir``)."""
    return ParticlesDataModule(
        str(args.data_dir),
        system="springs",
        num_particles=NUM_PARTICLES,
        graph="tree",
        num_train=preset.num_train,
        num_valid=preset.num_valid,
        num_test=preset.num_test,
        batch_size=preset.batch_size,
    )


def whole_graph_accuracy(model: NRI, data: ParticlesDataModule) -> float:
    """Share of test simulations whose most probable graph equals the true one."""
    trajectories, edges = data.splits["test"]
    with torch.no_grad():
        _, mode = model.most_probable_edges(trajectories.to(model.device))
    predicted = mode[0].argmax(-1).cpu()
    return (predicted == edges).all(-1).double().mean().item()


def accuracy_row(args: argparse.Namespace, preset: Preset, name: str) -> list[str]:
    """Train one latent without validation, test the last model; one row of the table."""
    torch.manual_seed(args.seed)
    data = make_data(args, preset)
    model = NRI(
        LATENTS[name](),
        encoder_hidden_size=preset.hidden_size,
        decoder_hidden_size=preset.hidden_size,
        skip_first=True,
        learning_rate=preset.learning_rate,
    )
    trainer = Trainer(
        accelerator=args.accelerator,
        max_epochs=preset.epochs,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the table
        data.prepare_data()
        start = time.perf_counter()
        trainer.fit(model, datamodule=data)
        seconds = time.perf_counter() - start
        metrics = trainer.test(model, datamodule=data, verbose=False)[0]
    model.eval()
    return [
        name,
        f"{100 * metrics['test/edge_acc']:.1f}",
        f"{100 * metrics['test/edge_acc_best']:.1f}",
        f"{100 * whole_graph_accuracy(model, data):.1f}",
        *(f"{metrics[f'test/mse_{h}step']:.2e}" for h in (1, 10, 20)),
        f"{seconds / 60:.1f}",
    ]


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    preset_group = parser.add_mutually_exclusive_group()
    preset_group.add_argument("--quick", action="store_const", const="quick", dest="preset")
    preset_group.add_argument("--full", action="store_const", const="full", dest="preset")
    parser.add_argument("--data-dir", type=Path, default=Path("data/particles"))
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    preset_name = args.preset or "quick"
    preset = PRESETS[preset_name]
    torch.set_num_threads(args.threads)

    print(f"# NRI on tree-structured springs ({preset_name} preset)\n")
    print(f"`{shlex.join(['python', *sys.argv])}`\n")
    print(
        f"{args.accelerator} ({cpu_model()}, {torch.get_num_threads()} torch threads), "
        f"torch {torch.__version__}, Python {platform.python_version()}; {describe(preset)}\n"
    )
    header = ["edge latent", "edge acc. (%)", "best relabelling (%)", "whole graph (%)"]
    header += ["MSE 1 step", "MSE 10 steps", "MSE 20 steps", "train (min)"]
    rows = [accuracy_row(args, preset, name) for name in LATENTS]
    print(markdown(header, rows))


if __name__ == "__main__":
    main()
