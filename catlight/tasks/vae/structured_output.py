"""Structured output prediction: the bottom half of an image from its top half."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from typing_extensions import override

from catlight.latent import DiscreteLatent, GumbelSoftmax, Softmax, sample_categories
from catlight.tasks.base import BaseTask
from catlight.tasks.image_grid import reconstructions_and_samples
from catlight.tasks.likelihood import bernoulli_nll, log_mean_exp
from catlight.tasks.networks import Activation, mlp

__all__ = ["StructuredOutputPrediction"]


class StructuredOutputPrediction(BaseTask):
    r"""A stochastic network ``x_top -> z_1 -> ... -> z_L -> x_bottom`` (Jang et al. 2017).

    Each of the ``num_layers`` stochastic layers has N categorical variables of K
    categories (the SBN task of the Gumbel-Softmax paper: 392-(20x10)-(20x10)-392).
    Training minimises ``E_z[-log p(x_bottom | z)]`` with the latent's estimator; the
    samples of layer l + 1 are drawn for every sample of layer l, so each layer's
    ``objective`` reduces its own sample dimension. The metric is the m-sample
    estimate ``-log (1/m) sum_i p(x_bottom | z_i)`` with ancestral one-hot samples
    (``val_num_samples`` for validation, ``eval_num_samples`` = 1000 for test).

    The two-layer model starts on a saddle: the decoder first learns the marginal of
    the bottom half (about 109 nats) while the top half reaches it only through two
    nearly uniform stochastic layers. Adam normalises each parameter's step, so the
    noise of the estimators' gradients moves the weights as much as their weak
    common signal and training can sit there for thousands of steps; SGD with
    momentum 0.9 (the Gumbel-Softmax paper's optimizer) steps in proportion to the
    gradient and leaves the saddle within a few hundred steps. The configs use it.

    Args:
        latent: the latent layer of every stochastic layer (deep-copied per layer).
            Default: 10 categories, Softmax, GumbelSoftmax(tau=1).
        num_latents: N per stochastic layer.
        num_layers: number of stochastic layers (>= 1).
        image_size: pixels per image; the top half is the input, the bottom the target.
        hidden_sizes: hidden widths of each deterministic map between layers (empty:
            linear, as in the paper).
        activation: hidden activation.
        learning_rate: Adam's learning rate (when ``optimizer`` is None).
        optimizer: builds the optimizer from the parameters, e.g. in YAML
            ``{class_path: torch.optim.SGD, init_args: {lr: 0.1, momentum: 0.9}}``
            (the configs' choice: see below). None: Adam with ``learning_rate``.
        lr_scheduler: builds an LR scheduler from the optimizer; None: a constant rate.
        val_num_samples: m for validation.
        eval_num_samples: m for test.
        eval_chunk_size: samples evaluated at once.
    """

    monitor = "val/nll"

    def __init__(
        self,
        latent: DiscreteLatent | None = None,
        num_latents: int = 20,
        num_layers: int = 2,
        image_size: int = 784,
        hidden_sizes: Sequence[int] = (),
        activation: Activation = "relu",
        learning_rate: float = 1e-3,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        val_num_samples: int = 100,
        eval_num_samples: int = 1000,
        eval_chunk_size: int = 100,
    ) -> None:
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler)
        if num_layers < 1 or num_latents < 1:
            raise ValueError(
                "StructuredOutputPrediction: num_layers and num_latents must be >= 1, got "
                f"{num_layers} and {num_latents}"
            )
        if image_size % 2:
            raise ValueError(
                f"StructuredOutputPrediction: image_size must be even, got {image_size}"
            )
        latent = latent if latent is not None else DiscreteLatent(10, Softmax(), GumbelSoftmax())
        self.latents = nn.ModuleList(
            [latent] + [copy.deepcopy(latent) for _ in range(num_layers - 1)]
        )
        self.num_latents = num_latents
        self.half = image_size // 2
        self.val_num_samples = val_num_samples
        self.eval_num_samples = eval_num_samples
        self.eval_chunk_size = eval_chunk_size
        latent_size = num_latents * latent.num_categories
        score_size = num_latents * latent.num_scores
        inputs = [self.half] + [latent_size] * (num_layers - 1)
        self.score_nets = nn.ModuleList(
            mlp([width, *hidden_sizes, score_size], activation) for width in inputs
        )
        self.decoder = mlp([latent_size, *hidden_sizes, self.half], activation)

    def split(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Top and bottom halves. Shapes: ``(B, D) -> (B, D/2), (B, D/2)``."""
        return images[..., : self.half], images[..., self.half :]

    def _scores(self, layer: int, inputs: Tensor) -> Tensor:
        scores = self.score_nets[layer](inputs)
        return scores.unflatten(-1, (self.num_latents, self.latents[layer].num_scores))

    def loss(self, images: Tensor) -> Tensor:
        """Surrogate of ``E_z[-log p(x_bottom | z)]`` per example, ``(B,)``."""
        top, bottom = self.split(images)
        outputs, inputs = [], top
        for layer, latent in enumerate(self.latents):
            outputs.append(latent(self._scores(layer, inputs)))
            inputs = outputs[-1].z.flatten(-2)  # [S_l, ..., S_1, B, N * K]
        cost = bernoulli_nll(self.decoder(inputs), bottom)  # [S_L, ..., S_1, B]
        for out in reversed(outputs):
            cost = out.objective(cost)
        return cost

    @torch.no_grad()
    def sample_nll(self, images: Tensor, num_samples: int) -> Tensor:
        """``-log (1/m) sum_i p(x_bottom | z_i)`` with ancestral one-hot samples. ``(B,)``."""
        top, bottom = self.split(images)
        log_likelihoods = []
        for start in range(0, num_samples, self.eval_chunk_size):
            count = min(self.eval_chunk_size, num_samples - start)
            logits = self.decoder(self._ancestral_sample(top, count))
            log_likelihoods.append(-bernoulli_nll(logits, bottom))
        return -log_mean_exp(torch.cat(log_likelihoods), 0)

    def _ancestral_sample(self, top: Tensor, num_samples: int) -> Tensor:
        """One-hot path samples, flattened: ``(B, D/2) -> (m, B, N * K)``.

        The first layer's scores are computed once and sampled m times; each later
        layer draws one sample per path.
        """
        log_probs = self.latents[0].log_probs(self._scores(0, top))  # [B, N, K]
        paths = sample_categories(log_probs, num_samples).flatten(-2)  # [m, B, N * K]
        for layer in range(1, len(self.latents)):
            log_probs = self.latents[layer].log_probs(self._scores(layer, paths))
            paths = sample_categories(log_probs, 1)[0].flatten(-2)
        return paths

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> Tensor:
        """The top half followed by a predicted bottom half (pixel means). ``(B, D)``."""
        top, _ = self.split(images)
        bottom = torch.sigmoid(self.decoder(self._ancestral_sample(top, 1))[0])
        return torch.cat([top.float(), bottom], -1)

    @override
    def training_loss(self, batch: tuple[Tensor, ...]) -> Tensor:
        """The mean of :meth:`loss` over the batch's images (a scalar)."""
        return self.loss(batch[0]).mean()

    @override
    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        loss = self.training_loss(batch)
        self.log("train/loss", loss.detach(), prog_bar=True)
        return loss

    @override
    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        nll = self.sample_nll(batch[0], self.val_num_samples).mean()
        self.log("val/nll", nll, prog_bar=True, sync_dist=True)
        self.log("hp_metric", nll, sync_dist=True)

    @override
    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self.log(
            "test/nll", self.sample_nll(batch[0], self.eval_num_samples).mean(), sync_dist=True
        )

    @override
    def images(self, batch: tuple[Tensor, ...], stage: str) -> dict[str, Tensor]:
        """Inputs beside their predictions: the top half and a sampled bottom half."""
        return reconstructions_and_samples(stage, batch[0], self.reconstruct)
