"""How far the relaxed estimators' gradients on M2's classifier are from the exact gradient.

M2's unlabeled bound is ``U(x) = sum_y q(y|x) L(x, y) + KL(q(y|x) || uniform)``, where
``L(x, y)`` is the label's cost (the -ELBO of the Gaussian-z model given y). For a
trained ``SemiSupervisedVAE`` and the first ``--num-images`` test images, the script
computes the gradient of ``U`` with respect to the classifier's scores in three ways:

- ``exact``: from the K per-label costs, each the mean of ``--cost-draws`` draws of z;
- ``gs`` and ``st_gs``: the mean of ``--num-samples`` GumbelSoftmax and
  StraightThroughGumbelSoftmax estimates at temperature ``--tau`` (one-sample
  estimates averaged, so what is left is the estimator's bias, not its noise).

Per checkpoint and gradient it reports the median over images of the cosine between the
estimator's mean gradient and the exact one (over all images whose exact gradient is not
zero, and over the uncertain ones, where ``max_y q(y|x) < 0.9``: a confident ``q``
barely moves), and the share of the uncertain images for which the label whose
probability a small gradient step raises most is the true label; on the confident
images, the share for which a gradient step lowers the most probable label's score
(makes ``q`` less confident). The exact gradient is
computed in float64, since a confident ``q`` underflows float32's probabilities of the
other labels (a ``q`` confident beyond float64 has no gradient and is left out of the
first cosine). Beside them: the accuracy of ``q(y|x)`` and of the generative classifier
``argmin_y L(x, y)`` on these images, and the median spread ``max_y L - min_y L`` of the
label costs. Rows go to ``docs/results/m2_gradient_bias.csv``.

    python benchmarks/m2_gradient_bias.py --data-dir DIR --checkpoints CKPT [CKPT ...] \
        --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _common import markdown
from _results import append_row
from _semisupervised_runs import build
from lightning.pytorch import LightningDataModule
from torch import Tensor

from catlight.latent import (
    DiscreteLatent,
    GumbelSoftmax,
    StraightThroughGumbelSoftmax,
    categorical_kl,
)
from catlight.tasks.semisupervised import SemiSupervisedVAE

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = "m2_gradient_bias"
COLUMNS = [
    "checkpoint",
    "gradient",
    "cosine_with_exact",
    "cosine_uncertain",
    "uncertain_favours_true_label",
    "confident_lowers_top_label",
    "q_accuracy",
    "generative_accuracy",
    "label_cost_spread",
    "uncertain_images",
    "num_images",
    "num_samples",
    "tau",
    "seconds",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="folder with the IDX files")
    parser.add_argument("--checkpoints", required=True, nargs="+", type=Path)
    parser.add_argument("--data-set", choices=["fashion_mnist", "mnist"], default="fashion_mnist")
    parser.add_argument("--parameterization", choices=["softmax", "catnat"], default="softmax")
    parser.add_argument(
        "--binarization", choices=["dynamic", "none", "threshold", "fixed"], default="none"
    )
    parser.add_argument("--num-images", type=int, default=200, help="first test images")
    parser.add_argument("--num-samples", type=int, default=512, help="estimates averaged")
    parser.add_argument("--cost-draws", type=int, default=256, help="z draws per label cost")
    parser.add_argument("--tau", type=float, default=0.5, help="the estimators' temperature")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    for name in ("num_images", "num_samples", "cost_draws"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.tau <= 0:
        parser.error(f"--tau must be > 0, got {args.tau}")
    return args


def load_model(
    args: argparse.Namespace, checkpoint: Path
) -> tuple[SemiSupervisedVAE, LightningDataModule]:
    """The config's model with the checkpoint's weights, and its data module."""
    config_name = f"exact_{args.parameterization}.yaml"
    config = ROOT / "configs" / "semisupervised" / args.data_set / config_name
    cli = build(config, args, ["--data.init_args.binarization", args.binarization])
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    # the training estimator's buffers (temperature, step count) are not the model's
    state = {k: v for k, v in state.items() if not k.startswith("latent.estimator.")}
    try:
        cli.model.load_state_dict(state)
    except RuntimeError as error:
        raise SystemExit(
            f"{checkpoint}: its weights do not fit the {args.parameterization} M2 of "
            f"configs/semisupervised/{args.data_set} (pass the --parameterization it was "
            f"trained with):\n{error}"
        ) from error
    return cli.model.eval(), cli.datamodule


@torch.no_grad()
def label_costs(model: SemiSupervisedVAE, images: Tensor, draws: int) -> Tensor:
    """``L(x, y)`` for every label, averaged over z draws. Shapes: ``(B, D) -> (B, K)``."""
    num_images, num_classes = images.shape[0], model.num_classes
    one_hot = torch.eye(num_classes).unsqueeze(1).expand(num_classes, num_images, num_classes)
    total = sum(model.neg_elbo_given_labels(images, one_hot) for _ in range(draws))
    return (total / draws).T


def exact_gradient(model: SemiSupervisedVAE, scores: Tensor, costs: Tensor) -> Tensor:
    """``dU/dscores`` from the per-label costs.

    Shapes: scores ``(B, 1, n)``, costs ``(B, K)`` -> ``(B, n)``.
    """
    scores = scores.detach().double().requires_grad_()
    log_probs = model.latent.log_probs(scores).squeeze(-2)
    bound = (log_probs.exp() * costs.double()).sum(-1) + categorical_kl(log_probs)
    (gradient,) = torch.autograd.grad(bound.sum(), scores)
    return gradient.squeeze(-2)


def mean_estimate(
    model: SemiSupervisedVAE, latent: DiscreteLatent, images: Tensor, scores: Tensor
) -> Tensor:
    """The mean of the latent's ``num_samples`` one-sample estimates of ``dU/dscores``.

    Shapes: images ``(B, D)``, scores ``(B, 1, n)`` -> ``(B, n)``.
    """
    scores = scores.detach().requires_grad_()
    out = latent(scores)
    cost = model.neg_elbo_given_labels(images, out.z.squeeze(-2))  # [S, B]
    bound = out.objective(cost) + out.kl().squeeze(-1)
    (gradient,) = torch.autograd.grad(bound.sum(), scores)
    return gradient.squeeze(-2).double()


def checkpoint_rows(args: argparse.Namespace, checkpoint: Path) -> list[dict]:
    """The three gradients' rows for one checkpoint."""
    start = time.perf_counter()
    model, data = load_model(args, checkpoint)
    data.setup("test")
    images, labels = [], []
    for batch_images, batch_labels in data.test_dataloader():
        images.append(batch_images)
        labels.append(batch_labels)
        if sum(len(x) for x in labels) >= args.num_images:
            break
    images = torch.cat(images)[: args.num_images]
    labels = torch.cat(labels)[: args.num_images]
    with torch.no_grad():
        scores = model.classify(images)
    costs = label_costs(model, images, args.cost_draws)
    exact = exact_gradient(model, scores, costs)
    parameterization = model.latent.parameterization
    estimators = {
        "gs": GumbelSoftmax(tau=args.tau, num_samples=args.num_samples),
        "st_gs": StraightThroughGumbelSoftmax(tau=args.tau, num_samples=args.num_samples),
    }
    gradients = {"exact": exact}
    for name, estimator in estimators.items():
        latent = DiscreteLatent(model.num_classes, parameterization, estimator)
        gradients[name] = mean_estimate(model, latent, images, scores)
    probs = model.label_log_probs(images).double().exp()
    uncertain = probs.max(-1).values < 0.9
    moving = exact.norm(dim=-1) > 0  # a saturated q has no exact gradient at all
    common = {
        "checkpoint": f"{checkpoint.parent.parent.name}/{checkpoint.name}",
        "q_accuracy": f"{(probs.argmax(-1) == labels).float().mean():.3f}",
        "generative_accuracy": f"{(costs.argmin(-1) == labels).float().mean():.3f}",
        "label_cost_spread": f"{(costs.max(-1).values - costs.min(-1).values).median():.1f}",
        "uncertain_images": int(uncertain.sum()),
        "num_images": len(images),
        "num_samples": args.num_samples,
        "tau": args.tau,
    }
    rows = []
    for name, gradient in gradients.items():
        log_slopes = _log_prob_slopes(model, scores, gradient)
        raised = (probs * log_slopes).argmax(-1)
        top_slope = log_slopes.gather(-1, probs.argmax(-1, keepdim=True)).squeeze(-1)
        cosine = (_unit(gradient) * _unit(exact)).sum(-1)  # not F.cosine_similarity: its
        # eps would zero the cosine of a confident q's tiny gradients
        rows.append(
            {
                **common,
                "gradient": name,
                "cosine_with_exact": f"{cosine[moving].median():.3f}" if moving.any() else "",
                "cosine_uncertain": f"{cosine[uncertain].median():.3f}" if uncertain.any() else "",
                "confident_lowers_top_label": (
                    f"{(top_slope < 0)[~uncertain].float().mean():.3f}"
                    if (~uncertain).any()
                    else ""
                ),
                "uncertain_favours_true_label": (
                    f"{(raised == labels)[uncertain].float().mean():.3f}" if uncertain.any() else ""
                ),
                "seconds": f"{time.perf_counter() - start:.0f}",
            }
        )
    return rows


