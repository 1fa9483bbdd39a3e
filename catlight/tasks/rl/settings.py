"""Checks of ActorCritic's settings: each raises a ValueError naming the setting."""

from __future__ import annotations

__all__ = ["check_action_sizes", "check_numbers", "check_options"]


def check_options(
    algorithm: str,
    update_epochs: int,
    num_minibatches: int,
    value_clip_range: float | None,
) -> None:
    """Raise ValueError for an unknown option or a PPO-only setting given to A2C."""
    if algorithm not in ("ppo", "a2c"):
        raise ValueError(f"ActorCritic: algorithm must be 'ppo' or 'a2c', got {algorithm!r}")
    if update_epochs < 1 or num_minibatches < 1:
        raise ValueError(
            "ActorCritic: update_epochs and num_minibatches must be >= 1, got "
            f"{update_epochs} and {num_minibatches}"
        )
    if algorithm == "a2c" and (update_epochs, num_minibatches) != (1, 1):
        raise ValueError(
            "ActorCritic: algorithm 'a2c' takes one full-batch step per rollout, so "
            f"update_epochs and num_minibatches must be 1, got {update_epochs} and "
            f"{num_minibatches}"
        )
    if algorithm == "a2c" and value_clip_range is not None:
        raise ValueError(
            "ActorCritic: value_clip_range is a PPO setting; algorithm 'a2c' needs it unset "
            f"(None), got {value_clip_range}"
        )


def check_action_sizes(action_sizes: list[int] | None, num_categories: int) -> list[int]:
    """The action sizes, ``[num_categories]`` if None; ValueError if they do not fit."""
    if action_sizes is None:
        return [num_categories]
    sizes = [int(size) for size in action_sizes]
    if not sizes or min(sizes) < 1 or max(sizes) != num_categories:
        raise ValueError(
            f"ActorCritic: action_sizes must be sizes >= 1 whose maximum is "
            f"latent.num_categories = {num_categories}, got {action_sizes}"
        )
    return sizes


def check_numbers(**values: float | None) -> None:
    """Raise ValueError for a size, rate or coefficient outside its range."""
    for name, value in values.items():
        if name in ("gamma", "gae_lambda"):
            allowed, valid = "in [0, 1]", 0 <= value <= 1
        elif name in ("entropy_coef", "value_coef"):
            allowed, valid = ">= 0", value >= 0
        elif name in ("value_clip_range", "max_grad_norm"):
            allowed, valid = "> 0 or None", value is None or value > 0
        else:
            allowed, valid = "> 0", value > 0
        if not valid:
            raise ValueError(f"ActorCritic: {name} must be {allowed}, got {value}")
