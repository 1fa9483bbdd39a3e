"""Discrete and MultiDiscrete action spaces as N categorical variables, and their masks.

A ``Discrete(n)`` action is one categorical variable with n categories; a
``MultiDiscrete(nvec)`` action is ``N = nvec.size`` of them, variable i with
``nvec[i]`` categories. The policy holds them in one
:class:`~catlight.latent.DiscreteLatent` of ``K = max(nvec)`` categories, so the
agent's actions are ``(E, N)`` integers and its masks ``(E, N, K)`` booleans; this
module converts between that layout and what the environments take and give.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

__all__ = ["ACTION_MASK_KEY", "action_sizes", "environment_actions", "read_action_masks"]

# the info key of invalid-action masks (gymnasium's Taxi gives one)
ACTION_MASK_KEY = "action_mask"


def action_sizes(space: gym.Space, env_name: str) -> list[int]:
    """The categories of each action variable: ``[n]`` or ``nvec`` flattened.

    Raises:
        ValueError: for a space that is not Discrete or MultiDiscrete starting at 0.
    """
    if isinstance(space, gym.spaces.Discrete) and space.start == 0:
        return [int(space.n)]
    if isinstance(space, gym.spaces.MultiDiscrete) and not np.any(space.start):
        return [int(size) for size in space.nvec.flatten()]
    raise ValueError(
        f"GymnasiumDataModule: {env_name} has action space {space}; actor-critic with a "
        "categorical policy needs a Discrete or MultiDiscrete action space starting at 0 "
        "(a Box can be discretised with data.init_args.action_bins)"
    )


def environment_actions(space: gym.Space, actions: Tensor) -> np.ndarray:
    """The agent's actions in the layout the vector environments take.

    Shapes:
        - actions: ``(E, N)`` int64
        - output: ``(E,)`` for Discrete, ``(E, *nvec.shape)`` for MultiDiscrete
    """
    actions = actions.cpu().numpy()
    if isinstance(space, gym.spaces.Discrete):
        return actions[:, 0]
    return actions.reshape(actions.shape[0], *space.nvec.shape)


def read_action_masks(infos: dict, space: gym.Space, env_name: str) -> Tensor:
    """The valid actions of each environment, from ``infos["action_mask"]``, padded to K.

    A Discrete space's mask has one entry per action; a MultiDiscrete space's is the
    concatenation of its variables' masks (``sum(nvec)`` entries, the layout of
    Stable-Baselines3-contrib's MaskablePPO). Padded categories (beyond a variable's
    size) are False.

    Raises:
        ValueError: if the infos have no action mask, or one of the wrong size.

    Shapes:
        - infos[ACTION_MASK_KEY]: ``(E, sum(sizes))``, nonzero where valid
        - output: ``(E, N, K)`` bool, ``K = max(sizes)``
    """
    if ACTION_MASK_KEY not in infos:
        raise ValueError(
            f"GymnasiumDataModule: model.init_args.use_action_masks is true but {env_name} "
            f"gives no info[{ACTION_MASK_KEY!r}] (its info keys: {sorted(infos)}); set "
            "use_action_masks to false or use an environment that reports valid actions"
        )
    sizes = action_sizes(space, env_name)
    flat = torch.as_tensor(np.asarray(infos[ACTION_MASK_KEY])) != 0
    if flat.ndim != 2 or flat.shape[1] != sum(sizes):
        raise ValueError(
            f"GymnasiumDataModule: {env_name}'s info[{ACTION_MASK_KEY!r}] has shape "
            f"{tuple(flat.shape[1:])} per environment; action sizes {sizes} need "
            f"({sum(sizes)},), one entry per action of each variable"
        )
    masks = torch.zeros(flat.shape[0], len(sizes), max(sizes), dtype=torch.bool)
    for variable, chunk in enumerate(flat.split(sizes, dim=1)):
        masks[:, variable, : sizes[variable]] = chunk
    return masks
