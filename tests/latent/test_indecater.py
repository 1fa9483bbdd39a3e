"""IndeCateR: one row per category of each variable, Rao-Blackwellised value."""

import itertools

import pytest
import torch

from catlight.latent import DiscreteLatent, IndeCateR, Softmax


def test_indecater_rows_set_one_variable_to_each_category():
    torch.manual_seed(0)
    num_samples, num_variables, num_categories, batch = 2, 3, 4, 5
    layer = DiscreteLatent(num_categories, Softmax(), IndeCateR(num_samples))
    out = layer(torch.randn(batch, num_variables, num_categories))
    rows = out.z.view(num_samples, num_variables, num_categories, batch, num_variables, -1)
    categories = rows.argmax(-1)  # (n, N, K, batch, N)
    # each variable's sampled category, read from a row substituting another variable
    sampled = torch.stack(
        [categories[:, (v + 1) % num_variables, 0, :, v] for v in range(num_variables)], -1
    )
    for variable, category in itertools.product(range(num_variables), range(num_categories)):
        row = categories[:, variable, category]  # (n, batch, N)
        assert (row[..., variable] == category).all()
        others = [v for v in range(num_variables) if v != variable]
        torch.testing.assert_close(row[..., others], sampled[..., others])


def test_indecater_never_substitutes_a_masked_category():
    torch.manual_seed(0)
    mask = torch.tensor([True, False, True])
    layer = DiscreteLatent(3, Softmax(), IndeCateR(2))
    out = layer(torch.randn(4, 2, 3), mask=mask)
    assert out.z.shape == (2 * 2 * 3, 4, 2, 3)
    assert (out.z[..., 1] == 0).all()
    cost = out.z[..., 0].sum(-1)
    assert torch.isfinite(out.objective(cost)).all()


@pytest.mark.parametrize("num_samples", [0, 1.5, True])
def test_indecater_rejects_bad_num_samples(num_samples):
    with pytest.raises(ValueError, match=r"IndeCateR: num_samples must be an int >= 1"):
        IndeCateR(num_samples)
