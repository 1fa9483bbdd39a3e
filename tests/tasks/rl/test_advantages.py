"""GAE against hand-computed values, with episode ends inside the rollout."""

from __future__ import annotations

import torch

from catlight.tasks.rl.advantages import generalized_advantages

GAMMA, LAMBDA = 0.9, 0.5


def rollout_with_both_endings():
    """Two environments, six steps, laid out as gymnasium's next-step autoreset returns them.

    Environment 0: an episode truncated at step 1 (row 2 is its final observation,
    the autoreset row), a new one terminated at step 4 (row 5 is the autoreset row).
    Environment 1: one episode throughout, bootstrapped from V = 10 after the rollout.
    """
    rewards = torch.tensor([[1.0, 2.0, 0.0, 1.0, 1.0, 0.0], [1.0] * 6]).T
    values = torch.tensor([[0.5, 1.0, 3.0, 0.4, 0.6, 5.0], [0.0] * 6]).T
    terminated = torch.zeros(6, 2, dtype=torch.bool)
    truncated = torch.zeros(6, 2, dtype=torch.bool)
    truncated[1, 0] = True
    terminated[4, 0] = True
    bootstrap_values = torch.tensor([0.7, 10.0])
    return rewards, values, bootstrap_values, terminated, truncated


def test_gae_matches_hand_computed_values_with_a_truncation_and_a_termination():
    advantages, returns = generalized_advantages(*rollout_with_both_endings(), GAMMA, LAMBDA)
    # env 0, truncated at row 1: bootstrap from the truncated state's value 3.0 (row 2)
    # delta_1 = 2 + 0.9 * 3.0 - 1.0 = 3.7, no carry past the episode end
    # delta_0 = 1 + 0.9 * 1.0 - 0.5 = 1.4, A_0 = 1.4 + 0.45 * 3.7 = 3.065
    # terminated at row 4: no bootstrap (row 5's value 5.0 is ignored)
    # delta_4 = 1 - 0.6 = 0.4; delta_3 = 1 + 0.9 * 0.6 - 0.4 = 1.14, A_3 = 1.14 + 0.45 * 0.4
    expected_env0 = {0: 3.065, 1: 3.7, 3: 1.32, 4: 0.4}
    for row, value in expected_env0.items():
        torch.testing.assert_close(advantages[row, 0], torch.tensor(value))
        torch.testing.assert_close(
            returns[row, 0], torch.tensor(value) + rollout_with_both_endings()[1][row, 0]
        )
    # env 1: delta_5 = 1 + 0.9 * 10 = 10, every other delta 1, carried by 0.45
    expected_env1 = [1.969159375, 2.1536875, 2.56375, 3.475, 5.5, 10.0]
    torch.testing.assert_close(advantages[:, 1], torch.tensor(expected_env1))
    torch.testing.assert_close(returns[:, 1], torch.tensor(expected_env1))


def test_gae_autoreset_rows_do_not_leak_into_the_episode_before():
    rewards, values, bootstrap_values, terminated, truncated = rollout_with_both_endings()
    advantages, _ = generalized_advantages(
        rewards, values, bootstrap_values, terminated, truncated, GAMMA, LAMBDA
    )
    # whatever the autoreset rows hold (their reward, the next episode's values),
    # the transitions of the episodes before them keep their advantages
    rewards[[2, 5], 0] = 100.0
    values[3, 0] = -50.0
    changed, _ = generalized_advantages(
        rewards, values, bootstrap_values, terminated, truncated, GAMMA, LAMBDA
    )
    torch.testing.assert_close(changed[[0, 1], 0], advantages[[0, 1], 0])
    torch.testing.assert_close(changed[4, 0], advantages[4, 0])


def test_gae_with_lambda_one_gives_discounted_returns():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    no_end = torch.zeros(3, 1, dtype=torch.bool)
    _, returns = generalized_advantages(
        rewards, torch.zeros(3, 1), torch.tensor([4.0]), no_end, no_end, 0.5, 1.0
    )
    # 1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 4, then 2 + 0.5 * 3 + 0.25 * 4, then 3 + 0.5 * 4
    torch.testing.assert_close(returns[:, 0], torch.tensor([3.25, 4.5, 5.0]))
