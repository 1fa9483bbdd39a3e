"""BaseTask: optimizer and scheduler injection for every family, hyperparameters, images."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader, TensorDataset

from catlight.latent import Catnat, DiscreteLatent, ReinMax
from catlight.tasks import BaseTask, CategoricalVAE
from tests.scale_families import FAMILIES, fit_args


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory):
    """One tiny data folder per family, written (or simulated) once."""
    return {name: tmp_path_factory.mktemp(f"base_{name}") for name in FAMILIES}


@pytest.mark.parametrize("family_name", list(FAMILIES))
def test_optimizer_and_scheduler_on_the_command_line_train_every_family(
    family_name, run_cli, data_dirs
):
    family = FAMILIES[family_name]
    injected = ("--optimizer", "AdamW", "--optimizer.lr", "0.003")
    injected += ("--lr_scheduler", "CosineAnnealingLR", "--lr_scheduler.T_max", "10")
    args = fit_args(family, data_dirs[family_name], *injected, "--trainer.fast_dev_run=1")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*configure_optimizers` will be overridden")
        cli = run_cli("fit", *args)
    assert cli.trainer.global_step >= 1
    (optimizer,) = cli.trainer.optimizers
    assert isinstance(optimizer, torch.optim.AdamW)
    (config,) = cli.trainer.lr_scheduler_configs
    assert isinstance(config.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert config.scheduler.base_lrs == [0.003] * len(optimizer.param_groups)


def test_an_injected_optimizer_alone_keeps_the_task_default_scheduler(run_cli, data_dirs):
    family = FAMILIES["nri"]
    args = fit_args(family, data_dirs["nri"], "--optimizer", "SGD", "--optimizer.lr", "0.1")
    cli = run_cli("fit", *args, "--trainer.fast_dev_run=1")
    assert isinstance(cli.trainer.optimizers[0], torch.optim.SGD)
    (config,) = cli.trainer.lr_scheduler_configs
    assert isinstance(config.scheduler, torch.optim.lr_scheduler.StepLR)  # NRI's decay


@pytest.mark.parametrize(
    ("scheduler", "monitor"),
    [
        (("--lr_scheduler", "ReduceLROnPlateau", "--lr_scheduler.monitor", "val/kl"), "val/kl"),
        (
            ("--model.init_args.lr_scheduler", "torch.optim.lr_scheduler.ReduceLROnPlateau"),
            "val/nll",
        ),
    ],
)
def test_reduce_on_plateau_watches_its_own_metric_or_the_task_one(
    scheduler, monitor, run_cli, data_dirs
):
    family = FAMILIES["nri"]
    cli = run_cli("fit", *fit_args(family, data_dirs["nri"], *scheduler), "--trainer.max_steps=2")
    (config,) = cli.trainer.lr_scheduler_configs
    assert isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert config.monitor == monitor


def test_the_optimizer_in_yaml_is_a_model_setting(run_cli, data_dirs):
    family = FAMILIES["semisupervised"]
    sgd = "--model.init_args.optimizer={class_path: torch.optim.SGD, init_args: {lr: 0.05}}"
    cli = run_cli(
        "fit", *fit_args(family, data_dirs["semisupervised"], sgd), "--trainer.fast_dev_run=1"
    )
    (optimizer,) = cli.trainer.optimizers
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["lr"] == 0.05


def test_hyperparameters_hold_every_argument_of_the_task_and_its_subclass():
    class Wider(CategoricalVAE):
        def __init__(self, width: int = 7, **kwargs) -> None:
            super().__init__(decoder_sizes=[width], **kwargs)

    model = Wider(width=5, num_latents=3)
    assert model.hparams.width == 5
    assert model.hparams.num_latents == 3
    assert model.hparams.optimizer is None and model.hparams.lr_scheduler is None


def test_a_task_built_in_python_resumes_from_its_checkpoint(tmp_path):
    """Its latent layer is a pickled hyperparameter; Lightning resumes weights-only."""

    def model() -> CategoricalVAE:
        latent = DiscreteLatent(4, Catnat(), ReinMax(tau=1.5))
        return CategoricalVAE(latent, num_latents=2, encoder_sizes=[8], decoder_sizes=[8])

    images = torch.bernoulli(torch.full((16, 784), 0.5), generator=torch.Generator().manual_seed(0))
    loader = DataLoader(TensorDataset(images), batch_size=8)
    settings = {
        "default_root_dir": tmp_path,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "limit_val_batches": 0,
    }
    Trainer(max_epochs=1, **settings).fit(model(), loader)
    checkpoint = next((tmp_path / "checkpoints").glob("*.ckpt"))
    resumed = model()
    trainer = Trainer(max_epochs=2, **settings)
    trainer.fit(resumed, loader, ckpt_path=checkpoint)
    assert trainer.global_step == 4
    reloaded = CategoricalVAE.load_from_checkpoint(checkpoint)
    assert isinstance(reloaded.latent.estimator, ReinMax)
    assert reloaded.latent.estimator.tau == 1.5


@pytest.mark.parametrize("family_name", list(FAMILIES))
def test_every_task_draws_images_in_the_unit_range(family_name, run_cli, data_dirs):
    family = FAMILIES[family_name]
    cli = run_cli("fit", *fit_args(family, data_dirs[family_name]), "--trainer.fast_dev_run=1")
    model = cli.model
    assert isinstance(model, BaseTask)
    if family_name == "rl":  # returns and lengths are scalars, logged as such
        assert model.images(None, "val") == {}
        return
    batch = next(iter(cli.datamodule.val_dataloader()))
    model.eval()
    with torch.no_grad():
        images = model.images(batch, "val")
    assert images and all(tag.startswith("val/") for tag in images)
    for tag, image in images.items():
        assert image.dim() == 3 and image.shape[0] in (1, 3), tag
        assert 0 <= image.min() and image.max() <= 1, tag


@pytest.mark.parametrize("family_name", list(FAMILIES))
def test_the_default_adam_is_fused_on_cpu(family_name, run_cli, data_dirs):
    family = FAMILIES[family_name]
    default = "--model.init_args.optimizer=null"  # the SBN's configs inject SGD
    args = fit_args(family, data_dirs[family_name], default)
    cli = run_cli("fit", *args, "--trainer.fast_dev_run=1")
    (optimizer,) = cli.trainer.optimizers
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.defaults["fused"] is (True if torch.__version__ >= (2, 4) else None)


def test_clipping_under_mixed_precision_keeps_adam_unfused(run_cli, data_dirs):
    """Lightning cannot clip a fused optimizer's gradients under mixed precision."""
    family = FAMILIES["vae"]
    args = fit_args(family, data_dirs["vae"], "--trainer.precision=bf16-mixed")
    cli = run_cli("fit", *args, "--trainer.gradient_clip_val=1.0", "--trainer.fast_dev_run=2")
    assert cli.trainer.global_step == 2
    assert cli.trainer.optimizers[0].defaults["fused"] is None


def test_the_fused_adam_takes_the_default_adams_steps():
    torch.manual_seed(0)
    models = [CategoricalVAE(num_latents=3, encoder_sizes=[16], decoder_sizes=[16])]
    models.append(copy.deepcopy(models[0]))
    fused, default = models[0].adam(lr=1e-2), torch.optim.Adam(models[1].parameters(), lr=1e-2)
    assert fused.defaults["fused"] is (True if torch.__version__ >= (2, 4) else None)
    images = torch.bernoulli(torch.full((8, 784), 0.5))
    for _ in range(5):
        for model, optimizer in zip(models, (fused, default), strict=True):
            torch.manual_seed(1)  # the same relaxed samples in both
            optimizer.zero_grad()
            model.loss(images).mean().backward()
            optimizer.step()
    for fused_weight, weight in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(fused_weight, weight, rtol=1e-4, atol=1e-5)
