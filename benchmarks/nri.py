"""NRI on simulated particles: data generation, edge accuracy, training throughput.

Three tables:

1. data generation time of springs-5 and charged-5, vectorised against one loop per
   simulation (``benchmarks/nri_simulation.py``);
2. test edge accuracy of NRI (MLP encoder and decoder, two edge types, Gumbel-Softmax
   tau 0.5, uniform prior) on springs-5 with softmax and catnat, on charged-5 and on
   kuramoto-5 (CNN encoder, as in the configs); both the plain accuracy and the best
   over relabellings of the two types, the AUROC of edge existence (with
   ``skip_first``), and the test MSE of predictions 1, 10 and 20 steps ahead
   (normalised units);
3. training throughput: simulations per second of a training step (loss, backward,
   Adam; no Lightning loop) of each encoder x decoder with the paper's settings,
   batch 128, springs-5 trajectories of 49 steps, at the preset's width and at 256.

Presets (``--quick`` is the default):

- quick (CPU, about 20-25 minutes on 2 shared cores): 5,000 / 500 / 500 simulations,
  width 64, batch 32, Adam 1e-3, 12 epochs, and ``skip_first`` (type 0 sends no
  message, which breaks the symmetry of the two types early); 1/400 of the paper's
  training budget, so its accuracies show learning, not the published numbers;
- full (needs a GPU; several hours per row): the paper's settings, i.e. the configs
  ``configs/nri/{springs5,springs5_catnat,charged5}.yaml``: 50,000 / 10,000 / 10,000
  simulations, width 256, batch 128, Adam 5e-4 halved every 200 epochs, 500 epochs.
  Goal: springs-5 >= 99.9 %, charged-5 >= 82.1 % edge accuracy (Kipf et al. 2018).
- paper (CPU, about 2 hours per run on one thread): the configs
  ``configs/nri/{springs5,charged5}.yaml`` as written but for the epochs that fit in
  2 hours (``_nri_paper.PAPER_EPOCHS``), through ``catlight``'s own command-line
  interface, with TensorBoard logs, resumable checkpoints and one row per run in
  ``docs/results/nri.csv`` (see ``_nri_paper.py``). ``--limit-train-batches N``
  makes a timing run (N batches an epoch, no CSV row).

    python benchmarks/nri.py --quick --data-dir /tmp/nri_data
    python benchmarks/nri.py --quick --systems kuramoto --skip-simulation --skip-throughput
    python benchmarks/nri.py --full --data-dir data/particles --accelerator gpu
    python benchmarks/nri.py --paper --data-dir data/particles --tasks springs5 --seeds 0
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from _common import PARAMETERIZATIONS_BY_NAME, markdown
from _nri_common import Preset as AccuracyPreset
from _nri_common import make_data, make_parser, mse_cells, print_header, train_and_test
from _nri_paper import ROOT, TASKS, paper_table
from _resumable import batch_count
from nri_simulation import simulation_table

from catlight.latent import DiscreteLatent, GumbelSoftmax
from catlight.tasks.nri import NRI


@dataclass(frozen=True)
class Preset(AccuracyPreset):
    """How much each accuracy row trains, and how long throughput is timed."""

    throughput_steps: int  # timed training steps per throughput row (after one warm-up)


PRESETS = {
    "quick": Preset(5000, 500, 500, 12, 64, 32, 1e-3, True, 3),
    "full": Preset(50000, 10000, 10000, 500, 256, 128, 5e-4, False, 20),
}
# (system, particles, parameterization) of each accuracy row
ACCURACY_ROWS = [
    ("springs", 5, "softmax"),
    ("springs", 5, "catnat"),
    ("charged", 5, "softmax"),
    ("kuramoto", 5, "softmax"),
]
SYSTEMS = ("springs", "charged", "kuramoto")
ENCODERS = {"kuramoto": "cnn"}  # as configs/nri; the rest: "mlp"
THROUGHPUT_ROWS = [("mlp", "mlp"), ("cnn", "mlp"), ("mlp", "rnn")]
PAPER = {"springs": "99.9", "charged": "82.1"}


def describe(preset: Preset) -> str:
    """The preset in words, for the header."""
    return (
        f"{preset.num_train:,} / {preset.num_valid:,} / {preset.num_test:,} simulations, "
        f"{preset.epochs} epochs, width {preset.hidden_size}, batch {preset.batch_size}, "
        f"Adam {preset.learning_rate:g}, skip_first {preset.skip_first}"
    )


def make_model(
    preset: Preset,
    parameterization: str,
    encoder: str = "mlp",
    decoder: str = "mlp",
    width: int | None = None,
    skip_first: bool | None = None,
) -> NRI:
    """NRI with the preset's settings unless ``width`` or ``skip_first`` are given."""
    latent = DiscreteLatent(
        2, PARAMETERIZATIONS_BY_NAME[parameterization](), GumbelSoftmax(tau=0.5)
    )
    return NRI(
        latent,
        encoder=encoder,
        decoder=decoder,
        encoder_hidden_size=width or preset.hidden_size,
        decoder_hidden_size=width or preset.hidden_size,
        skip_first=preset.skip_first if skip_first is None else skip_first,
        learning_rate=preset.learning_rate,
    )


