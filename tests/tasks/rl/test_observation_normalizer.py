"""ObservationNormalizer: merged running moments, rank reduction, clipping, checkpointing."""

from __future__ import annotations

import pytest
import torch

from catlight.tasks.rl.observation_normalizer import ObservationNormalizer


def test_normalizer_merging_batches_equals_the_moments_of_their_union():
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(50, 3, generator=generator) * 4 + 2
    second = torch.randn(30, 3, generator=generator) - 1
    normalizer = ObservationNormalizer(3)
    normalizer.update(first)
    normalizer.update(second)
    union = torch.cat([first, second]).double()
    torch.testing.assert_close(normalizer.mean, union.mean(0))
    torch.testing.assert_close(normalizer.var, union.var(0, correction=0))
    assert normalizer.count.item() == 80


def test_normalizer_with_a_rank_sum_counts_every_rank():
    batch = torch.tensor([[1.0], [3.0]])
    normalizer = ObservationNormalizer(1)
    # two ranks holding the same batch: the sum doubles the moments
    normalizer.update(batch, reduce=lambda moments: 2 * moments)
    assert normalizer.count.item() == 4
    torch.testing.assert_close(normalizer.mean, torch.tensor([2.0], dtype=torch.float64))
    torch.testing.assert_close(normalizer.var, torch.tensor([1.0], dtype=torch.float64))


def test_normalizer_is_the_identity_until_updated_and_clips():
    normalizer = ObservationNormalizer(2, clip=5.0)
    torch.testing.assert_close(normalizer(torch.tensor([[1.0, -2.0]])), torch.tensor([[1.0, -2.0]]))
    normalizer.update(torch.tensor([[0.0, 0.0], [2.0, 2.0]]))  # mean 1, variance 1
    torch.testing.assert_close(
        normalizer(torch.tensor([[3.0, 100.0]])), torch.tensor([[2.0, 5.0]]), atol=1e-6, rtol=0
    )
    normalizer.update(torch.zeros(0, 2))  # an empty batch changes nothing
    assert normalizer.count.item() == 2


def test_normalizer_statistics_are_checkpointed_buffers():
    normalizer = ObservationNormalizer(2)
    normalizer.update(torch.tensor([[0.0, 1.0], [4.0, 3.0]]))
    restored = ObservationNormalizer(2)
    restored.load_state_dict(normalizer.state_dict())
    torch.testing.assert_close(restored.mean, normalizer.mean)
    torch.testing.assert_close(restored.var, normalizer.var)


@pytest.mark.parametrize("kwargs", [{"size": 0}, {"size": 2, "clip": 0.0}, {"size": 2, "eps": -1}])
def test_normalizer_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError, match="ObservationNormalizer: size must be >= 1"):
        ObservationNormalizer(**kwargs)
