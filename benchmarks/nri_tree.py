"""NRI on tree-structured springs: a (directed) tree edge latent against independent edges.

The springs of each simulation join the particles along a uniformly random spanning
tree (``ParticlesDataModule(graph="tree")``), or with ``--graph directed_tree`` along a
uniformly random arborescence rooted at particle 0 whose springs pull the child only
(``graph="directed_tree"``). NRI models with the same data, encoder, decoder, optimiser
and epochs differ only in the edge latent:

- independent edges, one categorical per ordered pair with a uniform prior over the
  two types (the NRI of Kipf et al. 2018), trained by Gumbel-Softmax tau 0.5 (softmax;
  one decoder pass per step) or by the leave-one-out score function over 4 samples
  (``LeaveOneOut``: the same kind of estimator and the same 4 decoder passes per step
  as the tree, so that row isolates the structure prior);
- spanning tree: one tree per simulation (``StructuredLatent(SpanningTree(N))``),
  T-REINFORCE with a leave-one-out baseline over 4 sampled trees, uniform prior over
  trees (:mod:`catlight.tasks.nri.edge_latents`);
- arborescence (directed trees only, with the Gumbel-Softmax row): one arborescence per
  simulation (``StructuredLatent(Arborescence(N))``), T-REINFORCE with a leave-one-out
  baseline over 4 sampled arborescences, the zero-score prior over traces.

Both use ``skip_first`` (type 0: no interaction). The table gives the test edge accuracy
of the most probable graph (plain, and under the best relabelling of the two types),
the share of test simulations whose whole graph is right, the test MSE 1, 10 and 20
steps ahead (normalised units) and the training time. For 5 particles a tree has 4 of
the 10 pairs: predicting "no interaction" everywhere scores 60 %, a random tree 52 %;
an arborescence has 4 of the 20 ordered pairs: "no interaction" everywhere scores 80 %.

Presets (``--quick`` is the default):

- small (CPU, a few minutes per row at 1 thread): 2,000 / 300 / 300 simulations,
  width 64, batch 32, Adam 1e-3, 8 epochs;
- quick (CPU, about 16 minutes on 2 shared cores at 1 thread): 5,000 / 500 / 500
  simulations, width 64, batch 32, Adam 1e-3, 12 epochs;
- full (needs a GPU; hours per row, not run here): the settings of
  ``configs/nri/tree/springs5_tree_{independent,spanning_tree}.yaml``: 50,000 /
  10,000 / 10,000 simulations, width 256, batch 128, Adam 5e-4 halved every 200
  epochs, 500 epochs.

    python benchmarks/nri_tree.py --quick --data-dir /tmp/nri_tree_data
    python benchmarks/nri_tree.py --small --graph directed_tree --data-dir /tmp/nri_tree_data
    python benchmarks/nri_tree.py --full --data-dir data/particles --accelerator gpu
"""

from __future__ import annotations

import argparse

import torch
from _common import markdown
from _nri_common import Preset, make_data, make_parser, mse_cells, print_header, train_and_test

from catlight.latent import DiscreteLatent, GumbelSoftmax, LeaveOneOut, Softmax
from catlight.latent.structured import (
    Arborescence,
    SpanningTree,
    StructuredLatent,
    TraceReinforce,
)
from catlight.tasks.nri import NRI, ParticlesDataModule

PRESETS = {
    "small": Preset(2000, 300, 300, 8, 64, 32, 1e-3, skip_first=True),
    "quick": Preset(5000, 500, 500, 12, 64, 32, 1e-3, skip_first=True),
    "full": Preset(50000, 10000, 10000, 500, 256, 128, 5e-4, skip_first=True),
}
NUM_PARTICLES = 5
TREE_SAMPLES = 4
GUMBEL_SOFTMAX = "independent edges (GS tau 0.5)"
LATENTS = {
    GUMBEL_SOFTMAX: lambda: DiscreteLatent(2, Softmax(), GumbelSoftmax(0.5)),
    f"independent edges (leave-one-out, {TREE_SAMPLES} samples)": lambda: DiscreteLatent(
        2, Softmax(), LeaveOneOut(TREE_SAMPLES)
    ),
    f"spanning tree (T-REINFORCE+, {TREE_SAMPLES} trees)": lambda: StructuredLatent(
        SpanningTree(NUM_PARTICLES), TraceReinforce(TREE_SAMPLES, "leave_one_out")
    ),
}
DIRECTED_LATENTS = {
    GUMBEL_SOFTMAX: LATENTS[GUMBEL_SOFTMAX],
    f"arborescence (T-REINFORCE+, {TREE_SAMPLES} arborescences)": lambda: StructuredLatent(
        Arborescence(NUM_PARTICLES), TraceReinforce(TREE_SAMPLES, "leave_one_out")
    ),
}
GRAPHS = {
    "tree": ("tree-structured", LATENTS),
    "directed_tree": ("directed-tree", DIRECTED_LATENTS),
}


def describe(preset: Preset, graph: str) -> str:
    """The preset in words, for the header."""
    return (
        f"{preset.num_train:,} / {preset.num_valid:,} / {preset.num_test:,} {GRAPHS[graph][0]} "
        f"springs-{NUM_PARTICLES} simulations, {preset.epochs} epochs, width "
        f"{preset.hidden_size}, batch {preset.batch_size}, Adam {preset.learning_rate:g}, "
        f"skip_first {preset.skip_first}"
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
    data = make_data(args, preset, "springs", NUM_PARTICLES, graph=args.graph)
    model = NRI(
        GRAPHS[args.graph][1][name](),
        encoder_hidden_size=preset.hidden_size,
        decoder_hidden_size=preset.hidden_size,
        skip_first=preset.skip_first,
        learning_rate=preset.learning_rate,
    )
    metrics, seconds = train_and_test(args, preset, model, data)
    model.eval()
    return [
        name,
        f"{100 * metrics['test/edge_acc']:.1f}",
        f"{100 * metrics['test/edge_acc_best']:.1f}",
        f"{100 * whole_graph_accuracy(model, data):.1f}",
        *mse_cells(metrics),
        f"{seconds / 60:.1f}",
    ]


def main() -> None:
    """Print the table."""
    parser = make_parser(__doc__.splitlines()[0], presets=tuple(PRESETS))
    parser.add_argument("--graph", choices=list(GRAPHS), default="tree")
    args = parser.parse_args()
    preset_name = args.preset or "quick"
    preset = PRESETS[preset_name]
    torch.set_num_threads(args.threads)

    kind, latents = GRAPHS[args.graph]
    title = f"NRI on {kind} springs ({preset_name} preset)"
    print_header(title, args, describe(preset, args.graph))
    header = ["edge latent", "edge acc. (%)", "best relabelling (%)", "whole graph (%)"]
    header += ["MSE 1 step", "MSE 10 steps", "MSE 20 steps", "train (min)"]
    rows = [accuracy_row(args, preset, name) for name in latents]
    print(markdown(header, rows))


if __name__ == "__main__":
    main()
