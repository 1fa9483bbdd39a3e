"""Generalized advantage estimation over a rollout laid out as gymnasium collects it."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["generalized_advantages"]


def generalized_advantages(
    rewards: Tensor,
    values: Tensor,
    bootstrap_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[Tensor, Tensor]:
    r"""GAE(λ) advantages and λ-returns (Schulman et al., 2016), computed backwards in time.

    With ``V_{t+1}`` the value of the next row (``bootstrap_values`` after the last):

    .. math::

        \delta_t = r_t + \gamma (1 - \mathrm{terminated}_t) V_{t+1} - V_t, \qquad
        A_t = \delta_t + \gamma \lambda (1 - \mathrm{done}_t) A_{t+1},

    where ``done = terminated | truncated``. A terminated step has no future; a
    truncated one bootstraps from ``V_{t+1}``, but neither passes ``A_{t+1}`` back,
    since the next row belongs to another episode.

    The rows follow gymnasium's next-step autoreset: the observation after an
    episode's last step is that episode's final observation, and the step taken from
    it only resets the environment. So the row after a truncated step holds the value
    of the truncated state, the right bootstrap. That reset row is no transition: its
    advantage is meaningless and the caller drops it (it never leaks into the row
    before, whose ``done`` stops the recursion).

    Args:
        rewards: ``r_t``.
        values: ``V(s_t)`` of the observation each row acted on.
        bootstrap_values: ``V(s_T)`` of the observation after the last row.
        terminated: the episode ended in a terminal state at this step.
        truncated: the episode was cut at this step (time limit).
        gamma: discount factor in [0, 1].
        gae_lambda: λ in [0, 1]; 1 gives n-step returns (A2C), 0 one-step TD errors.

    Returns:
        ``(advantages, returns)`` with ``returns = advantages + values``.

    Shapes:
        - rewards, values, terminated, truncated: ``(T, E)``, T steps of E environments
        - bootstrap_values: ``(E,)``
        - advantages, returns: ``(T, E)`` float32

    Example::

        >>> import torch
        >>> zeros = torch.zeros(2, 1, dtype=torch.bool)
        >>> advantages, returns = generalized_advantages(
        ...     torch.ones(2, 1), torch.zeros(2, 1), torch.zeros(1), zeros, zeros, 0.5, 1.0)
        >>> returns.flatten()
        tensor([1.5000, 1.0000])
    """
    next_values = torch.cat([values[1:], bootstrap_values.unsqueeze(0)]).float()
    deltas = rewards + gamma * next_values * (~terminated) - values
    carry = gamma * gae_lambda * ~(terminated | truncated)
    advantages = torch.empty_like(deltas)
    advantage = torch.zeros_like(bootstrap_values, dtype=deltas.dtype)
    for step in range(rewards.shape[0] - 1, -1, -1):
        advantage = deltas[step] + carry[step] * advantage
        advantages[step] = advantage
    return advantages, advantages + values
