"""Why the SBN needs SGD: validation NLL of the two-layer SBN early in training, by optimizer.

The two-layer structured output predictor (392-(20x10)-(20x10)-392) starts on a saddle
where the decoder predicts the bottom half's marginal (about 109 nats) and the top half
is ignored. This trains it for ``--steps`` steps with each optimizer and estimator and
prints the validation NLL (``--val-samples`` samples, first 1,000 validation images)
every 500 steps: with Adam (lr 1e-3) the model stays on the saddle for thousands of
steps; with SGD and momentum 0.9 (the Gumbel-Softmax paper's optimizer) it leaves within
a few hundred.

    python benchmarks/sbn_saddle.py --data-dir DIR --steps 3000 --threads 1
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from catlight.latent import ESTIMATORS, Catnat, DiscreteLatent, Exact, Softmax
from catlight.tasks.vae import StructuredOutputPrediction

# the registry's estimators with its settings, but a fixed temperature: the saddle is
# the optimizer's, not the annealing's; Exact cannot enumerate 10^20 configurations
FIXED_TAU = {"anneal_rate": 0.0}
CHOICES = [name for name, entry in ESTIMATORS.items() if entry.cls is not Exact]
OPTIMIZERS = {
    "adam 1e-3": lambda params: torch.optim.Adam(params, lr=1e-3),
    "sgd 0.1, momentum 0.9": lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
}


def train(estimator: str, parameterization: str, optimizer: str, args: argparse.Namespace):
    """Validation NLL every 500 steps of one run."""
    torch.manual_seed(args.seed)
    data = np.load(args.data_dir / "binarized_mnist.npz")
    images = torch.from_numpy(data["train"]).float()
    valid = torch.from_numpy(data["valid"][:1000]).float()
    entry = ESTIMATORS[estimator]
    settings = FIXED_TAU if "anneal_rate" in entry.settings else {}
    latent = DiscreteLatent(
        10, Softmax() if parameterization == "softmax" else Catnat(), entry.build(**settings)
    )
    model = StructuredOutputPrediction(latent, num_layers=2)
    opt = OPTIMIZERS[optimizer](model.parameters())
    generator = torch.Generator().manual_seed(args.seed)
    curve = []
    for step in range(1, args.steps + 1):
        batch = images[torch.randint(0, len(images), (100,), generator=generator)]
        loss = model.loss(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        for latent in model.latents:  # the estimators' state (REINFORCE's baseline)
            latent.step()
        if step % 500 == 0:
            curve.append(model.sample_nll(valid, args.val_samples).mean().item())
    return curve


def main() -> None:
    """Print one line per estimator x parameterization x optimizer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--val-samples", type=int, default=20)
    parser.add_argument("--estimators", nargs="+", choices=CHOICES, default=["st_gs"])
    parser.add_argument("--parameterizations", nargs="+", default=["softmax", "catnat"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"`python benchmarks/sbn_saddle.py {shlex.join(sys.argv[1:])}`\n")
    steps = list(range(500, args.steps + 1, 500))
    print("| estimator | param | optimizer | " + " | ".join(f"step {s}" for s in steps) + " |")
    print("|---|---|---|" + "---|" * len(steps))
    for estimator in args.estimators:
        for parameterization in args.parameterizations:
            for optimizer in OPTIMIZERS:
                start = time.perf_counter()
                curve = train(estimator, parameterization, optimizer, args)
                cells = " | ".join(f"{v:.1f}" for v in curve)
                print(f"| {estimator} | {parameterization} | {optimizer} | {cells} |", flush=True)
                print(f"  ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    print(f"\nValidation NLL ({args.val_samples} samples, 1,000 validation images), nats.")


if __name__ == "__main__":
    main()