def _unit(vectors: Tensor) -> Tensor:
    """Each row divided by its norm, a zero row left zero. Shapes: ``(B, n) -> (B, n)``.

    Rows are scaled by their largest entry first: the squares of a confident q's tiny
    gradients would underflow.
    """
    tiny = torch.finfo(vectors.dtype).tiny
    scaled = vectors / vectors.abs().amax(-1, keepdim=True).clamp_min(tiny)
    return scaled / scaled.norm(dim=-1, keepdim=True).clamp_min(tiny)


def _log_prob_slopes(model: SemiSupervisedVAE, scores: Tensor, gradient: Tensor) -> Tensor:
    """How fast each label's log-probability moves along ``-gradient`` (a descent step).

    The directional derivative, in float64: a confident ``q``'s log-probabilities
    barely move, so a finite step would round their change to zero.

    Shapes: scores ``(B, 1, n)``, gradient ``(B, n)`` -> ``(B, K)``.
    """
    scores = scores.detach().double().requires_grad_()
    log_probs = model.latent.log_probs(scores).squeeze(-2)
    slopes = []
    for label in range(log_probs.shape[-1]):
        (slope,) = torch.autograd.grad(log_probs[:, label].sum(), scores, retain_graph=True)
        slopes.append(-(slope.squeeze(-2) * gradient).sum(-1))
    return torch.stack(slopes, -1)


def main(argv: list[str] | None = None) -> None:
    """Every checkpoint's rows: printed as a table and appended to the CSV."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    body = []
    for checkpoint in args.checkpoints:
        torch.manual_seed(args.seed)  # a checkpoint's rows do not depend on its place
        for row in checkpoint_rows(args, checkpoint):
            append_row(BENCHMARK, row, COLUMNS)
            body.append([str(row[c]) for c in COLUMNS[:10]])
    print(markdown(COLUMNS[:10], body))


if __name__ == "__main__":
    main()
