"""Why M2 does not beat a supervised classifier on Fashion-MNIST: where q(y|x) is pulled.

Trains M2 (Exact marginalisation, the configs' MLP networks, 100 labels) and the
supervised-only classifier with a plain loop for a few thousand steps on a subset,
and reports at each evaluation:

- the test accuracy of ``q(y|x)`` (what the benchmark table reports);
- the accuracy of the generative model used as a classifier: ``argmin_y`` of the
  label's cost ``-ELBO(x, y)`` (mean of 4 draws of z), which is where the unlabeled
  bound pulls ``q(y|x)``: for Exact its minimiser over ``q`` is ``q(y|x) ∝ exp(-cost_y)``;
- the median spread of that cost over the 10 labels (does the decoder use y?);
- the gradient norms that the unlabeled bound and ``alpha`` x the labeled cross-entropy
  send to the classifier's output layer, at the parameters of the previous evaluation.

Variants change one setting each (see ``VARIANTS``). Single-threaded, a few minutes
per variant on 20,000 training images:

    python benchmarks/m2_diagnosis.py --data-dir DIR --variants supervised m2 --threads 1
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import torch
import torch.nn.functional as F

from catlight.latent import DiscreteLatent, Exact, Softmax
from catlight.tasks.semisupervised import SemiSupervisedFashionMNISTDataModule, SemiSupervisedVAE

# variant -> settings it changes from the configs' (z of 50, Adam 1e-3, dynamic
# binarization, per-batch means with labeled weight 1 and alpha = 0.1 N / N_labeled)
VARIANTS: dict[str, dict] = {
    "supervised": {"supervised": True},
    "m2": {},
    "m2_z10": {"latent_size": 10},
    "m2_lr3e-4": {"learning_rate": 3e-4},
    # Kingma et al.'s sum over the data set, per unlabeled example: the labeled terms
    # weigh N_labeled / N_unlabeled, so alpha = 0.1 N becomes ~0.1 N_labeled
    "m2_sum_weights": {"labeled_weight": "ratio", "alpha": "ratio"},
    "supervised_grey": {"supervised": True, "binarization": "none"},
    "m2_grey": {"binarization": "none"},
}


def run_variant(name: str, args: argparse.Namespace) -> list[str]:
    """Train one variant; its last evaluation as table cells."""
    settings = VARIANTS[name]
    torch.manual_seed(args.seed)
    data = SemiSupervisedFashionMNISTDataModule(
        str(args.data_dir),
        download=False,
        train_size=args.train_size,
        binarization=settings.get("binarization", "dynamic"),
        seed=args.seed,
    )
    data.prepare_data()
    data.setup("fit")
    model = SemiSupervisedVAE(
        DiscreteLatent(10, Softmax(), Exact()), latent_size=settings.get("latent_size", 50)
    )
    labeled_share = data.num_labeled / (data.num_train_examples - data.num_labeled)
    alpha = 0.1 * data.num_train_examples / data.num_labeled
    labeled_weight = 1.0
    if settings.get("alpha") == "ratio":
        alpha, labeled_weight = 0.1 * data.num_train_examples * labeled_share, labeled_share
    supervised = settings.get("supervised", False)
    parameters = model.classifier.parameters() if supervised else model.parameters()
    optimizer = torch.optim.Adam(parameters, lr=settings.get("learning_rate", 1e-3))
    test_set = tuple(split[: args.test_size] for split in data.splits["test"])
    output_layer = model.classifier[-1][-1].weight
    loader = data.train_dataloader()
    batches, step, start, cells, grads = iter(loader), 0, time.perf_counter(), [], ["—"] * 3
    while step < args.steps:
        batch = next(batches, None)
        if batch is None:
            batches = iter(loader)
            continue
        unlabeled, labeled, targets = batch
        if supervised:
            loss = F.nll_loss(model.label_log_probs(labeled), targets)
        else:
            unlabeled_loss = model.unlabeled_loss(unlabeled).mean()
            labeled_loss = model.labeled_neg_elbo(labeled, targets).mean()
            cross_entropy = F.nll_loss(model.label_log_probs(labeled), targets)
            loss = unlabeled_loss + labeled_weight * labeled_loss + alpha * cross_entropy
            if step % args.eval_every == 0:  # at the parameters the last evaluation saw
                grads = [str(step)] + [
                    f"{torch.autograd.grad(term, output_layer, retain_graph=True)[0].norm():.2g}"
                    for term in (unlabeled_loss, alpha * cross_entropy)
                ]
                print(f"  gradients at step {' | '.join(grads)}", file=sys.stderr, flush=True)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % args.eval_every == 0 or step == args.steps:
            images, labels = data.to_float(test_set)  # binarized afresh, as in training
            cells = [name, str(step), *_evaluate(model, images, labels, supervised), *grads]
            cells.append(f"{time.perf_counter() - start:.0f}")
            print(" | ".join(cells), file=sys.stderr, flush=True)
    return cells


@torch.no_grad()
def _evaluate(
    model: SemiSupervisedVAE, images: torch.Tensor, labels: torch.Tensor, supervised: bool
) -> list[str]:
    """Accuracy of q(y|x); of argmin_y -ELBO(x, y); median cost spread over labels."""
    accuracy = (model.label_log_probs(images).argmax(-1) == labels).float().mean()
    if supervised:
        return [f"{100 * accuracy:.1f}", "—", "—"]
    one_hot = torch.eye(model.num_classes).unsqueeze(1).expand(-1, images.shape[0], -1)
    costs = torch.stack([model.neg_elbo_given_labels(images, one_hot) for _ in range(4)]).mean(0)
    generative = (costs.argmin(0) == labels).float().mean()
    spread = (costs.max(0).values - costs.min(0).values).median()
    return [f"{100 * accuracy:.1f}", f"{100 * generative:.1f}", f"{spread:.0f}"]


def main() -> None:
    """Run the variants and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with fashion-mnist/ IDX files")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"`python benchmarks/m2_diagnosis.py {shlex.join(sys.argv[1:])}`\n")
    print(
        "| variant | steps | q(y\\|x) acc. % | argmin_y -ELBO acc. % | cost spread (nats) "
        "| gradients at step | from U | from alpha CE | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.variants:
        print(f"| {' | '.join(run_variant(name, args))} |", flush=True)


if __name__ == "__main__":
    main()
