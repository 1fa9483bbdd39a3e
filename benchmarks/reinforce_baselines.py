"""Where one-sample REINFORCE's gradient variance comes from on the 20 x 10 VAE.

For a trained ``CategoricalVAE`` and a batch of test images, the script draws
``--num-samples`` latent samples per image, computes each sample's cost (the decoder's
negative log-likelihood, the ``f`` of the score-function estimator) and its score
``grad log q(z|x)`` with respect to the encoder's scores, and from them the variance of
the per-image gradient estimate ``(f - b) grad log q(z|x)`` for several baselines ``b``:

- ``none``: ``b = 0``;
- ``moving average``: the constant the checkpoint's REINFORCE carried (the mean cost
  over recent steps, the same for every image), or the batch's mean cost when the
  checkpoint was trained with another estimator;
- ``per-image mean``: the mean cost of the image's other samples (the first half of
  the samples sets the baseline, the second half is scored), the best a baseline that
  depends on the image alone can do;
- ``learned``: a small network (one hidden layer of 100 tanh units) from the encoder's
  log-probabilities to the cost, fitted by least squares for ``--baseline-steps`` steps
  on training images (one sample each), as a learned input-dependent baseline would be
  (NVIL, Mnih & Gregor 2014), but fitted to the frozen model;
- ``leave-one-out, 4 samples``: ``LeaveOneOut(4)``, each estimate from 4 fresh samples.

It also splits the costs' spread into the spread of the per-image means across images
(which only an image-dependent baseline removes) and the spread within an image. Each
row of ``docs/results/reinforce_baselines.csv`` is one baseline: the variance (trace
of the covariance of the estimate, averaged over images), the decoder passes an estimate
costs, and the variance times those passes (the figure to compare at equal cost).

    python benchmarks/reinforce_baselines.py --data-dir DIR --checkpoint CKPT --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _common import PARAMETERIZATIONS_BY_NAME, markdown
from _results import append_row
from torch import Tensor, nn

from catlight.data import BinarizedMNISTDataModule
from catlight.latent import DiscreteLatent, sample_categories
from catlight.tasks.likelihood import bernoulli_nll
from catlight.tasks.vae import CategoricalVAE

BENCHMARK = "reinforce_baselines"
COLUMNS = [
    "checkpoint",
    "baseline",
    "decoder_passes",
    "variance",
    "variance_times_passes",
    "num_images",
    "num_samples",
    "between_image_std",
    "within_image_std",
    "seconds",
]
LOO_SAMPLES = 4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="folder with binarized_mnist.npz")
    parser.add_argument("--checkpoint", required=True, type=Path, help="a CategoricalVAE .ckpt")
    parser.add_argument(
        "--parameterization",
        choices=sorted(PARAMETERIZATIONS_BY_NAME),
        default="softmax",
        help="the checkpoint's parameterization",
    )
    parser.add_argument("--num-images", type=int, default=100, help="first test images")
    parser.add_argument("--num-samples", type=int, default=512, help="samples per image")
    parser.add_argument(
        "--baseline-steps", type=int, default=1500, help="Adam steps fitting the learned baseline"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    if args.num_images < 2:
        parser.error("--num-images must be at least 2 (the spread across images needs two)")
    if args.baseline_steps < 1:
        parser.error("--baseline-steps must be at least 1")
    if args.num_samples < 4 * LOO_SAMPLES or args.num_samples % (2 * LOO_SAMPLES):
        parser.error(f"--num-samples must be a multiple of {2 * LOO_SAMPLES}, at least 16")
    return args


def load_vae(checkpoint: Path, parameterization: str) -> tuple[CategoricalVAE, float | None]:
    """The 20 x 10 VAE of Table 1 with the checkpoint's weights, and its REINFORCE baseline.

    The weights are loaded into a freshly built model (784-512-256 MLPs), so checkpoints
    written by older versions of catlight, whose class paths differ, load too. The
    baseline is the moving average the checkpoint's REINFORCE carried, or None when it
    was trained with another estimator.

    Raises:
        ValueError: when the checkpoint's weights do not fit that model.
    """
    latent = DiscreteLatent(10, PARAMETERIZATIONS_BY_NAME[parameterization]())
    model = CategoricalVAE(latent, num_latents=20)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    # the estimator's buffers (a temperature, a baseline) depend on what it was trained with
    baseline = state.get("latent.estimator.baseline_value")
    weights = {key: value for key, value in state.items() if not key.startswith("latent.")}
    not_this_model = f"{checkpoint} is not a 20 x 10 {parameterization} CategoricalVAE"
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as error:  # a shape differs
        raise ValueError(f"{not_this_model} (check --parameterization): {error}") from None
    missing = [key for key in missing if not key.startswith("latent.")]
    if missing or unexpected:
        raise ValueError(f"{not_this_model}: missing {missing}, unexpected {unexpected}")
    return model.eval(), None if baseline is None else float(baseline)


@torch.no_grad()
def sample_costs(model: CategoricalVAE, images: Tensor, samples: Tensor) -> Tensor:
    """Decoder negative log-likelihood of each sample. ``(M, B, N, K) -> (M, B)``."""
    return torch.cat([bernoulli_nll(model.decode(chunk), images) for chunk in samples.split(64)])


def sample_scores(model: CategoricalVAE, scores: Tensor, samples: Tensor) -> Tensor:
    """``grad log q(z|x)`` with respect to the encoder's scores, flattened per image.

    Shapes:
        - scores: ``(B, N, num_scores)``
        - samples: ``(M, B, N, K)`` one-hot
        - output: ``(M, B, N * num_scores)``
    """
    scores = scores.detach().requires_grad_(True)
    log_probs = model.latent.log_probs(scores)
    sample_log_probs = (samples * log_probs).sum((-2, -1))  # [M, B]
    rows = []
    for sample_log_prob in sample_log_probs:
        (grad,) = torch.autograd.grad(sample_log_prob.sum(), scores, retain_graph=True)
        rows.append(grad.flatten(1))
    return torch.stack(rows)


def estimate_variance(estimates: Tensor) -> float:
    """Trace of the covariance over dimension 0, averaged over images. ``(E, B, P)``."""
    return estimates.var(0).sum(-1).mean().item()


def fit_learned_baseline(
    model: CategoricalVAE, data: BinarizedMNISTDataModule, steps: int, offset: float
) -> nn.Module:
    """A network from log q(z|x) ``(B, N, K)`` to the cost ``(B,)``, fitted on training images.

    Each step draws one sample per image of a training batch and takes an Adam step
    (rate 1e-3) on the squared error; ``offset`` (the moving average) starts the output.
    """
    num_inputs = model.num_latents * model.latent.num_categories
    network = nn.Sequential(
        nn.Flatten(-2), nn.Linear(num_inputs, 100), nn.Tanh(), nn.Linear(100, 1)
    )
    with torch.no_grad():
        network[-1].bias.fill_(offset)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    step = 0
    while step < steps:
        for batch in data.train_dataloader():
            images = batch[0].flatten(1).float()
            with torch.no_grad():
                log_probs = model.latent.log_probs(model.encode(images))
                costs = sample_costs(model, images, sample_categories(log_probs, 1))[0]
            loss = (network(log_probs).squeeze(-1) - costs).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step == steps:
                break
    return network.eval()


def baseline_rows(
    costs: Tensor, score_vectors: Tensor, moving_average: float, learned: Tensor
) -> list[tuple[str, int, float]]:
    """(baseline, decoder passes, variance) for each baseline of the module docstring.

    Shapes:
        - costs: ``(M, B)``
        - score_vectors: ``(M, B, P)``
        - learned: ``(B,)``, the learned baseline's value for each image
    """
    half = costs.shape[0] // 2
    scored_costs, scored_vectors = costs[half:], score_vectors[half:]
    per_image_mean = costs[:half].mean(0)  # [B]
    rows = []
    for name, baseline in (
        ("none", torch.zeros(())),
        ("moving average", torch.tensor(moving_average)),
        ("per-image mean", per_image_mean),
        ("learned", learned),
    ):
        estimates = (scored_costs - baseline).unsqueeze(-1) * scored_vectors
        rows.append((name, 1, estimate_variance(estimates)))
    groups_costs = costs.unflatten(0, (-1, LOO_SAMPLES))  # [G, n, B]
    groups_vectors = score_vectors.unflatten(0, (-1, LOO_SAMPLES))
    centered = groups_costs - groups_costs.mean(1, keepdim=True)
    loo = (centered.unsqueeze(-1) * groups_vectors).sum(1) / (LOO_SAMPLES - 1)
    rows.append((f"leave-one-out, {LOO_SAMPLES} samples", LOO_SAMPLES, estimate_variance(loo)))
    return rows


def main(argv: list[str] | None = None) -> None:
    """Load the checkpoint, draw the samples, print the table and append the CSV rows."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    model, moving_average = load_vae(args.checkpoint, args.parameterization)
    data = BinarizedMNISTDataModule(data_dir=args.data_dir, batch_size=args.num_images)
    data.setup("fit")
    data.setup("test")
    images = next(iter(data.test_dataloader()))[0].flatten(1).float()
    with torch.no_grad():
        scores = model.encode(images)
        log_probs = model.latent.log_probs(scores)
        samples = sample_categories(log_probs, args.num_samples)
    costs = sample_costs(model, images, samples)
    score_vectors = sample_scores(model, scores, samples)
    if moving_average is None:
        moving_average = costs.mean().item()
    network = fit_learned_baseline(model, data, args.baseline_steps, moving_average)
    with torch.no_grad():
        learned = network(log_probs).squeeze(-1)
    rows = baseline_rows(costs, score_vectors, moving_average, learned)
    seconds = time.perf_counter() - start
    spread = {
        "between_image_std": f"{costs.mean(0).std().item():.2f}",
        "within_image_std": f"{costs.std(0).mean().item():.2f}",
    }
    label = args.checkpoint.parent.parent.name or args.checkpoint.name
    body = []
    for name, passes, variance in rows:
        row = {
            "checkpoint": label,
            "baseline": name,
            "decoder_passes": passes,
            "variance": f"{variance:.4g}",
            "variance_times_passes": f"{variance * passes:.4g}",
            "num_images": args.num_images,
            "num_samples": args.num_samples,
            **spread,
            "seconds": f"{seconds:.0f}",
        }
        append_row(BENCHMARK, row, COLUMNS)
        body.append([name, str(passes), row["variance"], row["variance_times_passes"]])
    print(
        f"{label}: cost spread across images {spread['between_image_std']} nats (std of the "
        f"per-image means), within an image {spread['within_image_std']} nats (mean std); "
        f"moving-average baseline {moving_average:.2f}, mean cost {costs.mean().item():.2f}"
    )
    print(markdown(["baseline", "decoder passes", "variance", "variance x passes"], body))


if __name__ == "__main__":
    main()
