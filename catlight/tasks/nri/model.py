"""Neural Relational Inference (Kipf et al., ICML 2018) with any DiscreteLatent estimator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from torch.optim.lr_scheduler import StepLR
from torchmetrics.classification import BinaryAUROC
from typing_extensions import override

from catlight.callbacks import writes_logs
from catlight.latent import DiscreteLatent, GumbelSoftmax, Softmax
from catlight.latent.structured import StructuredLatent
from catlight.tasks.base import BaseTask
from catlight.tasks.nri.decoder import MLPDecoder, RNNDecoder
from catlight.tasks.nri.edge_latents import EdgeLatent, EdgePosterior
from catlight.tasks.nri.edge_latents import edge_latent as make_edge_latent
from catlight.tasks.nri.encoder import CNNEncoder, MLPEncoder
from catlight.tasks.nri.graph import fully_connected_edge_index
from catlight.tasks.nri.images import graph_comparison_image, trajectory_image
from catlight.tasks.nri.metrics import HorizonMSE, PermutationAccuracy

__all__ = ["NRI", "gaussian_nll"]


def gaussian_nll(predictions: Tensor, targets: Tensor, variance: float) -> Tensor:
    r"""``sum (predictions - targets)^2 / (2 variance)`` per sample and simulation.

    The negative log-likelihood of the targets under Gaussians of fixed variance
    centred on the predictions, without the constant ``log(2 pi variance) / 2`` per
    coordinate; summed over particles, steps and features, in float32.

    Shapes:
        - predictions: ``(S, B, N, T, D)``; targets: ``(B, N, T, D)`` (broadcast)
        - output: ``(S, B)``
    """
    squared_errors = (predictions.float() - targets.float()).square()
    return squared_errors.sum((-3, -2, -1)) / (2 * variance)


class NRI(BaseTask):
    r"""Infer the interaction graph of a particle system while learning its dynamics.

    ``trajectories (B, N, T, D) -> encoder -> edge-type scores (B, E, num_scores) ->
    latent -> z (S, B, E, K) -> decoder -> predictions (S, B, N, T-1, D)`` over
    the ``E = N (N - 1)`` ordered pairs of particles. The loss per simulation is the
    negative ELBO divided by the number of particles N (the paper's normalisation):
    ``out.objective(nll) / N + KL(q(z|x) || p(z)) / N``, with ``nll`` the Gaussian
    negative log-likelihood (fixed ``variance``, constant dropped) of steps ``1 .. T-1``
    predicted with teacher forcing every ``prediction_steps`` steps. Any estimator and
    parameterization of the latent trains the same code.

    The latent is a :class:`~catlight.latent.DiscreteLatent` (independent types per
    ordered pair) or a :class:`~catlight.latent.structured.StructuredLatent` over a
    :class:`~catlight.latent.structured.SpanningTree` of the N particles (one tree per
    simulation, K = 2: type 1 on both directions of the tree's edges, a uniform prior
    over trees; best with ``skip_first``). :attr:`edge_latent` adapts either one
    (:mod:`catlight.tasks.nri.edge_latents`, which also defines the tree's ELBO).

    Priors: ``"uniform"`` over the K types, or ``"sparse"``: probability
    ``sparse_prior_first`` for type 0 (meant as "no interaction", best with
    ``skip_first``) and the rest split evenly (K = 4 gives the paper's
    ``[0.91, 0.03, 0.03, 0.03]``). A spanning-tree latent takes ``"uniform"`` only.

    Evaluation decodes the most probable type of each edge (a one-hot ``z``; for a
    tree, the maximum spanning tree of the scores), whatever the training estimator.
    Validation logs ``val/nll`` (per particle, of the decoded mode rather than a
    sample, so ``val/nll + val/kl`` is not the negative ELBO) and ``val/kl`` (per
    particle; a Monte Carlo estimate for a tree),
    ``val/mse`` (teacher forcing every ``prediction_steps``) and ``val/mse_1step``,
    ``val/edge_acc`` (type k means true type k) and ``val/edge_acc_best`` (the best
    relabelling of the types over the whole validation set, since types are
    unidentifiable); ``hp_metric`` is ``val/edge_acc_best``. Test follows the paper:
    the encoder reads the first ``num_timesteps`` steps of the (longer) test
    trajectories; from the first step it did not read, the decoder predicts
    ``max(test_horizons)`` steps ahead, restarting from the ground truth after each
    such window, and ``test/mse_{h}step`` is the MSE at horizon h (normalised units);
    ``test/edge_acc`` and ``test/edge_acc_best`` as in validation. With K = 2 and
    ``skip_first`` (type 0 means "no edge", so the types are identified), validation
    and test also log ``val/edge_auroc`` and ``test/edge_auroc``: the area under the
    ROC curve of edge existence, each ordered pair scored by ``q(type != 0)`` against
    the true ``type != 0`` over the whole data set (as Löwe et al. 2022 report it);
    other settings log no AUROC. TensorBoard gets
    images of the true vs inferred graphs and of true vs predicted paths (an open-loop
    roll-out) of validation and test simulations (:meth:`images`).

    Args:
        latent: the edge-type latent: a DiscreteLatent (its ``num_categories`` is K)
            or a StructuredLatent over ``SpanningTree(num_nodes=N)`` (K = 2). Default:
            K = 2, Softmax, GumbelSoftmax(tau=0.5), as in the paper.
        num_timesteps: T, the steps of the training trajectories (the data's
            ``train_steps``); the MLP encoder's input size, and the steps the encoder
            reads at test time.
        num_dims: D, features per particle and step.
        encoder: ``"mlp"`` or ``"cnn"`` (see :mod:`catlight.tasks.nri.encoder`).
        decoder: ``"mlp"`` or ``"rnn"`` (see :mod:`catlight.tasks.nri.decoder`).
        encoder_hidden_size: width of the encoder.
        decoder_hidden_size: width of the decoder.
        dropout: dropout probability in encoder and decoder.
        skip_first: edge type 0 is "no interaction" (the decoder sends no message).
        prior: ``"uniform"`` or ``"sparse"`` (DiscreteLatent only).
        sparse_prior_first: the sparse prior's probability of type 0, in (0, 1).
        prediction_steps: P, ground truth is fed every P steps during training.
        variance: the decoder's fixed output variance.
        learning_rate: Adam's learning rate (the optimizer unless ``optimizer`` is set).
        lr_decay_epochs: epochs between two decays of the learning rate (the default
            scheduler, unless ``lr_scheduler`` is set).
        lr_decay_gamma: factor of each decay.
        optimizer: builds the optimizer from the parameters (see :class:`BaseTask`).
        lr_scheduler: builds an LR scheduler from the optimizer; None: the decay above.
        test_horizons: prediction horizons logged at test time.
        num_image_examples: validation simulations shown in the graph image.

    Raises:
        ValueError: for an unknown option or an out-of-range setting.

    Shapes:
        - batch: ``(trajectories, edges)``, trajectories ``(B, N, T, D)`` float,
          edges ``(B, E)`` integer types in the order of
          :func:`~catlight.tasks.nri.data.fully_connected_edge_index`
    """

    monitor = "val/nll"

    def __init__(
        self,
        latent: DiscreteLatent | StructuredLatent | None = None,
        num_timesteps: int = 49,
        num_dims: int = 4,
        encoder: Literal["mlp", "cnn"] = "mlp",
        decoder: Literal["mlp", "rnn"] = "mlp",
        encoder_hidden_size: int = 256,
        decoder_hidden_size: int = 256,
        dropout: float = 0.0,
        skip_first: bool = False,
        prior: Literal["uniform", "sparse"] = "uniform",
        sparse_prior_first: float = 0.91,
        prediction_steps: int = 10,
        variance: float = 5e-5,
        learning_rate: float = 5e-4,
        lr_decay_epochs: int = 200,
        lr_decay_gamma: float = 0.5,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        test_horizons: Sequence[int] = (1, 10, 20),
        num_image_examples: int = 4,
    ) -> None:
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler)
        _check_options(encoder=encoder, decoder=decoder, prior=prior)
        for name, value, minimum in [
            ("num_timesteps", num_timesteps, 2),
            ("num_dims", num_dims, 1),
            ("prediction_steps", prediction_steps, 1),
            ("lr_decay_epochs", lr_decay_epochs, 1),
            ("num_image_examples", num_image_examples, 1),
            ("the smallest of test_horizons", min(test_horizons, default=0), 1),
        ]:
            if value < minimum:
                raise ValueError(f"NRI: {name} must be >= {minimum}, got {value}")
        if not 0 < sparse_prior_first < 1 or variance <= 0 or not 0 <= dropout < 1:
            raise ValueError(
                "NRI: need 0 < sparse_prior_first < 1, variance > 0 and 0 <= dropout < 1, got "
                f"{sparse_prior_first}, {variance} and {dropout}"
            )
        if latent is None:
            latent = DiscreteLatent(2, Softmax(), GumbelSoftmax(tau=0.5))
        self.edge_latent: EdgeLatent = make_edge_latent(latent, prior, sparse_prior_first)
        num_types = self.edge_latent.num_types
        num_scores = self.edge_latent.num_scores
        self.num_timesteps = num_timesteps
        self.prediction_steps = prediction_steps
        self.variance = variance
        self.lr_decay_epochs = lr_decay_epochs
        self.lr_decay_gamma = lr_decay_gamma
        self.test_horizons = sorted(set(test_horizons))
        self.num_image_examples = num_image_examples
        if encoder == "mlp":
            self.encoder = MLPEncoder(
                num_timesteps, num_dims, encoder_hidden_size, num_scores, dropout
            )
        else:
            self.encoder = CNNEncoder(num_dims, encoder_hidden_size, num_scores, dropout)
        decoder_class = MLPDecoder if decoder == "mlp" else RNNDecoder
        self.decoder = decoder_class(num_dims, num_types, decoder_hidden_size, skip_first, dropout)
        self.val_accuracy = PermutationAccuracy(num_types)
        self.test_accuracy = PermutationAccuracy(num_types)
        self.test_horizon_mse = HorizonMSE(self.test_horizons[-1])
        ranks_existence = num_types == 2 and skip_first
        self.val_edge_auroc = BinaryAUROC() if ranks_existence else None
        self.test_edge_auroc = BinaryAUROC() if ranks_existence else None
        self._edge_indices: dict[int, Tensor] = {}

    @property
    def latent(self) -> DiscreteLatent | StructuredLatent:
        """The configured latent (held by :attr:`edge_latent`)."""
        return self.edge_latent.latent

    def edge_index(self, num_particles: int) -> Tensor:
        """The fully connected graph of N particles on the model's device, ``(2, E)``."""
        cached = self._edge_indices.get(num_particles)
        if cached is None or cached.device != self.device:
            cached = fully_connected_edge_index(num_particles).to(self.device)
            self._edge_indices[num_particles] = cached
        return cached

    def encode(self, trajectories: Tensor) -> Tensor:
        """Edge-type scores. Shapes: ``(B, N, T, D) -> (B, E, num_scores)``."""
        return self.encoder(trajectories, self.edge_index(trajectories.shape[1]))

    def decode(self, trajectories: Tensor, edge_weights: Tensor, prediction_steps: int) -> Tensor:
        """Predictions of steps ``1 .. T-1``, teacher-forced every ``prediction_steps``.

        Shapes: ``(B, N, T, D), (S, B, E, K) -> (S, B, N, T - 1, D)``.
        """
        edge_index = self.edge_index(trajectories.shape[1])
        return self.decoder(trajectories, edge_weights, edge_index, prediction_steps)

    def posterior(self, trajectories: Tensor) -> EdgePosterior:
        """``q(edges | the first num_timesteps steps)``: marginals, mode and KL.

        Shapes: ``(B, N, T, D) ->`` log_probs and mode ``(B, E, K)``, kl ``(B,)``.
        """
        return self.edge_latent.posterior(self.encode(trajectories[:, :, : self.num_timesteps]))

    def forward(self, trajectories: Tensor) -> Tensor:
        """Edge-type log-probabilities from the first ``num_timesteps`` steps.

        Shapes: ``(B, N, T, D) -> (B, E, K)``.
        """
        return self.posterior(trajectories).log_probs

    def loss(self, trajectories: Tensor) -> tuple[Tensor, Tensor]:
        """Training loss per simulation and its KL part, both ``(B,)``.

        The value of ``loss - kl`` is the estimate of the expected NLL per particle.
        """
        num_particles = trajectories.shape[1]
        out = self.edge_latent(self.encode(trajectories))
        predictions = self.decode(trajectories, out.z, self.prediction_steps)
        nll = gaussian_nll(predictions, trajectories[:, :, 1:], self.variance) / num_particles
        return out.negative_elbo(nll, kl_weight=1 / num_particles)

    def most_probable_edges(self, trajectories: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probabilities ``(B, E, K)`` and the one-hot mode ``(1, B, E, K)`` of q."""
        posterior = self.posterior(trajectories)
        return posterior.log_probs, posterior.mode.unsqueeze(0)

    @override
    def training_loss(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """The mean of :meth:`loss` over the batch's simulations (a scalar)."""
        return self.loss(batch[0])[0].mean()

    @override
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        trajectories = batch[0]
        loss, kl = self.loss(trajectories)
        loss, kl = loss.mean(), kl.mean()
        if writes_logs(self.trainer, self.global_step + 1):
            size = trajectories.shape[0]
            self.log("train/loss", loss.detach(), prog_bar=True, batch_size=size)
            self.log("train/nll", (loss - kl).detach(), batch_size=size)
            self.log("train/kl", kl.detach(), batch_size=size)
        return loss

    @override
    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        trajectories, edges = batch
        batch_size, num_particles = trajectories.shape[:2]
        posterior = self.posterior(trajectories)
        mode = posterior.mode.unsqueeze(0)
        targets = trajectories[:, :, 1:]
        predictions = self.decode(trajectories, mode, self.prediction_steps)
        one_step = self.decode(trajectories, mode, 1)
        metrics = {
            "val/nll": gaussian_nll(predictions, targets, self.variance) / num_particles,
            "val/kl": posterior.kl / num_particles,
            "val/mse": (predictions[0] - targets).square().mean((1, 2, 3)),
            "val/mse_1step": (one_step[0] - targets).square().mean((1, 2, 3)),
        }
        for name, values in metrics.items():
            self.log(name, values.mean(), sync_dist=True, batch_size=batch_size)
        self.val_accuracy.update(mode[0].argmax(-1), edges)
        _update_existence(self.val_edge_auroc, posterior.log_probs, edges)

    @override
    def on_validation_epoch_end(self) -> None:
        best = self.val_accuracy.compute()
        self.log("val/edge_acc", self.val_accuracy.compute_identity())
        self.log("val/edge_acc_best", best, prog_bar=True)
        self.log("hp_metric", best)
        self.val_accuracy.reset()
        self._log_existence("val", self.val_edge_auroc)

    def _log_existence(self, stage: str, auroc: BinaryAUROC | None) -> None:
        """Log and reset ``<stage>/edge_auroc`` when the model scores edge existence."""
        if auroc is not None:
            self.log(f"{stage}/edge_auroc", auroc.compute())
            auroc.reset()

    @override
    def images(self, batch: tuple[Tensor, Tensor], stage: str) -> dict[str, Tensor]:
        """Graphs (true vs expected type) and paths (true vs open-loop roll-out).

        The graphs of the first ``num_image_examples`` simulations of the batch; the
        paths of the first one over the ``num_timesteps`` steps the encoder reads,
        predicted from its first position alone.
        """
        examples = slice(0, self.num_image_examples)
        trajectories = batch[0][examples, :, : self.num_timesteps]
        edges = batch[1][examples]
        log_probs = self.posterior(trajectories).log_probs
        scale = log_probs.shape[-1] - 1
        types = torch.arange(log_probs.shape[-1], device=log_probs.device, dtype=torch.float32)
        expected_types = (log_probs.exp() * types).sum(-1)
        edge_index = self.edge_index(trajectories.shape[1])
        graphs = graph_comparison_image(edges / scale, expected_types / scale, edge_index)
        first = trajectories[:1]
        _, mode = self.most_probable_edges(first)
        roll_out = self.decode(first, mode, first.shape[2])[0, 0]  # [N, T - 1, D]
        predicted = torch.cat([first[0, :, :1], roll_out], 1)
        paths = trajectory_image(first[0, ..., :2], predicted[..., :2])
        return {
            f"{stage}/graphs_true_vs_inferred": graphs,
            f"{stage}/paths_true_vs_predicted": paths,
        }

    @override
    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        trajectories, edges = batch
        horizon = self.test_horizons[-1]
        future = trajectories[:, :, self.num_timesteps :]
        if future.shape[2] < horizon + 1:
            raise ValueError(
                f"NRI: test trajectories of {trajectories.shape[2]} steps leave "
                f"{future.shape[2]} after the encoder's num_timesteps = {self.num_timesteps}; "
                f"test_horizons up to {horizon} need at least {horizon + 1}: lower "
                "test_horizons or simulate longer test trajectories"
            )
        log_probs, mode = self.most_probable_edges(trajectories)
        self.test_accuracy.update(mode[0].argmax(-1), edges)
        _update_existence(self.test_edge_auroc, log_probs, edges)
        predictions = self.decode(future, mode, horizon)[0]
        squared_errors = (predictions - future[:, :, 1:]).float().square().mean((1, 3))
        horizons = torch.arange(squared_errors.shape[-1], device=self.device) % horizon + 1
        self.test_horizon_mse.update(squared_errors, horizons)

    @override
    def on_test_epoch_end(self) -> None:
        self.log("test/edge_acc", self.test_accuracy.compute_identity())
        self.log("test/edge_acc_best", self.test_accuracy.compute())
        errors = self.test_horizon_mse.compute()
        for horizon in self.test_horizons:
            self.log(f"test/mse_{horizon}step", errors[horizon - 1])
        self.test_accuracy.reset()
        self.test_horizon_mse.reset()
        self._log_existence("test", self.test_edge_auroc)

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        """Edge-type probabilities ``(B, E, K)`` of a batch's trajectories."""
        return self(batch[0]).exp()

    @override
    def default_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> StepLR:
        """The paper's schedule: the rate times ``lr_decay_gamma`` every ``lr_decay_epochs``."""
        return StepLR(optimizer, step_size=self.lr_decay_epochs, gamma=self.lr_decay_gamma)


def _update_existence(auroc: BinaryAUROC | None, log_probs: Tensor, edges: Tensor) -> None:
    """Add edge-existence scores ``q(type != 0)`` and labels ``type != 0`` to ``auroc``.

    Shapes:
        - log_probs: ``(B, E, K)``; edges: ``(B, E)``
    """
    if auroc is not None:
        scores = -torch.expm1(log_probs[..., 0].float())  # 1 - q(type 0), also near q(type 0) = 1
        auroc.update(scores.flatten(), (edges != 0).flatten().long())


def _check_options(**options: str) -> None:
    """Raise a ValueError naming the option whose value is not allowed."""
    allowed = {"encoder": ("mlp", "cnn"), "decoder": ("mlp", "rnn"), "prior": ("uniform", "sparse")}
    for name, value in options.items():
        if value not in allowed[name]:
            raise ValueError(f"NRI: {name} must be one of {allowed[name]}, got {value!r}")
