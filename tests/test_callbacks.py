"""Callbacks: estimator steps (temperature schedule, baseline) and image logging."""

from __future__ import annotations

import csv
import io
import math
import random
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from catlight.callbacks import EstimatorStep, LogImages, RandomState
from catlight.data import BinarizedMNISTDataModule, TensorLoader
from catlight.latent import (
    DiscreteLatent,
    GumbelSoftmax,
    Reinforce,
    ReinMax,
    Softmax,
    StraightThroughGumbelSoftmax,
)
from catlight.tasks import BaseTask
from catlight.tasks.vae import CategoricalVAE

# -- EstimatorStep: the temperature schedule and the baseline, once per optimizer step ----


def schedule(step: int, tau: float, tau_min: float, anneal_rate: float, anneal_interval: int):
    updated_at = anneal_interval * (step // anneal_interval)
    return max(tau_min, tau * math.exp(-anneal_rate * updated_at))


class TinyLatentModel(BaseTask):
    """x -> scores -> DiscreteLatent -> z -> reconstruction of x; records tau per step."""

    def __init__(self, estimator: nn.Module) -> None:
        super().__init__()
        self.encoder = nn.Linear(4, 2 * 3)
        self.latent = DiscreteLatent(3, Softmax(), estimator)
        self.decoder = nn.Linear(2 * 3, 4)
        self.seen_taus: list[tuple[int, float]] = []

    def training_step(self, batch, batch_idx):
        if hasattr(self.latent.estimator, "tau"):
            self.seen_taus.append((self.global_step, self.latent.estimator.tau.item()))
        (x,) = batch
        out = self.latent(self.encoder(x).view(-1, 2, 3))
        cost = ((self.decoder(out.z.flatten(-2)) - x) ** 2).sum(-1)
        return out.objective(cost).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return TensorLoader((torch.randn(16, 4),), batch_size=2, shuffle=True)


def quiet_trainer(tmp_path, **kwargs) -> Trainer:
    settings = {
        "default_root_dir": tmp_path,
        "accelerator": "cpu",
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "logger": False,
        **kwargs,
    }
    return Trainer(**settings)


def test_estimator_step_anneals_and_logs_tau_during_a_plain_trainer_fit(tmp_path):
    torch.manual_seed(0)
    settings = {"tau": 1.0, "tau_min": 0.5, "anneal_rate": 0.1, "anneal_interval": 2}
    model = TinyLatentModel(GumbelSoftmax(**settings))
    trainer = quiet_trainer(tmp_path, max_steps=9, logger=CSVLogger(tmp_path), log_every_n_steps=1)
    trainer.fit(model)  # no callback given: the model's configure_callbacks adds EstimatorStep

    assert [step for step, _ in model.seen_taus] == list(range(9))
    for step, tau in model.seen_taus:
        assert tau == pytest.approx(schedule(step, **settings)), step
    assert {tau for _, tau in model.seen_taus} >= {1.0, 0.5}  # decays and hits the floor
    assert model.latent.estimator.num_steps.item() == 9
    assert trainer.callback_metrics["tau"].item() == pytest.approx(schedule(9, **settings))

    with open(tmp_path / "lightning_logs" / "version_0" / "metrics.csv") as file:
        logged = [
            (int(row["step"]), float(row["tau"])) for row in csv.DictReader(file) if row["tau"]
        ]
    assert [step for step, _ in logged] == list(range(9))
    for step, tau in logged:  # logged after the step: the temperature of the next one
        assert tau == pytest.approx(schedule(step + 1, **settings)), step


def test_estimator_step_runs_once_per_optimizer_step_with_gradient_accumulation(tmp_path):
    torch.manual_seed(0)
    model = TinyLatentModel(Reinforce(baseline="moving_average", decay=0.5))
    steps = []
    model.latent.estimator.step = lambda: steps.append(model.global_step)
    trainer = quiet_trainer(tmp_path, max_steps=3, accumulate_grad_batches=2)
    trainer.fit(model)
    assert trainer.global_step == 3
    assert steps == [1, 2, 3]  # 6 batches, 3 optimizer steps


def test_estimator_step_resumed_fit_continues_the_schedule(tmp_path):
    torch.manual_seed(0)
    settings = {"tau": 1.0, "tau_min": 0.2, "anneal_rate": 0.1, "anneal_interval": 3}
    first = TinyLatentModel(GumbelSoftmax(**settings))
    trainer = quiet_trainer(tmp_path, max_steps=5)
    trainer.fit(first)
    checkpoint = tmp_path / "step5.ckpt"
    trainer.save_checkpoint(checkpoint)

    resumed = TinyLatentModel(GumbelSoftmax(**settings))
    trainer = quiet_trainer(tmp_path, max_steps=10)
    trainer.fit(resumed, ckpt_path=checkpoint)
    assert [step for step, _ in resumed.seen_taus] == list(range(5, 10))
    for step, tau in resumed.seen_taus:
        assert tau == pytest.approx(schedule(step, **settings)), step


def test_estimator_step_steps_every_estimator_of_the_model():
    model = nn.ModuleDict(
        {
            "a": DiscreteLatent(3, Softmax(), GumbelSoftmax(1.0, tau_min=0.1, anneal_rate=0.1)),
            "b": DiscreteLatent(3, Softmax(), ReinMax(tau=3.0)),
            "c": DiscreteLatent(3, Softmax(), StraightThroughGumbelSoftmax(2.0)),
        }
    )
    logged = {}
    model.log = lambda name, value: logged.update({name: float(value)})
    callback = EstimatorStep()
    for step in range(3):
        trainer = SimpleNamespace(global_step=step + 1, log_every_n_steps=1, fast_dev_run=False)
        callback.on_train_batch_start(SimpleNamespace(global_step=step), model, None, step)
        callback.on_train_batch_end(trainer, model, None, None, step)
    assert model["a"].estimator.tau.item() == pytest.approx(math.exp(-0.3))
    assert model["a"].estimator.num_steps.item() == model["c"].estimator.num_steps.item() == 3
    assert model["b"].estimator.tau.item() == 3.0  # ReinMax: a fixed temperature
    assert model["c"].estimator.tau.item() == 2.0  # no schedule
    assert logged == {"tau": pytest.approx(math.exp(-0.3))}  # only the annealed one


def test_estimator_step_logs_tau_only_on_the_steps_lightning_writes():
    # a self.log costs ~0.5 ms on a CPU: tau is logged on the steps that reach the logger
    model = nn.ModuleDict(
        {"a": DiscreteLatent(3, Softmax(), GumbelSoftmax(1.0, tau_min=0.1, anneal_rate=0.1))}
    )
    logged_at = []
    model.log = lambda name, value: logged_at.append(step + 1)
    callback = EstimatorStep()
    for step in range(6):
        trainer = SimpleNamespace(global_step=step + 1, log_every_n_steps=3, fast_dev_run=False)
        callback.on_train_batch_start(SimpleNamespace(global_step=step), model, None, step)
        callback.on_train_batch_end(trainer, model, None, None, step)
    assert logged_at == [3, 6]
    assert model["a"].estimator.num_steps.item() == 6  # the schedule steps every step


# -- LogImages: what a task's images() returns, once per validation and test epoch ----------


class FakeImageTask(nn.Module):
    """A task whose ``images`` records its calls and returns one image per stage."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[float, str]] = []

    def images(self, batch, stage):
        self.calls.append((batch[0].sum().item(), stage))
        return {f"{stage}/fake": torch.full((1, 2, 3), 0.5)}


class RecordingTensorBoardLogger(TensorBoardLogger):
    """A TensorBoardLogger whose SummaryWriter is a mock that records the calls."""

    def __init__(self, save_dir) -> None:
        super().__init__(save_dir)
        self.writer = mock.MagicMock()

    @property
    def experiment(self):
        return self.writer


def run_image_callback(callback, model, loggers, stage="val", sanity_checking=False, rank=0):
    trainer = SimpleNamespace(
        loggers=loggers, sanity_checking=sanity_checking, is_global_zero=rank == 0, global_step=7
    )
    batch_end = getattr(callback, f"on_{'validation' if stage == 'val' else 'test'}_batch_end")
    batch_end(trainer, model, None, (torch.ones(2, 3),), 0)
    batch_end(trainer, model, None, (torch.zeros(2, 3),), 1)
    getattr(callback, f"on_{'validation' if stage == 'val' else 'test'}_epoch_end")(trainer, model)


@pytest.mark.parametrize("stage", ["val", "test"])
def test_log_images_logs_what_the_task_draws_from_the_first_batch(tmp_path, stage):
    model, logger = FakeImageTask(), RecordingTensorBoardLogger(tmp_path)
    run_image_callback(LogImages(), model, [logger], stage)
    assert model.calls == [(6.0, stage)]  # the first batch, not the second
    (call,) = logger.writer.add_image.call_args_list
    tag, image, step = call.args
    assert (tag, step) == (f"{stage}/fake", 7)
    assert image.shape == (1, 2, 3) and (image == 0.5).all()


def test_log_images_asks_every_rank_and_writes_on_rank_zero_only(tmp_path):
    model, logger = FakeImageTask(), RecordingTensorBoardLogger(tmp_path)
    run_image_callback(LogImages(), model, [logger], rank=1)
    assert len(model.calls) == 1  # a task may sync metrics inside images()
    logger.writer.add_image.assert_not_called()


def test_log_images_does_nothing_without_tensorboard_or_in_the_sanity_check(tmp_path):
    model = FakeImageTask()
    for loggers in ([CSVLogger(tmp_path)], []):
        run_image_callback(LogImages(), model, loggers)
    logger = RecordingTensorBoardLogger(tmp_path)
    run_image_callback(LogImages(), model, [logger], sanity_checking=True)
    assert model.calls == []
    logger.writer.add_image.assert_not_called()


def test_log_images_skips_a_model_without_images(tmp_path):
    logger = RecordingTensorBoardLogger(tmp_path)
    run_image_callback(LogImages(), nn.Linear(1, 1), [logger])
    logger.writer.add_image.assert_not_called()


def test_vae_images_reach_tensorboard_during_fit_and_test(tmp_path, binarized_mnist_dir):
    torch.manual_seed(0)
    model = CategoricalVAE(num_latents=2, encoder_sizes=[8], decoder_sizes=[8])
    data = BinarizedMNISTDataModule(
        data_dir=str(binarized_mnist_dir), batch_size=8, eval_batch_size=8, download=False
    )
    logger = TensorBoardLogger(tmp_path)
    trainer = quiet_trainer(
        tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1, logger=logger
    )
    trainer.fit(model, data)  # the task adds LogImages itself
    trainer.test(model, data)
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    tags = {
        f"{stage}/{name}"
        for stage in ("val", "test")
        for name in ("reconstructions", "prior_samples")
    }
    assert set(events.Tags()["images"]) == tags
    (reconstructions,) = events.Images("val/reconstructions")  # one validation epoch
    # 8 inputs beside their 8 reconstructions: 16 tiles of 28 x 28 in 2 rows of 8
    assert (reconstructions.height, reconstructions.width) == (2 * 28, 8 * 28)
    assert reconstructions.step == 1
    (samples,) = events.Images("val/prior_samples")  # 32 samples: 4 rows of 8
    assert (samples.height, samples.width) == (4 * 28, 8 * 28)


# -- RandomState -----------------------------------------------------------------------


def draws() -> tuple[list[float], list[float], list[float]]:
    """A few numbers from each generator RandomState keeps: torch, numpy, random."""
    return (
        torch.rand(3).tolist(),
        np.random.random(3).tolist(),  # noqa: NPY002 (the global generator is the point)
        [random.random() for _ in range(3)],
    )


@pytest.mark.parametrize("rank", [1, 3])
def test_random_state_reseeds_rank_r_with_seed_plus_r(rank, monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")
    torch.manual_seed(123)
    RandomState().setup(SimpleNamespace(global_rank=rank), None, "fit")
    seeded = draws()
    torch.manual_seed(7 + rank)
    np.random.seed(7 + rank)  # noqa: NPY002
    random.seed(7 + rank)
    assert seeded == draws()


def test_random_state_leaves_rank_zero_stream_alone(monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    RandomState().setup(SimpleNamespace(global_rank=0), None, "fit")
    assert torch.equal(torch.rand(3), expected)


def test_random_state_checkpoint_restores_every_generator_after_a_weights_only_load():
    trainer = SimpleNamespace(world_size=1, global_rank=0)
    torch.manual_seed(0)
    checkpoint: dict = {}
    RandomState().on_save_checkpoint(trainer, None, checkpoint)
    expected = draws()
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)  # what Trainer.fit(ckpt_path=...) does
    draws()  # move every generator on
    RandomState().on_load_checkpoint(trainer, None, loaded)
    assert draws() == expected


@pytest.mark.parametrize(
    ("checkpoint", "saved"),
    [({}, "no random state"), ({"random_states": [{}, {}]}, "2 ranks")],
    ids=["without_states", "other_world_size"],
)
def test_random_state_warns_and_restores_nothing_from_a_foreign_checkpoint(checkpoint, saved):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    trainer = SimpleNamespace(world_size=1, global_rank=0)
    with pytest.warns(UserWarning, match=f"RandomState: the checkpoint holds {saved} and this"):
        RandomState().on_load_checkpoint(trainer, None, checkpoint)
    assert torch.equal(torch.rand(3), expected)
