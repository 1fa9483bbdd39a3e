"""The PPO (Schulman et al. 2017) and A2C (Mnih et al. 2016) objectives of a minibatch."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from catlight.latent import categorical_entropy

__all__ = ["actor_critic_loss"]


def actor_critic_loss(
    all_log_probs: Tensor,
    values: Tensor,
    batch: dict[str, Tensor],
    algorithm: Literal["ppo", "a2c"],
    clip_range: float,
    value_clip_range: float | None,
    normalize_advantages: bool,
    entropy_coef: float,
    value_coef: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    r"""``policy_loss - entropy_coef * entropy + value_coef * value_loss`` and diagnostics.

    PPO's policy loss is the clipped surrogate ``E[max(-A rho, -A clip(rho, 1 - eps,
    1 + eps))]`` with ``rho = pi(a|s) / pi_old(a|s)``; A2C's is ``-E[A log pi(a|s)]``.
    The value loss is ``0.5 E[(V - R)^2]``; with ``value_clip_range`` (PPO) the larger
    of that and the error of ``V_old + clip(V - V_old)``.

    Args:
        all_log_probs: the current policy's log-probabilities of every action of each
            action variable; an action's log-probability is the sum over the variables.
        values: the current critic's values.
        batch: ``actions``, ``log_probs`` and ``values`` of the collecting policy,
            ``advantages`` and ``returns``.
        algorithm: ``"ppo"`` or ``"a2c"``.
        clip_range: PPO's ``eps``.
        value_clip_range: PPO's clip of the value change, or None.
        normalize_advantages: standardise the advantages over the minibatch.
        entropy_coef: weight of the entropy bonus.
        value_coef: weight of the value loss.

    Returns:
        The scalar loss, and detached scalars: policy and value losses, entropy,
        approx-KL (``E[rho - 1 - log rho]``) and the fraction of clipped ratios.

    Shapes:
        - all_log_probs: ``(B, N, K)``; batch actions ``(B, N)``; values and every other
          batch entry: ``(B,)``
        - output: scalars
    """
    log_probs = all_log_probs.gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1).sum(-1)
    entropy = categorical_entropy(all_log_probs).sum(-1).mean()
    advantages = batch["advantages"]
    if normalize_advantages:
        advantages = (advantages - advantages.mean()) / (advantages.std(correction=0) + 1e-8)
    log_ratio = log_probs - batch["log_probs"]
    ratio = log_ratio.exp()
    if algorithm == "ppo":
        clipped = ratio.clamp(1 - clip_range, 1 + clip_range)
        policy_loss = torch.max(-advantages * ratio, -advantages * clipped).mean()
    else:
        policy_loss = -(advantages * log_probs).mean()
    value_loss = (values - batch["returns"]).square()
    if algorithm == "ppo" and value_clip_range is not None:
        change = (values - batch["values"]).clamp(-value_clip_range, value_clip_range)
        value_loss = torch.max(value_loss, (batch["values"] + change - batch["returns"]).square())
    value_loss = 0.5 * value_loss.mean()
    loss = policy_loss - entropy_coef * entropy + value_coef * value_loss
    with torch.no_grad():
        diagnostics = {
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "entropy": entropy.detach(),
            "approx_kl": (ratio - 1 - log_ratio).mean(),
            "clip_fraction": ((ratio - 1).abs() > clip_range).float().mean(),
        }
    return loss, diagnostics
