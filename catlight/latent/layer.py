"""DiscreteLatent: the layer between a network's scores and a categorical sample."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Categorical

from catlight.latent._checks import check_num_categories
from catlight.latent.estimators import Estimator
from catlight.latent.estimators.base import one_hot
from catlight.latent.parameterizations import Parameterization
from catlight.latent.sample import LatentSample
from catlight.latent.validation import (
    check_mask,
    check_scores,
    check_support,
    default_validate_args,
)

__all__ = ["DiscreteLatent", "LatentSample"]


class DiscreteLatent(nn.Module):
    r"""N categorical latent variables with K categories each.

    A network outputs ``scores``; the *parameterization* turns them into normalized
    log-probabilities and the *estimator* draws samples and defines the gradient of
    ``E_q[cost]``. Both are chosen in configuration, never in model code. All
    sampling runs in float32, also under autocast.

    Estimator state (an annealed temperature, a moving-average baseline) advances
    only in :meth:`step`: call ``layer.step()`` once after every ``optimizer.step()``.
    catlight's LightningModules (and any model trained through the ``catlight`` CLI)
    do that through the :class:`~catlight.callbacks.EstimatorStep` callback.

    Args:
        num_categories: K >= 2.
        parameterization: e.g. :class:`~catlight.latent.Softmax` or
            :class:`~catlight.latent.Catnat`.
        estimator: e.g. :class:`~catlight.latent.GumbelSoftmax` or
            :class:`~catlight.latent.LeaveOneOut`. ``None`` makes a layer that only
            gives :meth:`log_probs`, :meth:`distribution`, :meth:`sample_with_log_prob`
            and :meth:`mode` (an RL policy head, whose gradient comes from the
            algorithm's own loss), and cannot be called.
        validate_args: check every input: a NaN or +inf score (or a -inf one where the
            parameterization cannot mask with it) is a ValueError that names the
            layer, how many entries are bad and where the first one is, and so is a
            row with no allowed category. ``None``: the global default, see
            :func:`~catlight.latent.set_default_validate_args` (on unless changed).
            ``False`` skips the checks (one reduction and one host-device
            synchronisation per call) and leaves bad input undefined.

    Masking: ``mask`` (in :meth:`forward`, :meth:`log_probs`, :meth:`distribution`)
    is a bool tensor, True where a category is allowed. It is applied to the
    normalized log-probabilities after the parameterization (masked categories get
    -inf, the allowed ones are renormalized), so it means the same for every
    parameterization and every estimator: no sample lands on a masked category,
    :meth:`LatentSample.kl` compares with the prior restricted to the allowed
    categories. With Softmax a -inf score masks its category too.

    Raises:
        ValueError: if ``num_categories < 2``, if the estimator cannot serve K
            categories, or (in forward) if the scores are not floating point or do
            not end in ``num_scores``, the layer has no estimator, or (see
            ``validate_args``) the scores or the mask are invalid.

    Shapes:
        - scores: ``(*batch, N, num_scores)``, floating point
        - mask: broadcastable to ``(*batch, N, K)``, bool
        - out.log_probs: ``(*batch, N, K)`` float32
        - out.z: ``(S, *batch, N, K)``
        - out.objective(cost): cost ``(S, *batch)`` -> ``(*batch)``
        - mode(scores): ``(*batch, N, K)`` one-hot

    Example::

        >>> import torch
        >>> from catlight.latent import DiscreteLatent, Catnat, LeaveOneOut
        >>> layer = DiscreteLatent(10, Catnat(), LeaveOneOut(num_samples=4))
        >>> scores = torch.randn(32, 20, layer.num_scores, requires_grad=True)
        >>> out = layer(scores)
        >>> out.z.shape
        torch.Size([4, 32, 20, 10])
        >>> cost = (out.z * torch.arange(10.0)).sum((-2, -1))  # [S, B]
        >>> out.objective(cost).mean().backward()
        >>> optimizer = torch.optim.SGD([scores], lr=0.1)
        >>> optimizer.step()
        >>> layer.step()  # once per optimisation step: advances the estimator's state
    """

    def __init__(
        self,
        num_categories: int,
        parameterization: Parameterization,
        estimator: Estimator | None = None,
        validate_args: bool | None = None,
    ) -> None:
        super().__init__()
        check_num_categories(num_categories)
        if not isinstance(parameterization, Parameterization):
            raise ValueError(
                "DiscreteLatent: parameterization must be a catlight Parameterization "
                f"(Softmax, Catnat), got {type(parameterization).__name__}"
            )
        if estimator is not None:
            if not isinstance(estimator, Estimator):
                raise ValueError(
                    "DiscreteLatent: estimator must be a catlight Estimator (GumbelSoftmax, "
                    f"LeaveOneOut, ...) or None, got {type(estimator).__name__}"
                )
            estimator.check_num_categories(num_categories)
        self.num_categories = num_categories
        self.parameterization = parameterization
        self.estimator = estimator
        self.validate_args = validate_args

    @property
    def num_scores(self) -> int:
        """How many scores per variable the network must output (K or K - 1)."""
        return self.parameterization.num_scores(self.num_categories)

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_categories={self.num_categories}"

    @property
    def checks_input(self) -> bool:
        """Whether this layer validates its scores and masks (see ``validate_args``)."""
        return default_validate_args() if self.validate_args is None else self.validate_args

    def log_probs(self, scores: Tensor, mask: Tensor | None = None) -> Tensor:
        """Normalized float32 log-probabilities, -inf on masked categories.

        Shapes:
            - scores: ``(*batch, N, M)``
            - mask: broadcastable to ``(*batch, N, K)``, True where allowed
            - output: ``(*batch, N, K)``

        Raises:
            ValueError: see the class docstring.
        """
        owner = f"DiscreteLatent(K={self.num_categories}, {type(self.parameterization).__name__})"
        if scores.dim() < 2 or scores.shape[-1] != self.num_scores:
            raise ValueError(
                f"{owner}: scores must have shape (*batch, N, num_scores) with "
                f"num_scores = {self.num_scores}, got {tuple(scores.shape)}"
            )
        if not scores.is_floating_point():
            raise ValueError(f"{owner}: scores must be floating point, got {scores.dtype}")
        if self.checks_input:
            check_scores(owner, scores, self.parameterization.negative_infinity_masks)
        with _float32(scores):
            log_probs = self.parameterization(scores.float())
            if mask is None:
                return log_probs
            check_mask(owner, mask, log_probs.shape)
            masked = log_probs.masked_fill(~mask, float("-inf"))
            if self.checks_input:
                check_support(owner, masked)
            return masked - masked.logsumexp(-1, keepdim=True)

    def forward(self, scores: Tensor, mask: Tensor | None = None) -> LatentSample:
        """Samples and the estimator's objective. See the class docstring for shapes."""
        if self.estimator is None:
            raise ValueError(
                "DiscreteLatent: this layer has no estimator, so it cannot sample with a "
                "gradient; give it one (e.g. estimator=GumbelSoftmax()) or use "
                "log_probs / distribution"
            )
        log_probs = self.log_probs(scores, mask)
        with _float32(scores):
            return self.estimator(log_probs)

    def step(self) -> None:
        """Advance the estimator's state by one optimisation step (see the class doc)."""
        if self.estimator is not None:
            self.estimator.step()

    def distribution(self, scores: Tensor, mask: Tensor | None = None) -> Categorical:
        """``Categorical(logits=log_probs)`` with batch shape ``(*batch, N)``."""
        return Categorical(logits=self.log_probs(scores, mask))

    def mode(self, scores: Tensor, mask: Tensor | None = None) -> Tensor:
        """The most probable allowed category of each variable, one-hot float32.

        Shapes:
            - scores: ``(*batch, N, num_scores)``
            - mask: broadcastable to ``(*batch, N, K)``, True where allowed
            - output: ``(*batch, N, K)``, encoded like one sample of ``z``

        Raises:
            ValueError: see the class docstring.
        """
        return one_hot(self.log_probs(scores, mask).argmax(-1), self.num_categories)

    def sample_with_log_prob(
        self, scores: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Categories drawn from q without an estimator, with their log-probabilities.

        What an RL policy acts with: the law of ``distribution(scores).sample()`` in
        one pass, without the distribution object's per-call checks. The draw is an
        exponential race, ``argmin_k E_k / q_k`` with ``E_k ~ Exp(1)``, which is
        distributed as ``q`` and never picks a masked category. Needs no estimator; no
        gradient flows through the draw, the log-probabilities keep theirs.

        Shapes:
            - scores: ``(*batch, N, num_scores)``
            - mask: broadcastable to ``(*batch, N, K)``, True where allowed
            - output: categories ``(*batch, N)`` int64, their log-probabilities
              ``(*batch, N)`` and all log-probabilities ``(*batch, N, K)``, float32

        Raises:
            ValueError: see the class docstring.
        """
        log_probs = self.log_probs(scores, mask)
        races = torch.empty_like(log_probs).exponential_().log_().sub_(log_probs.detach())
        categories = races.argmin(-1)
        return categories, log_probs.gather(-1, categories.unsqueeze(-1)).squeeze(-1), log_probs


def _float32(tensor: Tensor) -> torch.autocast:
    """A context with autocast off on the tensor's device, so math stays float32."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)
