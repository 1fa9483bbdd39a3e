"""Actor-critic reinforcement learning (PPO, A2C) with a DiscreteLatent policy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics import MeanMetric
from torchmetrics.functional import explained_variance
from typing_extensions import override

from catlight.latent import DiscreteLatent, Softmax
from catlight.tasks.base import BaseTask
from catlight.tasks.networks import Activation, mlp
from catlight.tasks.rl.advantages import generalized_advantages
from catlight.tasks.rl.collect import Episodes, Rollout
from catlight.tasks.rl.losses import actor_critic_loss
from catlight.tasks.rl.observation_normalizer import ObservationNormalizer
from catlight.tasks.rl.settings import check_action_sizes, check_numbers, check_options

__all__ = ["ActorCritic"]


class ActorCritic(BaseTask):
    r"""PPO or A2C on a categorical policy ``pi(a|s) = latent.distribution(actor(s))``.

    An action is N categorical variables (N = 1 for a Discrete action space, N =
    ``len(action_sizes)`` for a MultiDiscrete one), independent given the state:
    ``log pi(a|s)`` and the entropy are sums over the N variables. The actor outputs
    ``latent.num_scores`` scores per variable (K for Softmax, K - 1 for Catnat, K =
    ``latent.num_categories`` = the largest number of actions); the latent's
    parameterization turns them into the policy, so comparing parameterizations
    changes nothing else. Variables with fewer than K actions have their padded
    categories masked; with ``use_action_masks`` the environment's invalid actions
    (``info["action_mask"]``) are masked too, at collection, in evaluation and in
    the update (the rollout stores the masks, so the probability ratio compares the
    same restricted policies). Masked actions have probability exactly 0.
    The critic outputs ``V(s)``. Both are MLPs (separate, or a
    shared torso with two linear heads) with orthogonal initialisation: gain
    ``sqrt(2)`` for hidden layers, 0.01 for the policy head, 1 for the value head.

    Each training batch is a :class:`~catlight.tasks.rl.collect.Rollout` collected by this
    policy (see :class:`~catlight.tasks.rl.data.GymnasiumDataModule`). The training step
    computes GAE(λ) advantages, drops the autoreset rows, and takes
    ``update_epochs x num_minibatches`` optimizer steps on

    .. math::

        L = L^{pi} - c_H \, H[\pi(\cdot|s)] + c_V \, \tfrac12 (V(s) - R)^2,

    with ``L^pi`` PPO's clipped surrogate ``max(-A rho, -A clip(rho, 1 - eps, 1 + eps))``
    (``rho`` the probability ratio to the collecting policy; Schulman et al., 2017)
    or A2C's ``-A log pi(a|s)`` (one full-batch step per rollout; Mnih et al., 2016).
    Optimisation is manual: one Lightning step per rollout keeps the framework's
    per-batch machinery off the many small minibatch steps.

    Logged against environment steps (the TensorBoard x-axis): the episodic return and
    length of training episodes (means over the episodes that ended since the last
    log, reduced over ranks), policy entropy, approx-KL and clip fraction (PPO), explained
    variance, losses and learning rate; in validation, the return and length of the
    data module's deterministic (argmax) evaluation episodes, also as ``hp_metric``.

    Args:
        latent: the policy head, used through its ``log_probs`` and
            ``sample_with_log_prob``; it must have no estimator (the policy gradient is
            written with ``log pi``). Default: 2 categories, Softmax.
        observation_size: inputs per observation (4 for CartPole-v1).
        action_sizes: the number of actions of each action variable (a MultiDiscrete
            space's ``nvec``), their maximum ``latent.num_categories``; None: one
            variable of ``latent.num_categories`` actions (a Discrete space).
        use_action_masks: act only on the valid actions that the environment reports
            in ``info["action_mask"]`` (the data module raises an error if it reports
            none).
        hidden_sizes: hidden widths of the actor and critic MLPs.
        activation: hidden activation.
        shared_network: one torso for the actor and critic instead of two networks.
        algorithm: ``"ppo"`` or ``"a2c"``.
        learning_rate: initial learning rate of the default optimizer.
        anneal_learning_rate: the default LR schedule: decay the learning rate linearly
            to 0 over the rollouts (stepped once per rollout).
        optimizer: builds the optimizer from the parameters; None: Adam with eps 1e-5
            and ``learning_rate`` (fused where it can be). A2C's configs use
            ``{class_path: torch.optim.RMSprop, init_args: {lr: 7e-4, alpha: 0.99, eps: 1e-5}}``.
        lr_scheduler: builds an LR scheduler from the optimizer, stepped once per
            rollout; None: the schedule ``anneal_learning_rate`` asks for.
        gamma: discount factor.
        gae_lambda: λ of GAE (1 for A2C's n-step returns).
        update_epochs: passes over each rollout (1 for A2C).
        num_minibatches: minibatches per pass (1 for A2C).
        clip_range: PPO's ratio clip ``eps``.
        value_clip_range: clip of the value change from the collecting critic (PPO
            only); None: no clipping.
        normalize_advantages: standardise advantages per minibatch.
        entropy_coef: ``c_H``.
        value_coef: ``c_V``.
        max_grad_norm: clip of the gradient norm; None: no clipping.
        normalize_observations: normalise inputs with running statistics (updated
            after each rollout's optimisation, so a rollout is collected and trained
            on with the same statistics).

    Raises:
        ValueError: for an option outside its allowed values, a non-positive size or
            rate, coefficients out of range, a shared network without hidden layers,
            A2C with more than one epoch or minibatch, a latent with an estimator, or
            ``action_sizes`` whose maximum is not ``latent.num_categories``.
    """

    def __init__(
        self,
        latent: DiscreteLatent | None = None,
        observation_size: int = 4,
        action_sizes: list[int] | None = None,
        use_action_masks: bool = False,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: Activation = "tanh",
        shared_network: bool = False,
        algorithm: Literal["ppo", "a2c"] = "ppo",
        learning_rate: float = 2.5e-4,
        anneal_learning_rate: bool = True,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        update_epochs: int = 4,
        num_minibatches: int = 4,
        clip_range: float = 0.2,
        value_clip_range: float | None = None,
        normalize_advantages: bool = True,
        entropy_coef: float = 0.01,
        value_coef: float = 0.5,
        max_grad_norm: float | None = 0.5,
        normalize_observations: bool = False,
    ) -> None:
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler)
        check_options(algorithm, update_epochs, num_minibatches, value_clip_range)
        check_numbers(
            observation_size=observation_size,
            learning_rate=learning_rate,
            clip_range=clip_range,
            value_clip_range=value_clip_range,
            max_grad_norm=max_grad_norm,
            gamma=gamma,
            gae_lambda=gae_lambda,
            entropy_coef=entropy_coef,
            value_coef=value_coef,
        )
        if latent is not None and latent.estimator is not None:
            raise ValueError(
                "ActorCritic: latent.estimator (model.init_args.latent.init_args.estimator) "
                f"must be null, got {type(latent.estimator).__name__}; the policy samples "
                "through the layer's own sample_with_log_prob / distribution and its "
                "gradient is written with log pi, so an estimator would be ignored"
            )
        if shared_network and not hidden_sizes:
            raise ValueError("ActorCritic: shared_network needs hidden_sizes, got none")
        self.automatic_optimization = False
        self.latent = latent if latent is not None else DiscreteLatent(2, Softmax())
        self.observation_size = observation_size
        self.num_actions = self.latent.num_categories
        self.action_sizes = check_action_sizes(action_sizes, self.num_actions)
        self.use_action_masks = use_action_masks
        # categories beyond a variable's size; None when every variable has K actions
        padding = torch.arange(self.num_actions) < torch.tensor(self.action_sizes)[:, None]
        self.register_buffer("padding_mask", None if padding.all() else padding, persistent=False)
        self.algorithm = algorithm
        self.learning_rate = learning_rate
        self.anneal_learning_rate = anneal_learning_rate
        self.gamma = gamma
        self.gae_lambda = gae_lambda
        self.update_epochs = update_epochs
        self.num_minibatches = num_minibatches
        self.clip_range = clip_range
        self.value_clip_range = value_clip_range
        self.normalize_advantages = normalize_advantages
        self.entropy_coef = entropy_coef
        self.value_coef = value_coef
        self.max_grad_norm = max_grad_norm
        self.observation_normalizer = (
            ObservationNormalizer(observation_size) if normalize_observations else None
        )
        self._build_networks(list(hidden_sizes), activation, shared_network)
        self.register_buffer("env_steps", torch.zeros((), dtype=torch.long))
        self.train_return, self.train_length = MeanMetric(), MeanMetric()
        self.eval_return, self.eval_length = MeanMetric(), MeanMetric()

    def _build_networks(
        self, hidden_sizes: list[int], activation: Activation, shared: bool
    ) -> None:
        """Actor, critic and (shared) torso, orthogonally initialised."""
        sizes = [self.observation_size, *hidden_sizes]
        num_outputs = len(self.action_sizes) * self.latent.num_scores
        if shared:
            # the hidden layers of an MLP, each followed by its activation
            self.torso: nn.Module = mlp([*sizes, 1], activation)[:-1]
            self.actor = nn.Linear(hidden_sizes[-1], num_outputs)
            self.critic = nn.Linear(hidden_sizes[-1], 1)
        else:
            self.torso = nn.Identity()
            self.actor = mlp([*sizes, num_outputs], activation)
            self.critic = mlp([*sizes, 1], activation)
        for module, last_gain in [(self.torso, None), (self.actor, 0.01), (self.critic, 1.0)]:
            linears = [layer for layer in module.modules() if isinstance(layer, nn.Linear)]
            for index, layer in enumerate(linears):
                last = index == len(linears) - 1 and last_gain is not None
                nn.init.orthogonal_(layer.weight, last_gain if last else math.sqrt(2))
                nn.init.zeros_(layer.bias)

    def forward(self, observations: Tensor) -> tuple[Tensor, Tensor]:
        """Policy scores and state values.

        Shapes:
            - observations: ``(B, observation_size)``
            - output: scores ``(B, N, latent.num_scores)``, values ``(B,)``
        """
        if self.observation_normalizer is not None:
            observations = self.observation_normalizer(observations)
        features = self.torso(observations)
        scores = self.actor(features).unflatten(-1, (len(self.action_sizes), -1))
        return scores, self.critic(features).squeeze(-1)

    def action_mask(self, action_masks: Tensor | None) -> Tensor | None:
        """The allowed actions: the environment's valid ones, never a padded category.

        Shapes:
            - action_masks: ``(B, N, K)`` bool, or None
            - output: broadcastable to ``(B, N, K)``, or None if every action is allowed
        """
        if action_masks is None:
            return self.padding_mask
        if self.padding_mask is None:
            return action_masks
        return action_masks & self.padding_mask

    def policy(
        self, observations: Tensor, action_masks: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Log-probabilities of the actions of each variable and state values.

        ``latent.log_probs`` of the actor's scores under :meth:`action_mask`: the
        normalized logits of ``latent.distribution(scores, mask)``, used directly so
        that the collection and update loops skip the distribution object's per-call
        argument checks.

        Shapes:
            - observations: ``(B, observation_size)``; action_masks: ``(B, N, K)`` or None
            - output: log-probabilities ``(B, N, K)`` (-inf where masked), values ``(B,)``
        """
        scores, values = self(observations)
        return self.latent.log_probs(scores, self.action_mask(action_masks)), values

    def act(
        self, observations: Tensor, action_masks: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Sampled actions, their joint log-probabilities (sums over the N variables), values.

        Shapes:
            - observations: ``(B, observation_size)``; action_masks: ``(B, N, K)`` or None
            - output: actions ``(B, N)`` int64, log-probabilities ``(B,)``, values ``(B,)``
        """
        scores, values = self(observations)
        mask = self.action_mask(action_masks)
        actions, log_probs, _ = self.latent.sample_with_log_prob(scores, mask)
        return actions, log_probs.sum(-1), values

    def value(self, observations: Tensor) -> Tensor:
        """State values. Shapes: ``(B, D) -> (B,)``."""
        return self(observations)[1]

    def greedy_action(self, observations: Tensor, action_masks: Tensor | None = None) -> Tensor:
        """The most probable allowed actions. Shapes: ``(B, D), (B, N, K) -> (B, N)``."""
        return self.policy(observations, action_masks)[0].argmax(-1)

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """The actor-critic loss of a minibatch and its diagnostics (see :func:`actor_critic_loss`).

        The policy and critic run in float32: the rollout's log-probs and values were
        computed outside autocast, so the ratio is exactly 1 before the first update.

        Shapes:
            - batch: ``observations (B, observation_size)``; ``actions (B, N)``;
              ``log_probs``, ``values``, ``advantages``, ``returns``: ``(B,)``;
              optionally ``action_masks (B, N, K)``, the masks the actions were drawn under
            - output: scalars
        """
        with torch.autocast(self.device.type, enabled=False):
            all_log_probs, values = self.policy(
                batch["observations"].float(), batch.get("action_masks")
            )
        return actor_critic_loss(
            all_log_probs,
            values,
            batch,
            self.algorithm,
            self.clip_range,
            self.value_clip_range,
            self.normalize_advantages,
            self.entropy_coef,
            self.value_coef,
        )

    @override
    def training_step(self, rollout: Rollout, batch_idx: int) -> None:
        advantages, returns = generalized_advantages(
            rollout.rewards,
            rollout.values,
            rollout.bootstrap_values,
            rollout.terminated,
            rollout.truncated,
            self.gamma,
            self.gae_lambda,
        )
        valid = rollout.valid
        transitions = {
            "observations": rollout.observations[valid],
            "actions": rollout.actions[valid],
            "log_probs": rollout.log_probs[valid],
            "values": rollout.values[valid],
            "advantages": advantages[valid],
            "returns": returns[valid],
        }
        if rollout.action_masks is not None:
            transitions["action_masks"] = rollout.action_masks[valid]
        diagnostics = self._optimize(transitions)
        if self.observation_normalizer is not None:
            self.observation_normalizer.update(transitions["observations"], self._sum_over_ranks)
        self.env_steps += rollout.num_env_steps * self.trainer.world_size
        diagnostics["explained_variance"] = explained_variance(
            transitions["values"], transitions["returns"]
        )
        diagnostics["learning_rate"] = torch.tensor(self.optimizers().param_groups[0]["lr"])
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        self._log_training(diagnostics, rollout, batch_idx)

    def _optimize(self, transitions: dict[str, Tensor]) -> dict[str, Tensor]:
        """``update_epochs`` passes of ``num_minibatches`` steps; mean diagnostics."""
        optimizer = self.optimizers()
        num_transitions = transitions["actions"].shape[0]
        if num_transitions < self.num_minibatches:
            raise ValueError(
                f"ActorCritic: a rollout of {num_transitions} transitions cannot fill "
                f"num_minibatches = {self.num_minibatches}; collect more steps per rollout"
            )
        history = []
        for _ in range(self.update_epochs):
            order = torch.randperm(num_transitions, device=self.device)
            # every rank takes exactly num_minibatches steps (DDP all-reduces each one)
            minibatches = {
                name: tensor[order].tensor_split(self.num_minibatches)
                for name, tensor in transitions.items()
            }
            for index in range(self.num_minibatches):
                loss, diagnostics = self.loss(
                    {name: chunks[index] for name, chunks in minibatches.items()}
                )
                optimizer.zero_grad(set_to_none=True)
                self.manual_backward(loss)
                optimizer.step()  # clips in on_before_optimizer_step, after unscaling
                history.append(torch.stack(list(diagnostics.values())))
        means = torch.stack(history).mean(0)
        return dict(zip(diagnostics, means, strict=True))

    def _log_training(
        self, diagnostics: dict[str, Tensor], rollout: Rollout, batch_idx: int
    ) -> None:
        """Diagnostics and episode statistics, on the rollouts Lightning writes logs at."""
        self.train_return.update(rollout.episode_returns)
        self.train_length.update(rollout.episode_lengths.float())
        if (batch_idx + 1) % self.trainer.log_every_n_steps and not self.trainer.fast_dev_run:
            return
        if self.algorithm != "ppo":  # one step from the collecting policy: both are ~0
            del diagnostics["clip_fraction"], diagnostics["approx_kl"]
        metrics = {f"train/{name}": value for name, value in diagnostics.items()}
        # means over every rank's episodes since the last log; NaN if none ended
        episode_return, episode_length = self.train_return.compute(), self.train_length.compute()
        self.train_return.reset()
        self.train_length.reset()
        if not episode_return.isnan():
            metrics["train/episodic_return"] = episode_return
            metrics["train/episode_length"] = episode_length
        self.log_dict(metrics, batch_size=1)
        # a logged "step" is the x-axis Lightning gives the loggers
        self.log("step", self.env_steps.float(), batch_size=1)

    @override
    def validation_step(self, episodes: Episodes, batch_idx: int) -> None:
        self.eval_return.update(episodes.returns)
        self.eval_length.update(episodes.lengths.float())

    @override
    def on_validation_epoch_end(self) -> None:
        episode_return = self._log_evaluation("val")
        self.log("hp_metric", episode_return, batch_size=1)

    @override
    def test_step(self, episodes: Episodes, batch_idx: int) -> None:
        self.validation_step(episodes, batch_idx)

    @override
    def on_test_epoch_end(self) -> None:
        self._log_evaluation("test")

    def _log_evaluation(self, stage: str) -> Tensor:
        """Log the evaluation episodes' mean return and length (over ranks); the return."""
        episode_return, episode_length = self.eval_return.compute(), self.eval_length.compute()
        # fresh states as normal tensors, which fit's no-grad validation can update in place
        with torch.inference_mode(False):
            self.eval_return.reset()
            self.eval_length.reset()
        self.log(f"{stage}/episodic_return", episode_return, prog_bar=True, batch_size=1)
        self.log(f"{stage}/episode_length", episode_length, batch_size=1)
        self.log("step", self.env_steps.float(), batch_size=1)
        return episode_return

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Clip the gradient norm; Lightning calls this after a grad scaler unscales."""
        if self.max_grad_norm is not None:
            self.clip_gradients(optimizer, self.max_grad_norm, "norm")

    @override
    def default_optimizer(self) -> torch.optim.Optimizer:
        """Adam with eps 1e-5 (CleanRL's and Stable-Baselines3's), fused where it can be."""
        return self.adam(lr=self.learning_rate, eps=1e-5)

    @override
    def clips_gradients(self) -> bool:
        """True when ``max_grad_norm`` is set (or the trainer clips)."""
        return self.max_grad_norm is not None or super().clips_gradients()

    @override
    def default_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> LambdaLR | None:
        """A linear decay to 0 over the run's rollouts, if ``anneal_learning_rate``."""
        if not self.anneal_learning_rate:
            return None
        num_rollouts = self.trainer.estimated_stepping_batches
        return LambdaLR(optimizer, lambda rollout: max(0.0, 1.0 - rollout / num_rollouts))

    def _sum_over_ranks(self, tensor: Tensor) -> Tensor:
        return self.trainer.strategy.reduce(tensor, reduce_op="sum")
