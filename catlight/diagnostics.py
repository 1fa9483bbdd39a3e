"""GradientDiagnostics: how noisy and how biased the latent layers' gradients are, in training."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from typing_extensions import override

from catlight.latent import ESTIMATORS, DiscreteLatent, EstimatorEntry, Exact, StructuredLatent

__all__ = ["GradientDiagnostics", "GradientMoments", "resolve_estimator"]

Wrt = Literal["scores", "parameters"]
WRT_CHOICES = ("scores", "parameters")
# the key of the model's own estimators in the results, and of the reference gradient
MODEL, REFERENCE = "model", "reference"


def resolve_estimator(name: str) -> EstimatorEntry:
    """The registry entry of an estimator named by short name (``loo``) or class (``LeaveOneOut``).

    Raises:
        ValueError: if ``name`` is neither a registry short name nor a registry class name.
    """
    for entry in ESTIMATORS.values():
        if name in (entry.name, entry.cls.__name__):
            return entry
    allowed = ", ".join(f"{e.name} ({e.cls.__name__})" for e in ESTIMATORS.values())
    raise ValueError(f"GradientDiagnostics: estimator must be one of {allowed}; got {name!r}")


class GradientMoments:
    """Running statistics of gradient estimates, and their error against a reference.

    Accumulates in float64, so that thousands of estimates need the memory of three.

    Args:
        reference: the gradient the estimates are compared with; None: no comparison.

    Shapes:
        - reference: ``(P,)``
        - add(estimate): ``(P,)``, the same P every time
    """

    def __init__(self, reference: Tensor | None = None) -> None:
        self.reference = None if reference is None else reference.double()
        self.count = 0
        self.total: Tensor | None = None
        self.total_square: Tensor | None = None
        self.squared_error = 0.0
        self.cosine = 0.0

    def add(self, estimate: Tensor) -> None:
        """Take one more estimate into account."""
        estimate = estimate.detach().double()
        if self.total is None:
            self.total = torch.zeros_like(estimate)
            self.total_square = torch.zeros_like(estimate)
        self.count += 1
        self.total += estimate
        self.total_square += estimate.square()
        if self.reference is not None:
            self.squared_error += float((estimate - self.reference).square().sum())
            self.cosine += float(F.cosine_similarity(estimate, self.reference, dim=0))

    def mean(self) -> Tensor:
        """The mean estimate, ``(P,)``."""
        return self.total / self.count

    def statistics(self) -> dict[str, float]:
        """``variance`` and ``snr``, and with a reference ``bias_norm``, ``mse``, ``cosine``.

        - ``variance``: the total variance, the sum over the P coordinates of each one's
          (unbiased) variance across estimates; 0 with one estimate.
        - ``snr``: the mean over coordinates of ``|mean| / standard deviation``
          (coordinates whose deviation is below 1e-6 of the largest one, rounding
          noise, left out; inf if none varies). A few nearly deterministic
          coordinates (a category of probability near 0) can dominate it.
        - ``bias_norm``: the Euclidean norm of ``mean - reference``.
        - ``mse``: the mean over estimates of ``||estimate - reference||^2``.
        - ``cosine``: the mean over estimates of their cosine similarity with the reference.
        """
        mean = self.mean()
        if self.count > 1:
            variance = (self.total_square - self.count * mean.square()).clamp_min(0)
            variance = variance / (self.count - 1)
        else:
            variance = torch.zeros_like(mean)
        std = variance.sqrt()
        noisy = std > 1e-6 * std.max()
        snr = float((mean.abs()[noisy] / std[noisy]).mean()) if noisy.any() else math.inf
        stats = {"variance": float(variance.sum()), "snr": snr}
        if self.reference is not None:
            stats["bias_norm"] = float((mean - self.reference).norm())
            stats["mse"] = self.squared_error / self.count
            stats["cosine"] = self.cosine / self.count
        return stats


class GradientDiagnostics(Callback):
    """Measure the gradient estimators of a model's latent layers on a fixed batch.

    Every ``every_n_steps`` optimizer steps (from step 0, before the first update), on
    the first training batch it saw, kept, the callback differentiates the task's
    loss (its ``training_loss(batch)``, see :meth:`catlight.tasks.BaseTask.training_loss`)
    ``num_estimates`` times with fresh noise and logs, for each latent layer (every
    :class:`~catlight.latent.DiscreteLatent` with an estimator and every
    :class:`~catlight.latent.StructuredLatent`; key ``gradient/<layer>/<estimator>/<stat>``):

    - ``variance``: total variance of the estimates; ``snr``: mean signal-to-noise ratio;
    - against a reference gradient: ``bias_norm``, ``mse``, ``cosine`` (see
      :meth:`GradientMoments.statistics`), and ``gradient/<layer>/reference/norm``.

    ``<estimator>`` is ``model`` for the model's own estimators, the class name of
    each estimator in ``compare``. The gradient is taken with respect to the scores
    each layer receives (``wrt="scores"``) or to the parameters those scores depend on,
    the encoder's (``wrt="parameters"``, layer key ``parameters``).

    The reference is the gradient with every DiscreteLatent's estimator replaced by
    ``reference``: :class:`~catlight.latent.Exact` (one pass, exact) or the mean of
    ``reference_estimates`` estimates of an unbiased one. ``"auto"`` takes Exact when
    its enumeration fits its budget (the product over the layers of ``K^N`` at most
    ``Exact().max_configurations``), else LeaveOneOut. Estimators in ``compare`` and
    the reference are built with their registry settings and fresh state (a
    temperature at its start, a REINFORCE baseline at 0), swapped into the layers
    for the measurement and swapped out again: the model's own estimators, with
    their state, are back afterwards. StructuredLatents keep their own estimator
    throughout. Scores whose shape depends on an upstream sample (the second layer of
    a two-layer SBN gets ``S`` samples of the first) are compared with the reference
    only when the shapes agree.

    Costs nothing when absent: nothing is hooked into the model outside a
    measurement. A measurement changes nothing of the run: the random generators
    (CPU and the model's device) and every buffer of the model (batch-norm
    statistics, pending estimator statistics) are restored, and ``.grad`` is never
    touched, so a run with the callback trains exactly like one without. It runs in
    float32 without autocast, in training mode.

    DDP: rank 0 measures alone, on its own first batch, with no collective operation
    (the model is called directly, not through the DDP wrapper); the other ranks go on
    and wait for it at the next gradient synchronisation.

    A model with no latent layer that has an estimator (the actor-critic, whose policy
    samples through its layer without one: its gradient is the policy-gradient loss
    of collected rollouts, not a latent estimator's) or without ``training_loss`` is
    left alone with one warning. The kept batch is not checkpointed: a resumed run
    keeps its first batch.

    Args:
        every_n_steps: measure when the global step is a multiple of it.
        num_estimates: gradient estimates per estimator, >= 2.
        reference: ``"auto"``, or an unbiased registry estimator by short name or class
            name (``exact``, ``LeaveOneOut``, ...).
        reference_estimates: estimates averaged into a sampled reference.
        compare: more registry estimators (short or class names) to score on the same
            batch and parameters.
        wrt: ``"scores"`` or ``"parameters"``.

    Raises:
        ValueError: if ``every_n_steps`` or ``reference_estimates`` is below 1,
            ``num_estimates`` below 2, ``wrt`` not one of its choices, an estimator name
            unknown, or ``reference`` not unbiased.

    Example (YAML)::

        trainer:
          callbacks:
            - class_path: GradientDiagnostics
              init_args: {every_n_steps: 1000, compare: [ReinMax, LeaveOneOut]}
    """

    def __init__(
        self,
        every_n_steps: int = 1000,
        num_estimates: int = 32,
        reference: str = "auto",
        reference_estimates: int = 256,
        compare: Sequence[str] = (),
        wrt: Wrt = "scores",
    ) -> None:
        for name, value, low in (
            ("every_n_steps", every_n_steps, 1),
            ("num_estimates", num_estimates, 2),
            ("reference_estimates", reference_estimates, 1),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(
                    f"GradientDiagnostics: {name} must be an int >= {low}, got {value!r}"
                )
        if wrt not in WRT_CHOICES:
            raise ValueError(f"GradientDiagnostics: wrt must be one of {WRT_CHOICES}, got {wrt!r}")
        if reference != "auto" and not resolve_estimator(reference).unbiased:
            unbiased = ", ".join(e.name for e in ESTIMATORS.values() if e.unbiased)
            raise ValueError(
                f"GradientDiagnostics: reference must be 'auto' or an unbiased estimator "
                f"({unbiased}); got {reference!r}"
            )
        self.every_n_steps = every_n_steps
        self.num_estimates = num_estimates
        self.reference = reference
        self.reference_estimates = reference_estimates
        self.compare = [resolve_estimator(name) for name in compare]
        self.wrt = wrt
        self.batch: Any = None
        self.results: dict[str, float] = {}
        self._measured_step = -1
        self._disabled = False

    @override
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._disabled:
            return
        if self.batch is None:
            self.batch = batch
        step = trainer.global_step
        if step % self.every_n_steps != 0 or step == self._measured_step:
            return
        self._measured_step = step
        if not trainer.is_global_zero:
            return
        self.results = self.measure(pl_module, self.batch)
        for logger in trainer.loggers:
            logger.log_metrics(self.results, step=step)

    def measure(self, model: nn.Module, batch: Any) -> dict[str, float]:
        """Every statistic of the model's estimators (and ``compare``) on ``batch``.

        Leaves the model, its estimators and the random generators as they were.

        Args:
            model: a module with ``training_loss(batch)`` and latent layers.
            batch: what ``training_loss`` takes.

        Returns:
            ``gradient/<layer>/<estimator>/<stat>`` mapped to its value; empty (after
            one warning) for a model without latent estimators or ``training_loss``.
        """
        layers = _latent_layers(model)
        name = type(model).__name__
        if not layers:
            return self._disable(f"{name} has no latent layer with a gradient estimator")
        if not callable(getattr(model, "training_loss", None)):
            return self._disable(f"{name} has no training_loss(batch)")
        device = next(model.parameters()).device
        devices = [device] if device.type != "cpu" else []
        try:
            with ExitStack() as stack:
                stack.enter_context(torch.random.fork_rng(devices, device_type=device.type))
                stack.enter_context(_buffers_restored(model))
                stack.enter_context(torch.enable_grad())
                stack.enter_context(torch.autocast(device.type, enabled=False))
                return self._measure(model, batch, layers, device)
        except NotImplementedError as error:  # BaseTask.training_loss, not overridden
            return self._disable(str(error))

    def _disable(self, reason: str) -> dict[str, float]:
        """Warn (once) that nothing can be measured, and measure nothing from now on."""
        if not self._disabled:
            rank_zero_warn(f"GradientDiagnostics: {reason}; nothing to measure")
        self._disabled = True
        return {}

    def _measure(
        self, model: nn.Module, batch: Any, layers: dict[str, nn.Module], device: torch.device
    ) -> dict[str, float]:
        shapes, parameters = _probe(model, batch, layers, self.wrt)
        swappable = {
            name: layer for name, layer in layers.items() if isinstance(layer, DiscreteLatent)
        }
        reference = self._reference_entry(swappable, shapes)
        references: dict[str, Tensor] = {}
        if reference is not None:
            count = 1 if reference.cls is Exact else self.reference_estimates
            with _swapped(swappable, reference, device=device):
                moments = _moments(model, batch, layers, parameters, count, {})
            references = {key: moment.mean() for key, moment in moments.items()}
        results: dict[str, float] = {
            f"gradient/{key}/{REFERENCE}/norm": float(gradient.norm())
            for key, gradient in references.items()
        }
        runs = [(MODEL, None)] + [(entry.cls.__name__, entry) for entry in self.compare]
        for label, entry in runs:
            if entry is not None and not swappable:
                continue
            with _swapped(swappable, entry, device=device):
                moments = _moments(model, batch, layers, parameters, self.num_estimates, references)
            for key, moment in moments.items():
                for stat, value in moment.statistics().items():
                    results[f"gradient/{key}/{label}/{stat}"] = value
        return results

    def _reference_entry(
        self, swappable: dict[str, nn.Module], shapes: dict[str, torch.Size]
    ) -> EstimatorEntry | None:
        """The estimator of the reference gradient; None without a DiscreteLatent."""
        if not swappable:
            return None
        if self.reference != "auto":
            return resolve_estimator(self.reference)
        configurations = 1
        for name, layer in swappable.items():
            if name in shapes:
                configurations *= layer.num_categories ** shapes[name][-2]
        fits = configurations <= Exact().max_configurations
        return resolve_estimator("exact" if fits else "loo")


def _latent_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The model's DiscreteLatents with an estimator and its StructuredLatents, by name."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, StructuredLatent)
        or (isinstance(module, DiscreteLatent) and module.estimator is not None)
    }


@contextmanager
def _buffers_restored(model: nn.Module) -> Iterator[None]:
    """Restore every buffer of ``model`` on exit (batch-norm statistics, estimator state)."""
    saved = {name: buffer.clone() for name, buffer in model.named_buffers()}
    try:
        yield
    finally:
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                if name in saved:
                    buffer.copy_(saved[name])


@contextmanager
def _swapped(
    layers: dict[str, nn.Module], entry: EstimatorEntry | None, device: torch.device
) -> Iterator[None]:
    """Give every layer a fresh ``entry`` estimator, then its own back (None: no swap)."""
    if entry is None:
        yield
        return
    originals = {name: layer.estimator for name, layer in layers.items()}
    try:
        for layer in layers.values():
            layer.estimator = entry.build().to(device)
        yield
    finally:
        for name, layer in layers.items():
            layer.estimator = originals[name]


@contextmanager
def _captured_scores(layers: dict[str, nn.Module]) -> Iterator[dict[str, list[Tensor]]]:
    """The scores each layer receives while inside, in call order (hooks removed on exit)."""
    captured: dict[str, list[Tensor]] = {name: [] for name in layers}

    def capture(records: list[Tensor], module: nn.Module, args: tuple, kwargs: dict) -> None:
        records.append(args[0] if args else kwargs["scores"])

    handles = [
        layer.register_forward_pre_hook(partial(capture, captured[name]), with_kwargs=True)
        for name, layer in layers.items()
    ]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def _probe(
    model: nn.Module, batch: Any, layers: dict[str, nn.Module], wrt: Wrt
) -> tuple[dict[str, torch.Size], list[nn.Parameter]]:
    """One pass: each layer's first scores shape, and the parameters the scores depend on."""
    with _captured_scores(layers) as captured:
        model.training_loss(batch)
    shapes = {name: scores[0].shape for name, scores in captured.items() if scores}
    if wrt == "scores":
        return shapes, []
    candidates = [p for p in model.parameters() if p.requires_grad]
    scores = [s for records in captured.values() for s in records if s.requires_grad]
    total = sum(s.float().sum() for s in scores)
    gradients = torch.autograd.grad(total, candidates, allow_unused=True)
    return shapes, [p for p, g in zip(candidates, gradients, strict=True) if g is not None]


def _moments(
    model: nn.Module,
    batch: Any,
    layers: dict[str, nn.Module],
    parameters: list[nn.Parameter],
    count: int,
    references: dict[str, Tensor],
) -> dict[str, GradientMoments]:
    """``count`` gradient estimates of the loss, per layer (or ``parameters``), accumulated.

    A layer's estimate is compared with its reference only when their sizes agree.
    """
    moments: dict[str, GradientMoments] = {}
    for _ in range(count):
        with _captured_scores(layers) as captured:
            loss = model.training_loss(batch)
        if parameters:
            inputs = {"parameters": list(parameters)}
        else:
            inputs = {
                name: [s for s in records if s.requires_grad] for name, records in captured.items()
            }
            inputs = {name: tensors for name, tensors in inputs.items() if tensors}
        flat = [tensor for tensors in inputs.values() for tensor in tensors]
        gradients = iter(torch.autograd.grad(loss, flat, allow_unused=True, materialize_grads=True))
        for key, tensors in inputs.items():
            estimate = torch.cat([next(gradients).flatten() for _ in tensors])
            if key not in moments:
                reference = references.get(key)
                if reference is not None and reference.shape != estimate.shape:
                    reference = None
                moments[key] = GradientMoments(reference)
            moments[key].add(estimate)
    return moments
