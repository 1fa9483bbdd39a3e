"""Checks of what a layer is given: scores and masks, on by default, switchable off.

Like ``torch.distributions``' ``validate_args``: a layer checks its input unless it
was built with ``validate_args=False``, and :func:`set_default_validate_args` sets
what layers built with ``validate_args=None`` (the default) do. The checks cost one
reduction over the scores and one host-device synchronisation per call; the
diagnostics (how many entries are bad, where the first one is) are computed only
when a check fails.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "check_mask",
    "check_scores",
    "check_support",
    "default_validate_args",
    "set_default_validate_args",
]

_default_validate_args = True


def set_default_validate_args(value: bool) -> None:
    """Turn input checks on or off for every layer built with ``validate_args=None``.

    Raises:
        ValueError: if ``value`` is not a bool.
    """
    global _default_validate_args
    if not isinstance(value, bool):
        raise ValueError(f"set_default_validate_args: value must be a bool, got {value!r}")
    _default_validate_args = value


def default_validate_args() -> bool:
    """Whether layers built with ``validate_args=None`` check their input."""
    return _default_validate_args


def check_scores(owner: str, scores: Tensor, negative_infinity_masks: bool) -> None:
    """Raise a ValueError if a score is NaN or +inf, or -inf where it cannot mask.

    With ``negative_infinity_masks`` (Softmax) a -inf score removes its category, so
    only NaN, +inf and rows whose every score is -inf are errors; otherwise (Catnat,
    whose scores are branch decisions, not categories) every score must be finite.

    Args:
        owner: how the error names the layer, e.g. ``"DiscreteLatent(K=10, Softmax)"``.
        scores: the network's output.
        negative_infinity_masks: whether -inf is a valid score.

    Raises:
        ValueError: naming ``owner``, how many entries are bad and the index of the
            first one.

    Shapes:
        - scores: ``(*batch, N, M)``
    """
    # the common case in one fused sum: it is finite unless a score is NaN or +-inf
    # (or finite scores overflow it, which the exact checks below then clear)
    if bool(torch.isfinite(scores.detach().sum())):
        return
    if negative_infinity_masks:
        # amax propagates NaN and is +inf / -inf for a +inf score / an all -inf row
        if bool(torch.isfinite(scores.detach().amax(-1)).all()):
            return
        bad = torch.isnan(scores) | (scores == float("inf"))
        if bool(bad.any()):
            raise ValueError(
                f"{owner}: {_which(bad, 'scores')} are NaN or +inf; scores "
                "must be finite or -inf (-inf removes a category). Pass "
                "validate_args=False to the layer to skip this check"
            )
        empty = (scores == float("-inf")).all(-1)
        raise ValueError(
            f"{owner}: {_which(empty, 'rows of scores')} are -inf for every "
            "category; at least one category per variable must stay possible"
        )
    finite = torch.isfinite(scores.detach())
    if bool(finite.all()):
        return
    raise ValueError(
        f"{owner}: {_which(~finite, 'scores')} are NaN or infinite; this "
        "parameterization needs finite scores (to remove categories, pass mask= to the "
        "layer instead of -inf scores). Pass validate_args=False to skip this check"
    )


def check_mask(owner: str, mask: Tensor, shape: torch.Size) -> None:
    """Raise a ValueError for a mask that is not boolean or does not fit.

    Args:
        owner: how the error names the layer.
        mask: True where a category is allowed.
        shape: the shape of the log-probabilities, ``(*batch, N, K)``.

    Raises:
        ValueError: if ``mask`` is not boolean or is not broadcastable to ``shape``
            without growing it.

    Shapes:
        - mask: broadcastable to ``(*batch, N, K)``
    """
    if mask.dtype != torch.bool:
        raise ValueError(f"{owner}: mask must be a bool tensor (True = allowed), got {mask.dtype}")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, shape)
    except RuntimeError:
        broadcast = None
    if broadcast != shape:
        raise ValueError(
            f"{owner}: mask of shape {tuple(mask.shape)} does not broadcast to the "
            f"log-probabilities' shape {tuple(shape)} (*batch, N, K)"
        )


def check_support(owner: str, masked_log_probs: Tensor) -> None:
    """Raise a ValueError if the mask (with any -inf scores) leaves a row no category.

    Args:
        owner: how the error names the layer.
        masked_log_probs: log-probabilities with -inf on the masked categories.

    Raises:
        ValueError: naming how many rows are empty and the index of the first.

    Shapes:
        - masked_log_probs: ``(*batch, N, K)``
    """
    possible = masked_log_probs.detach().amax(-1) > float("-inf")
    if bool(possible.all()):
        return
    raise ValueError(
        f"{owner}: {_which(~possible, 'rows')} allow no category once masked (by mask, "
        "and -inf scores); at least one category per variable must stay possible"
    )


def _which(bad: Tensor, what: str) -> str:
    """``"3 of 640 scores (the first at index (0, 2, 5))"`` for a boolean tensor."""
    first = tuple(bad.nonzero()[0].tolist())
    return f"{int(bad.sum())} of {bad.numel()} {what} (the first at index {first})"
