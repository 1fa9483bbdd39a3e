r"""Learning curves from TensorBoard event files: one line per run, metric against epoch.

Reads the event files of every run folder under ``--run-dir`` whose name matches
``--pattern`` (the paper presets of the benchmarks keep one folder per run, named
``<task>_<latent>_<estimator>_<parameterization>_seed<seed>``) and draws ``--metric``
against the training epoch into a PNG (matplotlib, the ``bench`` extra):

    python benchmarks/plot_curves.py --run-dir runs/vae_table1/paper --pattern 'sbn_*' \
        --metric val/nll --out docs/results/sbn_curves.png --title "SBN, validation NLL"

Runs that differ only in the seed are drawn in the same colour.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)


def read_curve(run: Path, metric: str) -> tuple[list[float], list[float]]:
    """``(epochs, values)`` of one scalar in a run's event files (all files merged).

    The epoch of a value is the ``epoch`` scalar Lightning logs at the same step, so
    values logged at the end of an epoch land on that epoch + 1.
    """
    epoch_at: dict[int, float] = {}
    values: dict[int, float] = {}
    for events in sorted(run.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        tags = accumulator.Tags()["scalars"]
        if "epoch" in tags:
            epoch_at.update({e.step: e.value for e in accumulator.Scalars("epoch")})
        if metric in tags:
            values.update({e.step: e.value for e in accumulator.Scalars(metric)})
    steps = sorted(values)
    return [epoch_at.get(step, float("nan")) + 1 for step in steps], [values[s] for s in steps]


def main() -> None:
    """Draw every matching run's curve into one figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--pattern", default="*", help="glob of run folder names")
    parser.add_argument("--metric", required=True, help="scalar tag, e.g. val/neg_elbo")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--title", default=None)
    parser.add_argument("--ylim", type=float, nargs=2, default=None)
    args = parser.parse_args()

    runs: dict[str, list[Path]] = defaultdict(list)
    for run in sorted(args.run_dir.glob(args.pattern)):
        if run.is_dir():
            runs[re.sub(r"_seed\d+$", "", run.name)].append(run)
    if not runs:
        raise SystemExit(f"no run folder matches {args.pattern!r} under {args.run_dir}")
    figure, axes = plt.subplots(figsize=(7, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if len(runs) > len(colours):  # one colour per label: tab20's pairs, dark shades first
        colours = [plt.get_cmap("tab20")(i) for i in [*range(0, 20, 2), *range(1, 20, 2)]]
    for index, (label, seeds) in enumerate(sorted(runs.items())):
        colour = colours[index % len(colours)]
        style = "--" if "catnat" in label else "-"
        for number, run in enumerate(seeds):
            epochs, values = read_curve(run, args.metric)
            if epochs:
                axes.plot(
                    epochs,
                    values,
                    style,
                    color=colour,
                    label=label if number == 0 else None,
                    linewidth=1.2,
                )
    axes.set_xlabel("epoch")
    axes.set_ylabel(args.metric)
    if args.ylim:
        axes.set_ylim(*args.ylim)
    axes.set_title(args.title or args.metric)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
