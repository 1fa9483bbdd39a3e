"""Mixed precision on CPU: bf16-mixed fits of every family stay finite, the latent
stays float32 under Lightning's autocast, and gradient scaling works through the
custom backward passes of the straight-through estimators and through ActorCritic's
manual optimisation (its gradient clipping must see the unscaled gradient).

On CPU Lightning turns ``16-mixed`` into ``bf16-mixed`` (no fp16 autocast, no
GradScaler); the GradScaler tests drive ``torch.amp`` directly with fp16 autocast.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.plugins import MixedPrecision
from torch import nn

from catlight.latent import ESTIMATORS as REGISTRY
from catlight.latent import DiscreteLatent, Softmax
from catlight.tasks.rl import ActorCritic, GymnasiumDataModule
from catlight.tasks.vae import CategoricalVAE
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
    assert trainer.global_step == 4 * family.optimizer_steps_per_batch
    for metric in family.metrics:
        assert math.isfinite(trainer.callback_metrics[metric].item()), metric
    for parameter_name, parameter in cli.model.named_parameters():
        assert parameter.dtype == torch.float32, parameter_name
        assert torch.isfinite(parameter).all(), parameter_name

    # under the trainer's own autocast the latent's log-probabilities and samples (for
    # RL: the policy's log-probabilities) are float32, while an ordinary layer computes
    # in bf16
    with trainer.precision_plugin.forward_context():
        outputs = family.float32_outputs(cli.model)
        assert nn.Linear(3, 3)(torch.ones(1, 3)).dtype == torch.bfloat16
    for output in outputs:
        assert output.dtype == torch.float32
        assert torch.isfinite(output).all()


# the registry's pathwise estimators: their gradient goes back through the sample
ESTIMATORS = [name for name, entry in REGISTRY.items() if entry.pathwise]


def scaled_gradients(estimator_name: str, scale: float) -> tuple[dict, torch.amp.GradScaler, dict]:
    """One fp16-autocast VAE step on CPU through a GradScaler.

    Returns the unscaled gradients, the scaler after its step and the parameters after it.
    """
    torch.manual_seed(0)
    latent = DiscreteLatent(4, Softmax(), REGISTRY[estimator_name].build())
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
    latent = DiscreteLatent(4, Softmax(), REGISTRY[estimator_name].build())
    initial = CategoricalVAE(latent, num_latents=3, encoder_sizes=[16], decoder_sizes=[16])
    for name, value in initial.named_parameters():
        assert torch.equal(after[name], value.detach()), name  # the step was skipped
    assert not torch.equal(before["encoder.0.weight"], after["encoder.0.weight"])


# -- gradient clipping under manual optimisation (ActorCritic) -----------------------------


def one_rollout_update(tmp_path: Path, plugins: list) -> dict[str, torch.Tensor]:
    """How one A2C update on one CartPole rollout moves the parameters (seed 0)."""
    seed_everything(0)
    latent = DiscreteLatent(2, Softmax())
    model = ActorCritic(
        latent,
        algorithm="a2c",
        optimizer=lambda params: torch.optim.RMSprop(params, lr=2.5e-4, alpha=0.99, eps=1e-5),
        update_epochs=1,
        num_minibatches=1,
        anneal_learning_rate=False,
        normalize_advantages=False,
        max_grad_norm=0.5,
    )
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    data = GymnasiumDataModule(num_envs=2, num_steps=8, total_env_steps=16, eval_episodes=1)
    trainer = Trainer(
        accelerator="cpu",
        plugins=plugins,
        max_epochs=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, data)
    assert trainer.global_step == 1
    return {name: p.detach() - before[name] for name, p in model.named_parameters()}


def test_manual_optimisation_clips_the_unscaled_gradient_under_a_grad_scaler(tmp_path):
    """ActorCritic clips its gradient norm by hand: with fp16 and a GradScaler that must
    happen after unscaling, or it clips ``scale x`` the gradient and the update shrinks
    by about the scale (2**10 here)."""
    full = one_rollout_update(tmp_path / "32", [])
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    scaled = one_rollout_update(tmp_path / "16", [MixedPrecision("16-mixed", "cpu", scaler)])
    assert scaler.get_scale() == 2.0**10  # the step was taken
    for name, change in full.items():
        assert change.norm() > 0, name
        # fp16 autocast moves the update by rounding only
        assert (scaled[name] - change).norm() < 0.1 * change.norm(), name
