"""Render the tables in the docs from the result rows in ``docs/results/*.csv``.

Each table is a block of a markdown page between two markers,

    <!-- results: NAME -->
    ...
    <!-- end results -->

rewritten from the CSV rows of the table NAME in :data:`TABLES`: one line per task and
estimator, one column per parameterization, ``mean ± std (seeds)`` where a cell has
several seeds, and the paper's number beside ours.

    python benchmarks/render_results.py          # rewrite the blocks
    python benchmarks/render_results.py --check  # exit 1 if a block is out of date
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from _results import RESULTS, read_rows

from catlight.latent import ESTIMATORS

ROOT = RESULTS.parents[1]
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w-]+) -->\n).*?(<!-- end results -->)", re.S)


@dataclass(frozen=True)
class Table:
    """How one CSV becomes one markdown table."""

    csv: str  # docs/results/<csv>.csv
    keep: Callable[[dict[str, str]], bool]  # which rows enter the table
    row: Callable[[dict[str, str]], str]  # the line a result row belongs to
    metric: Callable[[dict[str, str]], str]  # the value to average over seeds
    header: str  # name of the row column
    order: Callable[[dict[str, str]], tuple] = lambda r: ()  # lines sorted by it (stable)


TASK_NAMES = {"vae": "VAE 20x10, test -ELBO", "sbn": "SBN 392-(20x10)-(20x10)-392, test NLL"}
DATA_SET_NAMES = {
    "fashion_mnist": "Fashion-MNIST",
    "mnist": "MNIST",
    "springs5": "springs-5",
    "charged5": "charged-5",
}


def estimator_name(short: str) -> str:
    """The display name of an estimator's short name; M2's classifier alone has none."""
    return "supervised only" if short == "supervised_only" else ESTIMATORS[short].display_name


def estimator_rank(short: str) -> int:
    """Where an estimator's lines go: the classifier alone first, then the registry's order."""
    return -1 if short == "supervised_only" else list(ESTIMATORS).index(short)


def nri_settings(row: dict[str, str]) -> str:
    """An NRI run's data set and the settings a paper-preset run may change."""
    skip = ", skip_first" if row["skip_first"] == "True" else ""
    return (
        f"{DATA_SET_NAMES[row['task']]}, test edge accuracy % | width {row['width']}, batch "
        f"{row['batch_size']}, Adam {float(row['learning_rate']):g} halved every "
        f"{row['lr_decay_epochs']} epochs{skip}"
    )


TABLES = {
    "vae_table1": Table(
        csv="vae_table1",
        keep=lambda r: r["preset"] == "paper" and r["latent"] == "categorical",
        row=lambda r: f"{TASK_NAMES[r['task']]} | {ESTIMATORS[r['estimator']].display_name}",
        metric=lambda r: r["test_neg_elbo"] if r["task"] == "vae" else r["test_nll"],
        header="task | estimator",
        order=lambda r: (list(TASK_NAMES).index(r["task"]), estimator_rank(r["estimator"])),
    ),
    "semisupervised": Table(
        csv="semisupervised",
        keep=lambda r: r["preset"] == "paper",
        row=lambda r: (
            f"{DATA_SET_NAMES[r['task']]}, {r['num_labeled']} labels, "
            f"{'grey levels' if r['binarization'] == 'none' else r['binarization']}, "
            f"test accuracy % | {estimator_name(r['estimator'])}"
        ),
        metric=lambda r: r["test_accuracy"],
        header="data | model",
        order=lambda r: (r["task"], r["binarization"], estimator_rank(r["estimator"])),
    ),
    "nri": Table(
        csv="nri",
        keep=lambda r: r["preset"] == "paper",
        row=nri_settings,
        metric=lambda r: r["test_edge_acc"],
        header="data set | settings",
    ),
}


def cell(values: list[float]) -> str:
    """``mean`` for one value, ``mean ± std (n)`` for several."""
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f} ({len(values)})"


def render(table: Table) -> str:
    """The markdown table of one CSV (an explanatory line when it has no rows yet)."""
    rows = [r for r in read_rows(table.csv) if table.keep(r)]
    if not rows:
        return "No finished run yet.\n"
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    details: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in rows:
        line = table.row(r)
        values[line, r["parameterization"]].append(float(table.metric(r)))
        details[line]["paper"].add(r.get("paper", ""))
        details[line]["epochs"].add(r["epochs"])
        details[line]["minutes"].add(r["minutes"])
    lines = list(dict.fromkeys(table.row(r) for r in sorted(rows, key=table.order)))
    header = f"| {table.header} | softmax | catnat | paper | epochs | minutes per run |"
    out = [header, "|" + "---|" * (header.count("|") - 1)]
    for line in lines:
        paper = ", ".join(sorted(f"{float(p):.1f}" for p in details[line]["paper"] if p)) or "—"
        epochs = ", ".join(sorted(details[line]["epochs"], key=int))
        minutes = ", ".join(sorted(details[line]["minutes"], key=float))
        cells = [cell(values[line, p]) for p in ("softmax", "catnat")]
        out.append(f"| {line} | {' | '.join(cells)} | {paper} | {epochs} | {minutes} |")
    return "\n".join(out) + "\n"


def main() -> int:
    """Rewrite (or with --check, compare) every results block of the docs and README."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale blocks")
    args = parser.parse_args()
    stale = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        unknown = {m["name"] for m in BLOCK.finditer(text)} - set(TABLES)
        if unknown:
            raise SystemExit(f"{page}: unknown results tables {sorted(unknown)}")
        updated = BLOCK.sub(lambda m: m[1] + render(TABLES[m["name"]]) + m[3], text)
        if updated != text:
            stale.append(page)
            if not args.check:
                page.write_text(updated)
    for page in stale:
        print(f"{'out of date' if args.check else 'rewrote'}: {page.relative_to(ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
