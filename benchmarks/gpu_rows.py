"""Every GPU row the docs lack, in one call: run by ``benchmarks/gpu.sh``.

Four sections, each appending CSV rows under ``docs/results/``:

1. ``gpu_throughput.csv``: training samples/s of the VAE and NRI (the models of
   ``scaling.py``) in ``32-true``, ``bf16-mixed`` and ``16-mixed``, one process.
2. ``layer_speed.csv``: forward + backward time of the layer for every estimator x
   parameterization at K = 10 and 1024 (B = 1024, N = 20), against
   ``F.gumbel_softmax`` (the timing table of ``estimators.py``), plus Catnat with
   ``compile=True`` and its compile time.
3. ``gpu_ddp.csv``: a fit of a few steps of every model family (tiny model and data,
   the families of the DDP tests) under the DDP strategy with one device.
4. ``gpu_autocast.csv``: every estimator of the registry x parameterization under
   autocast (float16 and bfloat16): forward + backward, float32 samples, finite
   gradients.

``--smoke`` shrinks every section to seconds on a CPU (autocast in bfloat16 only), to
check the script where no GPU is; its rows say ``cpu``.

    python benchmarks/gpu_rows.py --data-dir DIR            # on a GPU machine, ~6 min
    python benchmarks/gpu_rows.py --data-dir DIR --smoke    # anywhere, ~2 min
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _results
import torch
from _common import Preset
from _results import append_row
from estimator_speed import baseline_step, layer_step, speed_estimators, time_interleaved
from scaling import measure

from catlight.latent import Catnat, DiscreteLatent, Exact, GumbelSoftmax, Softmax

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tiny families and the estimator registry of the tests

from tests.latent.registry import EXAMPLES, PARAMETERIZATIONS  # noqa: E402
from tests.scale_families import FAMILIES, fit_args  # noqa: E402


def throughput(args: argparse.Namespace) -> None:
    """Section 1: VAE and NRI samples/s per precision, each row in a fresh process."""
    steps, warmup = (4, 1) if args.smoke else (300, 50)
    precisions = ["32-true", "bf16-mixed"] if args.smoke else ["32-true", "bf16-mixed", "16-mixed"]
    row_args = argparse.Namespace(
        data_dir=args.data_dir,
        batch_size=100,
        steps=steps,
        warmup=warmup,
        root_dir=args.root_dir,
        threads=torch.get_num_threads(),
    )
    for model in ["vae", "nri"]:
        row_args.model = model
        for precision in precisions:
            rate = measure(row_args, args.accelerator, 1, precision)
            print(f"throughput {model} {precision}: {rate:,.0f} samples/s", flush=True)
            append_row(
                "gpu_throughput",
                {"model": model, "device": args.device_name, "precision": precision,
                 "batch_size": 100, "steps": steps, "warmup": warmup,
                 "samples_per_s": round(rate)},
                ["model", "device", "precision", "batch_size", "steps", "warmup", "samples_per_s"],
            )  # fmt: skip


def layer_speed(args: argparse.Namespace) -> None:
    """Section 2: the layer timing table on the device, and compiled Catnat."""
    device = torch.device(args.device)
    batch, num_variables = (16, 4) if args.smoke else (1024, 20)
    preset = Preset(
        replicates=0, max_repeats=3 if args.smoke else 20, min_repeats=2, row_budget_s=1
    )
    generator = torch.Generator().manual_seed(0)
    for num_categories in [10, 64] if args.smoke else [10, 1024]:
        weights = torch.randn(num_variables, num_categories, generator=generator).to(device)
        logits = torch.randn(batch, num_variables, num_categories, generator=generator)
        steps = {
            "F.gumbel_softmax/-": baseline_step(
                logits.clone().to(device).requires_grad_(), weights, 1.0
            )
        }
        compile_seconds = {}
        for label, build in speed_estimators():
            if isinstance(build(), Exact):
                continue
            for name, parameterization in [("Softmax", Softmax), ("Catnat", Catnat)]:
                layer = DiscreteLatent(num_categories, parameterization(), build()).to(device)
                scores = logits[..., : layer.num_scores].clone().to(device).requires_grad_()
                steps[f"{label}/{name}"] = layer_step(layer, scores, weights)
        layer = DiscreteLatent(num_categories, Catnat(compile=True), GumbelSoftmax()).to(device)
        scores = logits[..., : layer.num_scores].clone().to(device).requires_grad_()
        steps["GumbelSoftmax/Catnat(compile=True)"] = layer_step(layer, scores, weights)
        start = time.perf_counter()
        steps["GumbelSoftmax/Catnat(compile=True)"]()
        compile_seconds["GumbelSoftmax/Catnat(compile=True)"] = time.perf_counter() - start
        timings = time_interleaved(steps, device, preset)
        for key, timing in timings.items():
            estimator, parameterization = key.split("/")
            print(f"layer K={num_categories} {key}: {1e3 * timing.seconds:.3f} ms", flush=True)
            append_row(
                "layer_speed",
                {"device": args.device_name, "batch": batch, "variables": num_variables,
                 "categories": num_categories, "estimator": estimator,
                 "parameterization": parameterization, "ms": round(1e3 * timing.seconds, 4),
                 "repeats": timing.repeats,
                 "compile_s": round(compile_seconds.get(key, 0.0), 2) or ""},
                ["device", "batch", "variables", "categories", "estimator", "parameterization",
                 "ms", "repeats", "compile_s"],
            )  # fmt: skip


def ddp_families(args: argparse.Namespace) -> None:
    """Section 3: each family fits a few steps under DDP with one device."""
    steps = 2 if args.smoke else 5
    for name, family in FAMILIES.items():
        with tempfile.TemporaryDirectory() as folder:
            command = [
                sys.executable, "-m", "catlight", "fit",
                *fit_args(family, Path(folder) / "data"),
                f"--trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
                "--trainer.devices=1", "--trainer.strategy=ddp",
                f"--trainer.max_steps={steps}", "--trainer.limit_val_batches=2",
                f"--trainer.default_root_dir={folder}/runs",
            ]  # fmt: skip
            start = time.perf_counter()
            result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - start
        status = "ok" if result.returncode == 0 else f"failed: {result.stderr[-300:]!r}"
        print(f"ddp {name}: {status} ({seconds:.0f} s)", flush=True)
        append_row(
            "gpu_ddp",
            {"family": name, "device": args.device_name, "steps": steps, "status": status,
             "seconds": round(seconds, 1)},
            ["family", "device", "steps", "status", "seconds"],
        )  # fmt: skip


def autocast_paths(args: argparse.Namespace) -> None:
    """Section 4: every estimator x parameterization under autocast on the device."""
    device = torch.device(args.device)
    dtypes = [torch.bfloat16] if args.smoke else [torch.float16, torch.bfloat16]
    for example in EXAMPLES:
        for param_name, parameterization in PARAMETERIZATIONS.items():
            for dtype in dtypes:
                layer = DiscreteLatent(5, parameterization(), example.build()).to(device)
                head = torch.nn.Linear(8, 3 * layer.num_scores).to(device)
                inputs = torch.randn(32, 8, device=device)
                try:
                    with torch.autocast(device.type, dtype=dtype):
                        out = layer(head(inputs).unflatten(-1, (3, layer.num_scores)))
                        cost = (out.z * torch.randn(5, device=device)).sum((-2, -1)) ** 2
                        loss = out.objective(cost).mean() + out.kl().sum(-1).mean()
                    loss.backward()
                    grads = [p.grad for p in head.parameters()]
                    finite = all(torch.isfinite(g).all() for g in grads)
                    status = "ok" if out.z.dtype == torch.float32 and finite else "non-finite"
                except Exception as error:  # a row records any failure
                    status = f"failed: {type(error).__name__}: {error}"[:300]
                label = example.id
                print(f"autocast {label} {param_name} {dtype}: {status}", flush=True)
                append_row(
                    "gpu_autocast",
                    {"estimator": label, "parameterization": param_name,
                     "dtype": str(dtype).removeprefix("torch."), "device": args.device_name,
                     "status": status},
                    ["estimator", "parameterization", "dtype", "device", "status"],
                )  # fmt: skip


SECTIONS = {
    "throughput": throughput,
    "layer": layer_speed,
    "ddp": ddp_families,
    "autocast": autocast_paths,
}


def main() -> None:
    """Run the sections in order (all by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--smoke", action="store_true", help="tiny rows on CPU")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--root-dir", default="/tmp/catlight_gpu_rows")
    parser.add_argument(
        "--results-dir", type=Path, help="where the CSV rows go (docs/results; --smoke: --root-dir)"
    )
    args = parser.parse_args()
    _results.RESULTS = args.results_dir or (
        Path(args.root_dir) / "results" if args.smoke else _results.RESULTS
    )
    if not args.smoke and not torch.cuda.is_available():
        parser.error("no GPU here: run with --smoke to check the script on CPU")
    args.device = "cpu" if args.smoke else "cuda"
    args.accelerator = "cpu" if args.smoke else "gpu"
    args.device_name = "cpu (smoke)" if args.smoke else torch.cuda.get_device_name()
    for section in args.sections:
        start = time.perf_counter()
        SECTIONS[section](args)
        print(f"== {section}: {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