def accuracy_row(args: argparse.Namespace, preset: Preset, row: tuple[str, int, str]) -> list:
    """Train one row without validation, test the last model; a row of table 2."""
    system, particles, parameterization = row
    torch.manual_seed(args.seed)
    data = make_data(args, preset, system, particles)
    model = make_model(preset, parameterization, encoder=ENCODERS.get(system, "mlp"))
    metrics, seconds = train_and_test(args, preset, model, data)
    auroc = metrics.get("test/edge_auroc")
    return [
        f"{system}-{particles}",
        parameterization,
        f"{100 * metrics['test/edge_acc']:.1f}",
        f"{100 * metrics['test/edge_acc_best']:.1f}",
        "" if auroc is None else f"{auroc:.3f}",
        PAPER.get(system, "") if particles == 5 else "",
        *mse_cells(metrics),
        f"{seconds / 60:.1f}",
    ]


def throughput_row(
    args: argparse.Namespace, preset: Preset, encoder: str, decoder: str, width: int
) -> list:
    """Simulations per second of training steps on springs-5 batches of 128."""
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if args.accelerator in ("gpu", "cuda") else "cpu")
    model = make_model(preset, "softmax", encoder, decoder, width, skip_first=False).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=preset.learning_rate)
    data = make_data(args, preset, "springs", 5)
    with contextlib.redirect_stdout(sys.stderr):
        data.prepare_data()
    data.setup("fit")
    trajectories = data.splits["train"][0][:128].to(device)
    for step in range(preset.throughput_steps + 1):
        if step == 1:  # the first step warms up (allocations, kernels)
            _synchronize(device)
            start = time.perf_counter()
        loss, _ = model.loss(trajectories)
        optimizer.zero_grad(set_to_none=True)
        loss.mean().backward()
        optimizer.step()
    _synchronize(device)
    seconds = (time.perf_counter() - start) / preset.throughput_steps
    return [encoder, decoder, str(width), f"{1000 * seconds:,.0f}", f"{128 / seconds:,.0f}"]


def main() -> None:
    """Print the three tables."""
    parser = make_parser(__doc__.splitlines()[0], presets=("quick", "full", "paper"))
    parser.add_argument("--skip-simulation", action="store_true", help="omit table 1")
    parser.add_argument("--skip-throughput", action="store_true", help="omit table 3")
    parser.add_argument(
        "--systems", nargs="+", choices=SYSTEMS, default=SYSTEMS, help="rows of table 2"
    )
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=TASKS, help="paper preset")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="paper preset")
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=ROOT / "runs" / "nri",
        help="paper preset: logs and checkpoints, one folder per run",
    )
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    parser.add_argument(
        "--skip-first",
        action="store_true",
        help="paper preset: edge type 0 sends no message (off in the paper's configs)",
    )
    parser.add_argument("--width", type=int, default=None, help="paper preset: network width")
    parser.add_argument("--batch-size", type=int, default=None, help="paper preset: batch")
    parser.add_argument(
        "--learning-rate", type=float, default=None, help="paper preset: Adam's rate"
    )
    parser.add_argument(
        "--lr-decay-epochs",
        type=int,
        default=None,
        help="paper preset: epochs between halvings of the rate",
    )
    parser.add_argument(
        "--limit-train-batches",
        type=batch_count,
        default=None,
        help="paper preset: a timing run of this many batches an epoch (no CSV row)",
    )
    args = parser.parse_args()
    preset_name = args.preset or "quick"
    torch.set_num_threads(args.threads)
    if preset_name == "paper":
        print_header("NRI benchmark (paper preset)", args, "configs/nri as written")
        paper_table(args)
        return
    preset = PRESETS[preset_name]
    if args.epochs is not None:
        preset = dataclasses.replace(preset, epochs=args.epochs)

    print_header(f"NRI benchmark ({preset_name} preset)", args, describe(preset))
    if not args.skip_simulation:
        print("## 1. Data generation\n")
        print(simulation_table("quick", (("springs", 5), ("charged", 5))) + "\n")

    print(
        f"## 2. Test edge accuracy ({preset.num_train:,} training simulations, "
        f"{preset.epochs} epochs, width {preset.hidden_size}; Gumbel-Softmax tau 0.5)\n"
    )
    header = ["data set", "parameterization", "edge acc. (%)", "best relabelling (%)"]
    header += [
        "edge AUROC",
        "paper (%)",
        "MSE 1 step",
        "MSE 10 steps",
        "MSE 20 steps",
        "train (min)",
    ]
    rows = [accuracy_row(args, preset, row) for row in ACCURACY_ROWS if row[0] in args.systems]
    print(markdown(header, rows) + "\n")
    if args.skip_throughput:
        return

    print("## 3. Training throughput (springs-5, batch 128, 49 steps)\n")
    widths = sorted({preset.hidden_size, 256})
    rows = [
        throughput_row(args, preset, encoder, decoder, width)
        for width in widths
        for encoder, decoder in THROUGHPUT_ROWS
    ]
    header = ["encoder", "decoder", "width", "ms / step", "simulations / s"]
    print(markdown(header, rows))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
