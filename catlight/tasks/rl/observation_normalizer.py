"""Running mean and variance of observations, for normalising a policy's inputs."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["ObservationNormalizer"]


class ObservationNormalizer(nn.Module):
    r"""``clamp((x - mean) / sqrt(var + eps), -clip, clip)`` with running statistics.

    The count, mean and variance are float64 buffers, so they are checkpointed and
    move with the model. :meth:`update` merges a batch's moments into them (Chan et
    al.'s parallel formula); given a ``reduce`` that sums over processes, every DDP
    rank merges the moments of all ranks' batches and keeps identical statistics.
    Before any update the normaliser is the identity (mean 0, variance 1).

    Args:
        size: D, values per observation.
        clip: bound on the normalised values.
        eps: added to the variance.

    Raises:
        ValueError: for ``size < 1``, ``clip <= 0`` or ``eps < 0``.

    Shapes:
        - input: ``(*batch, D)``; output: ``(*batch, D)`` float32

    Example::

        >>> import torch
        >>> normalizer = ObservationNormalizer(1)
        >>> normalizer.update(torch.tensor([[1.0], [3.0]]))
        >>> normalizer(torch.tensor([[3.0], [0.0]]))
        tensor([[ 1.],
                [-2.]])
    """

    def __init__(self, size: int, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__()
        if size < 1 or not clip > 0 or eps < 0:
            raise ValueError(
                "ObservationNormalizer: size must be >= 1, clip > 0 and eps >= 0, got "
                f"size={size}, clip={clip}, eps={eps}"
            )
        self.clip = clip
        self.eps = eps
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("var", torch.ones(size, dtype=torch.float64))

    def extra_repr(self) -> str:
        """Settings shown in the module's repr."""
        return f"size={self.mean.numel()}, clip={self.clip}, eps={self.eps}"

    def forward(self, observations: Tensor) -> Tensor:
        """Normalised observations; see the class docstring for shapes."""
        scale = (self.var + self.eps).rsqrt().float()
        normalized = (observations.float() - self.mean.float()) * scale
        return normalized.clamp_(-self.clip, self.clip)

    @torch.no_grad()
    def update(
        self, observations: Tensor, reduce: Callable[[Tensor], Tensor] | None = None
    ) -> None:
        """Merge the moments of a batch of observations ``(B, D)`` into the statistics.

        Args:
            observations: the batch; ``B`` may be 0.
            reduce: sums a tensor over processes (e.g. the strategy's all-reduce);
                None for one process.
        """
        values = observations.detach().to(self.mean).flatten(0, -2)
        moments = torch.cat(
            [values.new_tensor([values.shape[0]]), values.sum(0), values.square().sum(0)]
        )
        if reduce is not None:
            moments = reduce(moments)
        count = moments[0]
        total, squares = moments[1:].chunk(2)
        if count == 0:
            return
        batch_mean = total / count
        batch_var = (squares / count - batch_mean.square()).clamp_(min=0)
        merged = self.count + count
        delta = batch_mean - self.mean
        self.var.copy_(
            (
                self.var * self.count
                + batch_var * count
                + delta.square() * self.count * count / merged
            )
            / merged
        )
        self.mean.add_(delta * count / merged)
        self.count.copy_(merged)
