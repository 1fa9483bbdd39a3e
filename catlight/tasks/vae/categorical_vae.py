"""Categorical VAE on binary images (Jang et al. 2017, section 4.2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from typing_extensions import override

from catlight.callbacks import writes_logs
from catlight.latent import (
    DiscreteLatent,
    GumbelSoftmax,
    Softmax,
    categorical_kl,
    sample_categories,
)
from catlight.tasks.base import BaseTask
from catlight.tasks.image_grid import reconstructions_and_samples
from catlight.tasks.likelihood import bernoulli_nll, log_mean_exp
from catlight.tasks.networks import Activation, mlp

__all__ = ["CategoricalVAE"]


class CategoricalVAE(BaseTask):
    r"""A VAE with N categorical latent variables of K categories and a Bernoulli decoder.

    ``x -> encoder -> scores (B, N, num_scores) -> DiscreteLatent -> z (S, B, N, K) ->
    decoder -> logits (S, B, D)``. The loss is the negative ELBO
    ``out.objective(nll) + KL(q(z|x) || p(z))`` with the analytic KL, so any estimator
    of the latent trains the same model code.

    Evaluation uses discrete samples from q, whatever the training estimator: the
    validation and test ``neg_elbo`` is the negative ELBO of the discrete model with
    one sample, and ``test/nll`` is the importance-weighted bound on ``-log p(x)``
    with ``eval_num_samples`` samples, computed ``eval_chunk_size`` samples at a time.

    Args:
        latent: the latent layer (its ``num_categories`` is K). Default: 10 categories,
            Softmax, GumbelSoftmax(tau=1).
        num_latents: N, the number of categorical variables.
        input_size: D, pixels per image.
        encoder_sizes: hidden widths of the encoder MLP (empty: linear).
        decoder_sizes: hidden widths of the decoder MLP (empty: linear).
        activation: hidden activation.
        prior: ``"uniform"`` or ``"learned"`` (one learned categorical per variable).
        learning_rate: Adam's learning rate (the optimizer unless ``optimizer`` is set).
        optimizer: builds the optimizer from the parameters (see :class:`BaseTask`).
        lr_scheduler: builds an LR scheduler from the optimizer; None: a constant rate.
        eval_num_samples: importance samples of the test bound (1000 in the papers).
        eval_chunk_size: importance samples evaluated at once.

    Shapes:
        - batch: ``(images,)`` or ``(images, labels)``, images ``(B, D)`` in {0, 1}
    """

    monitor = "val/neg_elbo"

    def __init__(
        self,
        latent: DiscreteLatent | None = None,
        num_latents: int = 20,
        input_size: int = 784,
        encoder_sizes: Sequence[int] = (512, 256),
        decoder_sizes: Sequence[int] = (256, 512),
        activation: Activation = "relu",
        prior: Literal["uniform", "learned"] = "uniform",
        learning_rate: float = 1e-3,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        eval_num_samples: int = 1000,
        eval_chunk_size: int = 100,
    ) -> None:
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler)
        if prior not in ("uniform", "learned"):
            raise ValueError(f"CategoricalVAE: prior must be 'uniform' or 'learned', got {prior!r}")
        for name, value in [
            ("num_latents", num_latents),
            ("eval_num_samples", eval_num_samples),
            ("eval_chunk_size", eval_chunk_size),
        ]:
            if value < 1:
                raise ValueError(f"CategoricalVAE: {name} must be >= 1, got {value}")
        self.latent = (
            latent if latent is not None else DiscreteLatent(10, Softmax(), GumbelSoftmax())
        )
        self.num_latents = num_latents
        self.num_categories = self.latent.num_categories
        self.eval_num_samples = eval_num_samples
        self.eval_chunk_size = eval_chunk_size
        latent_size = num_latents * self.num_categories
        self.encoder = mlp(
            [input_size, *encoder_sizes, num_latents * self.latent.num_scores], activation
        )
        self.decoder = mlp([latent_size, *decoder_sizes, input_size], activation)
        prior_logits = torch.zeros(num_latents, self.num_categories)
        if prior == "learned":
            self.prior_logits = nn.Parameter(prior_logits)
        else:
            self.register_buffer("prior_logits", prior_logits)

    def encode(self, images: Tensor) -> Tensor:
        """Scores of q(z|x). Shapes: ``(B, D) -> (B, N, num_scores)``."""
        return self.encoder(images).unflatten(-1, (self.num_latents, self.latent.num_scores))

    def decode(self, z: Tensor) -> Tensor:
        """Bernoulli logits of p(x|z). Shapes: ``(*S, B, N, K) -> (*S, B, D)``."""
        return self.decoder(z.flatten(-2))

    def prior_log_probs(self) -> Tensor:
        """Log-probabilities of the prior, shape ``(N, K)``."""
        return torch.log_softmax(self.prior_logits.float(), -1)

    def loss(self, images: Tensor) -> Tensor:
        """Training loss per example ``(B,)``; its value is the negative ELBO estimate."""
        out = self.latent(self.encode(images))
        nll = bernoulli_nll(self.decode(out.z), images)  # [S, B]
        kl = out.kl(self.prior_log_probs()).sum(-1)  # [B]
        return out.objective(nll) + kl

    def discrete_neg_elbo(self, images: Tensor) -> Tensor:
        """One-sample negative ELBO of the discrete model (one-hot z from q). ``(B,)``."""
        log_probs = self.latent.log_probs(self.encode(images))
        z = sample_categories(log_probs, 1)
        nll = bernoulli_nll(self.decode(z), images)[0]
        kl = categorical_kl(log_probs, self.prior_log_probs()).sum(-1)
        return nll + kl

    @torch.no_grad()
    def importance_weighted_nll(self, images: Tensor, num_samples: int | None = None) -> Tensor:
        """``-log (1/M) sum_m p(x, z_m) / q(z_m|x)``, z_m ~ q: an upper bound on -log p(x).

        Shapes: ``(B, D) -> (B,)``.
        """
        num_samples = num_samples or self.eval_num_samples
        log_probs = self.latent.log_probs(self.encode(images))
        prior = self.prior_log_probs()
        log_weights = []
        for start in range(0, num_samples, self.eval_chunk_size):
            z = sample_categories(log_probs, min(self.eval_chunk_size, num_samples - start))
            log_joint = -bernoulli_nll(self.decode(z), images) + (z * prior).sum((-2, -1))
            log_weights.append(log_joint - (z * log_probs).sum((-2, -1)))
        return -log_mean_exp(torch.cat(log_weights), 0)

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> Tensor:
        """Decoder means for one discrete sample of q(z|x). Shapes: ``(B, D) -> (B, D)``."""
        log_probs = self.latent.log_probs(self.encode(images))
        return torch.sigmoid(self.decode(sample_categories(log_probs, 1))[0])

    @torch.no_grad()
    def sample(self, num_images: int) -> Tensor:
        """Decoder means for z from the prior. Shapes: ``-> (num_images, D)``."""
        prior = self.prior_log_probs().expand(num_images, -1, -1)
        return torch.sigmoid(self.decode(sample_categories(prior, 1))[0])

    @override
    def training_loss(self, batch: tuple[Tensor, ...]) -> Tensor:
        """The mean negative ELBO estimate of the batch's images (a scalar)."""
        return self.loss(batch[0]).mean()

    @override
    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        loss = self.training_loss(batch)
        if writes_logs(self.trainer, self.global_step + 1):
            self.log("train/neg_elbo", loss.detach(), prog_bar=True)
        return loss

    @override
    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        neg_elbo = self.discrete_neg_elbo(batch[0]).mean()
        self.log("val/neg_elbo", neg_elbo, prog_bar=True, sync_dist=True)
        self.log("hp_metric", neg_elbo, sync_dist=True)

    @override
    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        images = batch[0]
        self.log("test/neg_elbo", self.discrete_neg_elbo(images).mean(), sync_dist=True)
        self.log("test/nll", self.importance_weighted_nll(images).mean(), sync_dist=True)

    @override
    def images(self, batch: tuple[Tensor, ...], stage: str) -> dict[str, Tensor]:
        """Inputs beside their reconstructions, and samples from the prior."""
        return reconstructions_and_samples(stage, batch[0], self.reconstruct, self.sample)
