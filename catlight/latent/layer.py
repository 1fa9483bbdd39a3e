"""DiscreteLatent: the layer between a network's scores and a categorical sample."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Categorical

from catlight.latent._checks import check_num_categories
from catlight.latent.estimators import Estimator
from catlight.latent.parameterizations import Parameterization
from catlight.latent.sample import LatentSample

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
            gives :meth:`log_probs` and :meth:`distribution` (an RL policy head, whose
            gradient comes from the algorithm's own loss), and cannot be called.

    Raises:
        ValueError: if ``num_categories < 2``, if the estimator cannot serve K
            categories, or (in forward) if the scores do not end in ``num_scores`` or
            the layer has no estimator.

    Shapes:
        - scores: ``(*batch, N, num_scores)``
        - out.log_probs: ``(*batch, N, K)`` float32
        - out.z: ``(S, *batch, N, K)``
        - out.objective(cost): cost ``(S, *batch)`` -> ``(*batch)``

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

    @property
    def num_scores(self) -> int:
        """How many scores per variable the network must output (K or K - 1)."""
        return self.parameterization.num_scores(self.num_categories)

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"num_categories={self.num_categories}"

    def log_probs(self, scores: Tensor) -> Tensor:
        """Normalized float32 log-probabilities. ``(*batch, N, M) -> (*batch, N, K)``."""
        if scores.dim() < 2 or scores.shape[-1] != self.num_scores:
            raise ValueError(
                f"DiscreteLatent: scores must have shape (*batch, N, num_scores) with "
                f"num_scores = {self.num_scores} ({type(self.parameterization).__name__}, "
                f"K = {self.num_categories}), got {tuple(scores.shape)}"
            )
        with _float32(scores):
            return self.parameterization(scores.float())

    def forward(self, scores: Tensor) -> LatentSample:
        """Samples and the estimator's objective. See the class docstring for shapes."""
        if self.estimator is None:
            raise ValueError(
                "DiscreteLatent: this layer has no estimator, so it cannot sample with a "
                "gradient; give it one (e.g. estimator=GumbelSoftmax()) or use "
                "log_probs / distribution"
            )
        log_probs = self.log_probs(scores)
        with _float32(scores):
            return self.estimator(log_probs)

    def step(self) -> None:
        """Advance the estimator's state by one optimisation step (see the class doc)."""
        if self.estimator is not None:
            self.estimator.step()

    def distribution(self, scores: Tensor) -> Categorical:
        """``Categorical(logits=log_probs)`` with batch shape ``(*batch, N)``."""
        return Categorical(logits=self.log_probs(scores))


def _float32(tensor: Tensor) -> torch.autocast:
    """A context with autocast off on the tensor's device, so math stays float32."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)
