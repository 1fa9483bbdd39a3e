"""Semi-supervised classification with a categorical label latent (Kingma et al. 2014, M2)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix
from typing_extensions import override

from catlight.callbacks import writes_logs
from catlight.latent import DiscreteLatent, Exact, Softmax, categorical_kl
from catlight.tasks.base import BaseTask
from catlight.tasks.image_grid import reconstructions_and_samples
from catlight.tasks.likelihood import bernoulli_nll
from catlight.tasks.networks import Activation, activation_layer, mlp
from catlight.tasks.semisupervised.networks import Architecture, image_decoder, image_features

__all__ = ["SemiSupervisedVAE", "confusion_image"]


class SemiSupervisedVAE(BaseTask):
    r"""Kingma et al.'s M2: ``p(y) p(z) p(x|y,z)`` with ``q(y|x)`` and ``q(z|x,y)``.

    The label ``y`` is a :class:`~catlight.latent.DiscreteLatent` with one variable of
    K categories, so the estimator of the unlabeled bound comes from configuration:
    :class:`~catlight.latent.Exact` sums over all K labels (the classic M2, K decoder
    passes per image); a sampling estimator (Gumbel-Softmax, REINFORCE, ...) draws
    S labels (Jang et al. 2017, section 4.3). ``z`` is Gaussian with a standard
    normal prior, ``p(y)`` uniform and ``p(x|y,z)`` Bernoulli. Per example,

    - unlabeled: ``U(x) = E_q(y|x)[nll(x|y,z) + KL(q(z|x,y) || p(z))] + KL(q(y|x) || p(y))``
      (one reparameterised z per label sample, fed the possibly relaxed y); the
      expectation is ``out.objective`` of the ``(S, B)`` costs;
    - labeled: ``L(x, y) = nll(x|y,z) + KL(q(z|x,y) || p(z)) + log K``;
    - the loss is ``mean U + mean L + alpha * mean(-log q(y|x))`` over a batch of
      unlabeled and one of labeled images.

    Validation and test report the classification accuracy (overall and per class;
    a confusion-matrix image in TensorBoard) and both bounds, the unlabeled one by
    exact marginalisation whatever the training estimator. ``hp_metric`` is the
    validation accuracy.

    Args:
        latent: the label latent; its ``num_categories`` is the number of classes K.
            Default: 10 categories, Softmax, Exact.
        latent_size: dimension of the Gaussian z.
        hidden_size: width of the hidden layer of every network.
        architecture: ``"mlp"`` (one hidden layer per network, as in Kingma et al.)
            or ``"conv"`` (two stride-2 convolutions in front of the encoders, a
            mirrored decoder).
        activation: hidden activation.
        input_size: pixels per image (a square with a side divisible by 4 for
            ``"conv"``).
        alpha: weight of the labeled cross-entropy. None: Kingma et al.'s
            ``0.1 * N / N_labeled`` (their ``0.1 N`` on a sum over the data set, per
            labeled example here), with N and N_labeled read at fit time from the
            datamodule's ``num_train_examples`` and ``num_labeled``.
        learning_rate: Adam's learning rate (the optimizer unless ``optimizer`` is set).
        optimizer: builds the optimizer from the parameters (see :class:`BaseTask`).
        lr_scheduler: builds an LR scheduler from the optimizer; None: a constant rate.
        eval_chunk_size: labels decoded at once by the exact unlabeled bound of
            validation and test.

    Raises:
        ValueError: for a size below 1, a negative alpha, an unknown architecture or
            activation, or (at fit) ``alpha=None`` without a semi-supervised datamodule.

    Shapes:
        - training batch: ``(unlabeled (B_u, D), labeled (B_l, D), labels (B_l,))``
        - validation / test batch: ``(images (B, D), labels (B,))``; images in {0, 1}
    """

    monitor = "val/unlabeled_neg_elbo"

    def __init__(
        self,
        latent: DiscreteLatent | None = None,
        latent_size: int = 50,
        hidden_size: int = 500,
        architecture: Architecture = "mlp",
        activation: Activation = "relu",
        input_size: int = 784,
        alpha: float | None = None,
        learning_rate: float = 1e-3,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        eval_chunk_size: int = 10,
    ) -> None:
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler)
        for name, value in [
            ("latent_size", latent_size),
            ("hidden_size", hidden_size),
            ("input_size", input_size),
            ("eval_chunk_size", eval_chunk_size),
        ]:
            if value < 1:
                raise ValueError(f"SemiSupervisedVAE: {name} must be >= 1, got {value}")
        if alpha is not None and alpha < 0:
            raise ValueError(f"SemiSupervisedVAE: alpha must be >= 0 or None, got {alpha}")
        self.latent = latent if latent is not None else DiscreteLatent(10, Softmax(), Exact())
        self.num_classes = self.latent.num_categories
        self.latent_size = latent_size
        self.alpha = alpha
        self.classification_weight = alpha  # resolved at fit when alpha is None
        self.eval_chunk_size = eval_chunk_size

        classifier_features, width = image_features(architecture, input_size, activation)
        self.classifier = nn.Sequential(
            classifier_features, mlp([width, hidden_size, self.latent.num_scores], activation)
        )
        # q(z|x,y): one hidden layer over [features(x), y], written as two linear maps
        # so that the x part is computed once for all S labels of an example
        self.z_features, width = image_features(architecture, input_size, activation)
        self.z_from_x = nn.Linear(width, hidden_size)
        self.z_from_y = nn.Linear(self.num_classes, hidden_size, bias=False)
        self.z_activation = activation_layer(activation)
        self.z_out = nn.Linear(hidden_size, 2 * latent_size)
        self.decoder = image_decoder(
            architecture, self.num_classes + latent_size, hidden_size, input_size, activation
        )
        self.eval_metrics = nn.ModuleDict(
            {stage: _evaluation_metrics(self.num_classes) for stage in ("val", "test")}
        )

    def classify(self, images: Tensor) -> Tensor:
        """Scores of q(y|x). Shapes: ``(B, D) -> (B, 1, num_scores)``."""
        return self.classifier(images).unsqueeze(-2)

    def label_log_probs(self, images: Tensor) -> Tensor:
        """Log-probabilities of q(y|x). Shapes: ``(B, D) -> (B, K)`` float32."""
        return self.latent.log_probs(self.classify(images)).squeeze(-2)

    def neg_elbo_given_labels(self, images: Tensor, labels: Tensor) -> Tensor:
        """``nll(x|y,z) + KL(q(z|x,y) || N(0, I))`` with one reparameterised z per label.

        Args:
            images: binary images.
            labels: one-hot or relaxed labels, S per image.

        Returns:
            The cost of each label sample (without the ``log K`` of ``p(y)``).

        Shapes:
            - images: ``(B, D)``; labels: ``(S, B, K)``
            - output: ``(S, B)``
        """
        x_part = self.z_from_x(self.z_features(images))
        hidden = self.z_activation(x_part + self.z_from_y(labels))
        mean, log_var = self.z_out(hidden).float().chunk(2, -1)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)
        logits = self.decoder(torch.cat([labels.float(), z], -1))
        kl = 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(-1)
        return bernoulli_nll(logits, images) + kl

    def unlabeled_loss(self, images: Tensor) -> Tensor:
        """Surrogate of ``U(x)``; its value is the estimator's estimate of it.

        Shapes: ``(B, D) -> (B,)``.
        """
        out = self.latent(self.classify(images))
        cost = self.neg_elbo_given_labels(images, out.z.squeeze(-2))  # [S, B]
        return out.objective(cost) + out.kl().squeeze(-1)

    def labeled_neg_elbo(self, images: Tensor, labels: Tensor) -> Tensor:
        """``-ELBO(x, y) = L(x, y)`` of images with known labels.

        Raises:
            ValueError: if a label is not in ``[0, K)``.

        Shapes: images ``(B, D)``, labels ``(B,)`` int64 -> ``(B,)``.
        """
        if ((labels < 0) | (labels >= self.num_classes)).any():  # one device sync
            raise ValueError(
                f"SemiSupervisedVAE: labels must lie in [0, {self.num_classes}) (the latent's "
                f"num_categories), got values in [{int(labels.min())}, {int(labels.max())}]"
            )
        one_hot = F.one_hot(labels, self.num_classes).float().unsqueeze(0)
        return self.neg_elbo_given_labels(images, one_hot)[0] + math.log(self.num_classes)

    @torch.no_grad()
    def marginal_neg_elbo(self, images: Tensor, log_probs: Tensor | None = None) -> Tensor:
        """``U(x)`` by exact marginalisation over the K labels, ``eval_chunk_size`` at once.

        Args:
            images: binary images.
            log_probs: q(y|x) when already computed.

        Returns:
            The unlabeled negative ELBO (one z sample per label).

        Shapes: images ``(B, D)``, log_probs ``(B, K)`` -> ``(B,)``.
        """
        if log_probs is None:
            log_probs = self.label_log_probs(images)
        probs = log_probs.exp().T  # [K, B]
        expected = torch.zeros_like(probs[0])
        identity = torch.eye(self.num_classes, device=images.device)
        for start in range(0, self.num_classes, self.eval_chunk_size):
            rows = identity[start : start + self.eval_chunk_size]
            labels = rows.unsqueeze(1).expand(-1, images.shape[0], -1)
            cost = self.neg_elbo_given_labels(images, labels)
            expected += (probs[start : start + rows.shape[0]] * cost).sum(0)
        return expected + categorical_kl(log_probs)

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> Tensor:
        """Decoder means given the predicted label and the mean of q(z|x,y). ``(B, D)``."""
        labels = F.one_hot(self.label_log_probs(images).argmax(-1), self.num_classes).float()
        hidden = self.z_activation(self.z_from_x(self.z_features(images)) + self.z_from_y(labels))
        mean = self.z_out(hidden).chunk(2, -1)[0]
        return torch.sigmoid(self.decoder(torch.cat([labels, mean.to(labels.dtype)], -1)))

    @torch.no_grad()
    def sample(self, num_images: int) -> Tensor:
        """Decoder means for labels ``0, 1, ..., K - 1, 0, ...`` and z from the prior.

        Shapes: ``-> (num_images, D)``.
        """
        classes = torch.arange(num_images, device=self.device) % self.num_classes
        labels = F.one_hot(classes, self.num_classes).float()
        z = torch.randn(num_images, self.latent_size, device=self.device)
        return torch.sigmoid(self.decoder(torch.cat([labels, z], -1)))

    def setup(self, stage: str) -> None:
        """Resolve ``alpha=None`` to ``0.1 * N / N_labeled`` from the datamodule (fit only)."""
        if stage != "fit" or self.alpha is not None:
            return
        data = self.trainer.datamodule
        if not (hasattr(data, "num_labeled") and hasattr(data, "num_train_examples")):
            raise ValueError(
                "SemiSupervisedVAE: alpha=None takes 0.1 * N / N_labeled from the "
                "datamodule's num_train_examples and num_labeled, but the datamodule "
                f"({type(data).__name__}) lacks them; pass alpha explicitly"
            )
        self.classification_weight = 0.1 * data.num_train_examples / data.num_labeled

    def training_terms(self, batch: tuple[Tensor, Tensor, Tensor]) -> dict[str, Tensor]:
        """The training loss of a batch and its three parts, scalars.

        Keys: ``loss`` = ``unlabeled_neg_elbo + labeled_neg_elbo + alpha *
        cross_entropy``, and those three (batch means).

        Raises:
            ValueError: if ``alpha`` was None and not resolved at fit setup.
        """
        if self.classification_weight is None:
            raise ValueError("SemiSupervisedVAE: alpha is None and was not resolved at fit setup")
        unlabeled, labeled, labels = batch
        unlabeled_loss = self.unlabeled_loss(unlabeled).mean()
        labeled_neg_elbo = self.labeled_neg_elbo(labeled, labels).mean()
        cross_entropy = F.nll_loss(self.label_log_probs(labeled), labels)
        loss = unlabeled_loss + labeled_neg_elbo + self.classification_weight * cross_entropy
        return {
            "loss": loss,
            "unlabeled_neg_elbo": unlabeled_loss,
            "labeled_neg_elbo": labeled_neg_elbo,
            "cross_entropy": cross_entropy,
        }

    @override
    def training_loss(self, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """The ``loss`` of :meth:`training_terms`."""
        return self.training_terms(batch)["loss"]

    @override
    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> Tensor:
        terms = self.training_terms(batch)
        if writes_logs(self.trainer, self.global_step + 1):
            self.log("train/loss", terms["loss"].detach(), prog_bar=True)
            for name in ("unlabeled_neg_elbo", "labeled_neg_elbo", "cross_entropy"):
                self.log(f"train/{name}", terms[name].detach())
        return terms["loss"]

    @override
    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    @override
    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        """The most probable label of each image, ``(B,)`` int64."""
        return self.label_log_probs(batch[0]).argmax(-1)

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        images, labels = batch
        metrics = self.eval_metrics[stage]
        log_probs = self.label_log_probs(images)
        predictions = log_probs.argmax(-1)
        for name in ("accuracy", "class_accuracy", "confusion"):
            metrics[name].update(predictions, labels)
        metrics["labeled_neg_elbo"].update(self.labeled_neg_elbo(images, labels))
        metrics["unlabeled_neg_elbo"].update(self.marginal_neg_elbo(images, log_probs))
        self.log(f"{stage}/accuracy", metrics["accuracy"], prog_bar=True)
        self.log(f"{stage}/labeled_neg_elbo", metrics["labeled_neg_elbo"])
        self.log(f"{stage}/unlabeled_neg_elbo", metrics["unlabeled_neg_elbo"])

    @override
    def on_validation_epoch_end(self) -> None:
        self.log("hp_metric", self.eval_metrics["val"]["accuracy"].compute())
        self._log_classes("val")

    @override
    def on_test_epoch_end(self) -> None:
        self._log_classes("test")

    def _log_classes(self, stage: str) -> None:
        """Per-class accuracy of the classes present."""
        metrics = self.eval_metrics[stage]
        confusion = metrics["confusion"].compute()  # every rank: the compute syncs
        per_class = metrics["class_accuracy"].compute()
        present = confusion.sum(1) > 0
        self.log_dict(
            {f"{stage}_class_accuracy/{k}": per_class[k] for k in present.nonzero()[:, 0].tolist()}
        )
        metrics["confusion"].reset()
        metrics["class_accuracy"].reset()

    @override
    def images(self, batch: tuple[Tensor, ...], stage: str) -> dict[str, Tensor]:
        """Reconstructions, samples of each class in turn, and the stage's confusion matrix."""
        images = reconstructions_and_samples(stage, batch[0], self.reconstruct, self.sample)
        confusion = self.eval_metrics[stage]["confusion"].compute()  # every rank: it syncs
        images[f"{stage}/confusion_matrix"] = confusion_image(confusion)
        return images


def _evaluation_metrics(num_classes: int) -> nn.ModuleDict:
    """The torchmetrics of one evaluation stage (they sync across DDP ranks)."""
    return nn.ModuleDict(
        {
            "accuracy": MulticlassAccuracy(num_classes, average="micro"),
            "class_accuracy": MulticlassAccuracy(num_classes, average="none"),
            "confusion": MulticlassConfusionMatrix(num_classes),
            "labeled_neg_elbo": MeanMetric(),
            "unlabeled_neg_elbo": MeanMetric(),
        }
    )


def confusion_image(confusion: Tensor, cell_size: int = 8) -> Tensor:
    """A grey-level picture of a confusion matrix, each row divided by its total.

    Row i (true class i) shows which fraction of class i went to each predicted class
    (column): white is all of it, black none. Rows without examples stay black.

    Shapes:
        - confusion: ``(K, K)`` counts, rows = true classes
        - output: ``(1, K * cell_size, K * cell_size)`` float32 in [0, 1]
    """
    counts = confusion.detach().float().cpu()
    fractions = counts / counts.sum(1, keepdim=True).clamp(min=1.0)
    cells = fractions.repeat_interleave(cell_size, 0).repeat_interleave(cell_size, 1)
    return cells.unsqueeze(0)
