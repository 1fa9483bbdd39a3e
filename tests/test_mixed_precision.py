"""Mixed precision on CPU: bf16-mixed fits of every family stay finite, the latent
stays float32 under Lightning's autocast, and gradient scaling works through the
custom backward passes of the straight-through estimators.

On CPU Lightning turns ``16-mixed`` into ``bf16-mixed`` (no fp16 autocast, no
GradScaler); the GradScaler tests drive ``torch.amp`` directly with fp16 autocast.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from catlight.latent import (
    DiscreteLatent,
    ReinMax,
    Softmax,
    StraightThrough,
    StraightThroughGumbelSoftmax,
)
from catlight.models import CategoricalVAE
from tests.scale_families import FAMILIES, fit_args


@pytest.mark.filterwarnings("ignore:You passed `Trainer.accelerator='cpu', precision='16-mixed'")
@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
@pytest.mark.parametrize("name", FAMILIES)
def test_mixed_precision_fit_stays_finite(name, precision, run_cli, tmp_path):
    family = FAMILIES[name]
    cli = run_cli(
        "fit",
        *fit_args(
            family,
            tmp_path / "data",
            f"--trainer.precision={precision}",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=4",
        ),
    )
    trainer = cli.trainer
    assert trainer.precision == "bf16-mixed"  # 16-mixed becomes bf16 on CPU
    assert trainer.global_step == 4
    for metric in family.metrics:
        assert math.isfinite(trainer.callback_metrics[metric].item()), metric
    for parameter_name, parameter in cli.model.named_parameters():
        assert parameter.dtype == torch.float32, parameter_name
        assert torch.isfinite(parameter).all(), parameter_name

    # under the trainer's own autocast the latent's log-probabilities and samples are
    # float32, while an ordinary layer computes in bf16
    latent = cli.model.get_submodule(family.latent)
    scores = 30 * torch.randn(8, 2, latent.num_scores).bfloat16()
    with trainer.precision_plugin.forward_context():
        out = latent(scores)
        assert nn.Linear(3, 3)(torch.ones(1, 3)).dtype == torch.bfloat16
    assert out.log_probs.dtype == out.z.dtype == torch.float32
    assert torch.isfinite(out.log_probs).all() and torch.isfinite(out.z).all()


ESTIMATORS = {
    "reinmax": lambda: ReinMax(tau=1.3),
    "st": lambda: StraightThrough(),
    "st_gs": lambda: StraightThroughGumbelSoftmax(),
}


def scaled_gradients(estimator_name: str, scale: float) -> tuple[dict, torch.amp.GradScaler, dict]:
    """One fp16-autocast VAE step on CPU through a GradScaler.

    Returns the unscaled gradients, the scaler after its step and the parameters after it.
    """
    torch.manual_seed(0)
    latent = DiscreteLatent(4, Softmax(), ESTIMATORS[estimator_name]())
    model = CategoricalVAE(latent, num_latents=3, encoder_sizes=[16], decoder_sizes=[16])
    images = torch.bernoulli(torch.full((8, 784), 0.3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=scale)
    with torch.autocast("cpu", dtype=torch.float16):
        loss = model.loss(images).mean()
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    gradients = {name: p.grad.clone() for name, p in model.named_parameters()}
    scaler.step(optimizer)
    scaler.update()
    return gradients, scaler, {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("estimator_name", ESTIMATORS)
def test_grad_scaler_unscales_the_custom_backward_exactly(estimator_name):
    reference, _, _ = scaled_gradients(estimator_name, scale=1.0)
    gradients, scaler, _ = scaled_gradients(estimator_name, scale=2.0**10)
    assert scaler.get_scale() == 2.0**10  # finite gradients: the step was taken
    encoder = reference["encoder.0.weight"]
    assert encoder.abs().sum() > 0  # the estimator's backward reached the encoder
    for name, value in reference.items():
        # a power-of-two scale is exact in fp16 until it overflows or underflows
        torch.testing.assert_close(gradients[name], value, rtol=1e-3, atol=1e-6, msg=name)


@pytest.mark.parametrize("estimator_name", ESTIMATORS)
def test_grad_scaler_skips_the_step_when_the_scaled_gradient_overflows(estimator_name):
    _, _, before = scaled_gradients(estimator_name, scale=1.0)
    torch.manual_seed(0)
    gradients, scaler, after = scaled_gradients(estimator_name, scale=2.0**40)
    assert scaler.get_scale() == 2.0**39  # halved after the overflow
    assert not all(torch.isfinite(g).all() for g in gradients.values())
    torch.manual_seed(0)
    latent = DiscreteLatent(4, Softmax(), ESTIMATORS[estimator_name]())
    initial = CategoricalVAE(latent, num_latents=3, encoder_sizes=[16], decoder_sizes=[16])
    for name, value in initial.named_parameters():
        assert torch.equal(after[name], value.detach()), name  # the step was skipped
    assert not torch.equal(before["encoder.0.weight"], after["encoder.0.weight"])
