"""Metrics of NRI: edge accuracy up to a relabelling of the types, error vs horizon.

Both accumulate sums (reduced across DDP ranks by torchmetrics) and compute at the end
of an epoch, so the best relabelling is chosen once for the whole data set.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["HorizonMSE", "PermutationAccuracy"]


class PermutationAccuracy(Metric):
    r"""Edge-type accuracy under the best relabelling of the predicted types.

    The edge types of NRI are unidentifiable: the model may call "spring" what the data
    call type 0. This metric accumulates the confusion matrix ``C[predicted, true]`` and
    computes ``max_pi sum_k C[k, pi(k)] / sum C`` over all ``K!`` permutations ``pi``
    of the labels (one relabelling for the whole data set, not one per batch).
    The identity permutation gives the plain accuracy (:meth:`compute_identity`).

    Args:
        num_types: K, the number of edge types (predicted and true labels are in
            ``0 .. K-1``); at most ``max_types``.
        max_types: the largest K allowed (``K!`` permutations are enumerated).
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Raises:
        ValueError: if ``num_types < 2`` or ``num_types > max_types``.

    Shapes:
        - update(predicted, target): both integer ``(*batch)``

    Example::

        >>> metric = PermutationAccuracy(2)
        >>> metric.update(torch.tensor([1, 1, 0, 1]), torch.tensor([0, 0, 1, 1]))
        >>> metric.compute().item(), metric.compute_identity().item()
        (0.75, 0.25)
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_types: int, max_types: int = 6, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 2 <= num_types <= max_types:
            raise ValueError(
                f"PermutationAccuracy: num_types must be in [2, max_types = {max_types}] "
                f"(K! permutations are enumerated), got {num_types}"
            )
        self.num_types = num_types
        permutations = torch.tensor(list(itertools.permutations(range(num_types))))
        self.permutations: Tensor
        self.register_buffer("permutations", permutations, persistent=False)
        self.add_state(
            "confusion", torch.zeros(num_types, num_types, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, predicted: Tensor, target: Tensor) -> None:
        """Add a batch of predicted and true edge types to the confusion matrix.

        Raises:
            ValueError: if the shapes differ or a label is outside ``0 .. K-1``.
        """
        if predicted.shape != target.shape:
            raise ValueError(
                f"PermutationAccuracy: predicted and target must have one shape, got "
                f"{tuple(predicted.shape)} and {tuple(target.shape)}"
            )
        for name, labels in (("predicted", predicted), ("target", target)):
            if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < self.num_types:
                raise ValueError(
                    f"PermutationAccuracy: {name} types must be in [0, {self.num_types}), got "
                    f"values in [{int(labels.min())}, {int(labels.max())}]"
                )
        pairs = predicted.flatten() * self.num_types + target.flatten()
        counts = torch.bincount(pairs, minlength=self.num_types**2)
        self.confusion += counts.view(self.num_types, self.num_types)

    def compute(self) -> Tensor:
        """The best accuracy over all relabellings (NaN before any update)."""
        rows = torch.arange(self.num_types, device=self.confusion.device)
        correct = self.confusion[rows, self.permutations].sum(-1)  # [K!]
        return correct.max().double().div(self.confusion.sum()).float()

    def compute_identity(self) -> Tensor:
        """The plain accuracy (predicted type k means true type k), over all DDP ranks."""
        with self.sync_context(should_sync=self._to_sync, should_unsync=self._should_unsync):
            return self.confusion.trace().double().div(self.confusion.sum()).float()


class HorizonMSE(Metric):
    r"""Mean squared error of multi-step predictions as a function of the horizon.

    ``update(squared_errors, horizons)`` adds the errors of predictions made
    ``horizons[t]`` steps after the last ground-truth input; ``compute()`` returns the
    mean error at each horizon ``1 .. max_horizon`` (NaN where nothing was added).

    Args:
        max_horizon: the largest horizon.
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Raises:
        ValueError: if ``max_horizon < 1``.

    Shapes:
        - squared_errors: ``(*batch, T)``, one (already averaged) error per step
        - horizons: ``(T)`` integers in ``1 .. max_horizon``
        - compute(): ``(max_horizon)``
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, max_horizon: int, **kwargs) -> None:
        super().__init__(**kwargs)
        if max_horizon < 1:
            raise ValueError(f"HorizonMSE: max_horizon must be >= 1, got {max_horizon}")
        self.max_horizon = max_horizon
        zeros = torch.zeros(max_horizon, dtype=torch.float64)
        self.add_state("error_sum", zeros.clone(), dist_reduce_fx="sum")
        self.add_state("count", zeros.clone(), dist_reduce_fx="sum")

    def update(self, squared_errors: Tensor, horizons: Tensor) -> None:
        """Accumulate the errors by horizon."""
        errors = squared_errors.detach().double().reshape(-1, squared_errors.shape[-1])
        index = horizons.to(errors.device) - 1
        self.error_sum.index_add_(0, index, errors.sum(0))
        self.count.index_add_(0, index, torch.full_like(index, errors.shape[0], dtype=errors.dtype))

    def compute(self) -> Tensor:
        """Mean error at each horizon."""
        return (self.error_sum / self.count).float()
