"""SemiSupervisedVAE: its bounds against enumeration, its loss, metrics and configs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.distributions import Normal, kl_divergence

from catlight.latent import (
    ESTIMATORS,
    Catnat,
    DiscreteLatent,
    Exact,
    GumbelSoftmax,
    LeaveOneOut,
    Reinforce,
    Softmax,
)
from catlight.tasks.semisupervised import SemiSupervisedVAE
from catlight.tasks.semisupervised.m2 import confusion_image
from tests.config_checks import assert_print_config_resolves
from tests.logged_steps import logged_steps

REPO = Path(__file__).resolve().parents[3]
CONFIG_FILES = sorted((REPO / "configs" / "semisupervised").rglob("*.yaml"))
CONFIG_IDS = [str(path.relative_to(REPO / "configs")) for path in CONFIG_FILES]
NUM_CLASSES, PIXELS = 4, 16
# tiny IDX data for CLI runs: every class 6 times in train, twice in test
TRAIN_SIZE, TEST_SIZE, VALID_SIZE = 60, 20, 10


def small_model(estimator=None, parameterization=None, **kwargs) -> SemiSupervisedVAE:
    latent = DiscreteLatent(NUM_CLASSES, parameterization or Softmax(), estimator or Exact())
    settings = {"latent_size": 3, "hidden_size": 8, "input_size": PIXELS, "alpha": 1.0, **kwargs}
    return SemiSupervisedVAE(latent=latent, **settings)


def binary_images(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((count, PIXELS), 0.5), generator=generator)


@pytest.fixture
def no_z_noise(monkeypatch):
    """z = mean of q(z|x,y): the bounds become deterministic functions of the weights."""
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)


@pytest.mark.parametrize("parameterization", [Softmax(), Catnat()], ids=["softmax", "catnat"])
def test_exact_unlabeled_loss_is_the_q_weighted_sum_of_labeled_bounds(parameterization, no_z_noise):
    # U(x) = sum_y q(y|x) L(x, y) - H(q(y|x)): the K labeled bounds summed by hand
    torch.manual_seed(0)
    model = small_model(parameterization=parameterization)
    images = binary_images(5)
    loss = model.unlabeled_loss(images)

    log_q = model.label_log_probs(images)
    labeled = torch.stack(
        [model.labeled_neg_elbo(images, torch.full((5,), k)) for k in range(NUM_CLASSES)], -1
    )
    entropy = -(log_q.exp() * log_q).sum(-1)
    expected = (log_q.exp() * labeled).sum(-1) - entropy
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-4)

    names, parameters = zip(*model.named_parameters(), strict=True)
    gradients = torch.autograd.grad(loss.sum(), parameters, allow_unused=True)
    expected_gradients = torch.autograd.grad(expected.sum(), parameters, allow_unused=True)
    for name, got, want in zip(names, gradients, expected_gradients, strict=True):
        if want is None:
            assert got is None or torch.count_nonzero(got) == 0, name
        else:
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=name)


def test_exact_unlabeled_loss_is_expected_label_cost_plus_kl_to_uniform(no_z_noise):
    # the other reading of the same bound: E_q[L - log K] + KL(q || uniform)
    torch.manual_seed(1)
    model = small_model()
    images = binary_images(3)
    log_q = model.label_log_probs(images)
    labeled = torch.stack(
        [model.labeled_neg_elbo(images, torch.full((3,), k)) for k in range(NUM_CLASSES)], -1
    )
    kl = (log_q.exp() * (log_q + math.log(NUM_CLASSES))).sum(-1)
    expected = (log_q.exp() * (labeled - math.log(NUM_CLASSES))).sum(-1) + kl
    torch.testing.assert_close(model.unlabeled_loss(images), expected, rtol=1e-5, atol=1e-4)


def test_labeled_neg_elbo_is_bernoulli_nll_plus_gaussian_kl_plus_log_k(no_z_noise):
    torch.manual_seed(2)
    model = small_model()
    images, labels = binary_images(4), torch.tensor([0, 3, 1, 3])
    one_hot = F.one_hot(labels, NUM_CLASSES).float()
    hidden = torch.relu(model.z_from_x(images) + model.z_from_y(one_hot))
    mean, log_var = model.z_out(hidden).chunk(2, -1)
    logits = model.decoder(torch.cat([one_hot, mean], -1))
    nll = F.binary_cross_entropy_with_logits(logits, images, reduction="none").sum(-1)
    kl = kl_divergence(Normal(mean, (0.5 * log_var).exp()), Normal(0.0, 1.0)).sum(-1)
    expected = nll + kl + math.log(NUM_CLASSES)
    torch.testing.assert_close(model.labeled_neg_elbo(images, labels), expected)


@pytest.mark.parametrize("chunk", [1, 3, 10])
def test_marginal_neg_elbo_equals_the_exact_training_bound_for_any_chunk(chunk, no_z_noise):
    torch.manual_seed(3)
    model = small_model(eval_chunk_size=chunk)
    images = binary_images(6)
    torch.testing.assert_close(
        model.marginal_neg_elbo(images), model.unlabeled_loss(images).detach(), rtol=1e-5, atol=1e-4
    )


def test_single_sample_estimates_average_to_the_exact_bound(no_z_noise):
    # REINFORCE's value is the plain Monte Carlo mean over its samples. Here the label
    # costs differ by < 0.5 nats (standard deviation < 0.2), so with 20,000 samples the
    # standard error is < 0.0015 and the tolerance 0.01 is over 6 standard errors
    torch.manual_seed(4)
    model = small_model(Reinforce(num_samples=20000))
    images = binary_images(3)
    exact = model.marginal_neg_elbo(images)
    estimate = model.unlabeled_loss(images).detach()
    torch.testing.assert_close(estimate, exact, rtol=0, atol=0.01)


@pytest.mark.parametrize(
    "estimator",
    [Exact(), GumbelSoftmax(tau=0.5), Reinforce(), LeaveOneOut(num_samples=3)],
    ids=["exact", "gs", "reinforce", "loo"],
)
def test_unlabeled_loss_trains_the_classifier_and_the_decoder(estimator):
    torch.manual_seed(5)
    model = small_model(estimator)
    model.unlabeled_loss(binary_images(4)).sum().backward()
    for network in (model.classifier, model.decoder, model.z_out):
        assert any(torch.count_nonzero(p.grad) > 0 for p in network.parameters())


def test_training_loss_adds_alpha_times_the_labeled_cross_entropy(no_z_noise):
    torch.manual_seed(6)
    model = small_model(alpha=7.0)
    unlabeled, labeled, labels = binary_images(4), binary_images(3, seed=1), torch.tensor([2, 0, 1])
    loss = model.training_loss((unlabeled, labeled, labels))
    cross_entropy = -model.label_log_probs(labeled)[torch.arange(3), labels].mean()
    expected = (
        model.unlabeled_loss(unlabeled).mean()
        + model.labeled_neg_elbo(labeled, labels).mean()
        + 7.0 * cross_entropy
    )
    torch.testing.assert_close(loss, expected)


def test_conv_architecture_handles_any_number_of_label_samples():
    torch.manual_seed(7)
    model = small_model(LeaveOneOut(num_samples=3), architecture="conv")
    images = binary_images(2)
    assert model.unlabeled_loss(images).shape == (2,)
    assert model.marginal_neg_elbo(images).shape == (2,)
    assert model.reconstruct(images).shape == (2, PIXELS)
    assert model.sample(5).shape == (5, PIXELS)


def test_sample_draws_labels_in_turn():
    torch.manual_seed(8)
    model = small_model()
    inputs = []
    model.decoder.register_forward_hook(lambda module, args, out: inputs.append(args[0]))
    model.sample(6)
    labels = inputs[0][:, :NUM_CLASSES]
    assert labels.argmax(-1).tolist() == [0, 1, 2, 3, 0, 1]


def test_hundred_way_label_runs_on_ten_class_labels():
    latent = DiscreteLatent(100, Softmax(), GumbelSoftmax())
    model = SemiSupervisedVAE(latent, latent_size=3, hidden_size=8, input_size=PIXELS)
    assert model.num_classes == 100
    loss = model.labeled_neg_elbo(binary_images(2), torch.tensor([9, 0]))
    assert loss.shape == (2,)
    assert torch.isfinite(model.unlabeled_loss(binary_images(2))).all()


def test_labels_outside_the_categories_are_rejected():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\).*\[0, 7\]"):
        small_model().labeled_neg_elbo(binary_images(2), torch.tensor([0, 7]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"latent_size": 0}, "latent_size must be >= 1"),
        ({"hidden_size": 0}, "hidden_size must be >= 1"),
        ({"eval_chunk_size": 0}, "eval_chunk_size must be >= 1"),
        ({"alpha": -1.0}, "alpha must be >= 0 or None"),
        ({"activation": "swish"}, "activation must be one of"),
        ({"architecture": "rnn"}, "architecture must be 'mlp' or 'conv'"),
        ({"architecture": "conv", "input_size": 20}, "square images whose side is a multiple"),
    ],
)
def test_invalid_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small_model(**kwargs)


def test_default_latent_is_exact_marginalisation_over_ten_classes():
    model = SemiSupervisedVAE(hidden_size=8, latent_size=2)
    assert model.num_classes == 10
    assert isinstance(model.latent.estimator, Exact)


def test_confusion_image_shows_each_row_as_fractions():
    confusion = torch.tensor([[3, 1], [0, 0]])
    image = confusion_image(confusion, cell_size=2)
    assert image.shape == (1, 4, 4)
    expected = torch.tensor([[0.75, 0.25], [0.0, 0.0]]).repeat_interleave(2, 0)
    torch.testing.assert_close(image[0], expected.repeat_interleave(2, 1))


# ---- configs and CLI runs -------------------------------------------------------------


@pytest.fixture
def tiny_data_dir(tmp_path, mnist_writer) -> Path:
    """MNIST and Fashion-MNIST IDX files, every class equally often (labels i % 10)."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (TRAIN_SIZE, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(TRAIN_SIZE) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (TEST_SIZE, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(TEST_SIZE) % 10).astype(np.uint8),
    }
    mnist_writer(tmp_path / "data" / "mnist", arrays)
    mnist_writer(tmp_path / "data" / "fashion-mnist", arrays)
    return tmp_path / "data"


def tiny_run_args(data_dir: Path) -> list[str]:
    """Small networks, 20 labels, batches of 8 unlabeled and 10 labeled images."""
    return [
        "--data.init_args.data_dir",
        str(data_dir),
        "--data.init_args.download",
        "false",
        "--data.init_args.valid_size",
        str(VALID_SIZE),
        "--data.init_args.num_labeled",
        "20",
        "--data.init_args.labeled_batch_size",
        "10",
        "--data.init_args.batch_size",
        "8",
        "--data.init_args.eval_batch_size",
        "10",
        "--model.init_args.hidden_size",
        "16",
        "--model.init_args.latent_size",
        "4",
    ]


def test_configs_cover_every_estimator_parameterization_and_data_set():
    names = {(path.parent.name, path.stem) for path in CONFIG_FILES}
    # every estimator of the registry but ST
    estimators = [name for name in ESTIMATORS if name != "st"]
    assert names == {
        (data, f"{estimator}_{parameterization}")
        for data in ("mnist", "fashion_mnist")
        for estimator in estimators
        for parameterization in ("softmax", "catnat")
    }


@pytest.mark.parametrize("path", CONFIG_FILES, ids=CONFIG_IDS)
def test_config_parses_to_its_yaml(path, monkeypatch, capsys):
    printed, _ = assert_print_config_resolves(path, monkeypatch, capsys)
    assert printed["model"]["class_path"] == "catlight.tasks.SemiSupervisedVAE"
    assert printed["model"]["init_args"]["alpha"] is None


@pytest.mark.parametrize("path", CONFIG_FILES, ids=CONFIG_IDS)
def test_config_fast_dev_run_trains_one_step(path, run_cli, tiny_data_dir):
    args = ["--config", str(path), "--trainer.fast_dev_run", "1", *tiny_run_args(tiny_data_dir)]
    cli = run_cli("fit", *args)
    written = yaml.safe_load(path.read_text())
    estimator = written["model"]["init_args"]["latent"]["init_args"]["estimator"]["class_path"]
    assert type(cli.model.latent.estimator).__name__ == estimator
    assert cli.trainer.global_step == 1
    for name in ("train/loss", "val/accuracy", "val/unlabeled_neg_elbo", "val/labeled_neg_elbo"):
        assert math.isfinite(cli.trainer.callback_metrics[name].item()), name


def test_fit_resolves_alpha_from_the_labeled_fraction_and_logs_per_class_accuracy(
    run_cli, tiny_data_dir
):
    config = REPO / "configs" / "semisupervised" / "mnist" / "exact_softmax.yaml"
    args = ["--config", str(config), *tiny_run_args(tiny_data_dir)]
    cli = run_cli("fit", *args, "--trainer.max_epochs", "1", "--trainer.log_every_n_steps", "1")
    # 50 training images (60 - 10 for validation), 20 of them labeled
    assert cli.model.classification_weight == pytest.approx(0.1 * 50 / 20)
    metrics = cli.trainer.callback_metrics
    assert metrics["hp_metric"] == metrics["val/accuracy"]
    per_class = {name for name in metrics if name.startswith("val_class_accuracy/")}
    assert per_class == {f"val_class_accuracy/{k}" for k in range(10)}
    events = EventAccumulator(cli.trainer.logger.log_dir)
    events.Reload()
    assert "val/confusion_matrix" in events.Tags()["images"]

    tested = run_cli("test", *args, "--ckpt_path", cli.trainer.checkpoint_callback.best_model_path)
    test_metrics = tested.trainer.callback_metrics
    assert 0.0 <= test_metrics["test/accuracy"].item() <= 1.0
    assert {f"test_class_accuracy/{k}" for k in range(10)} <= set(test_metrics)


def test_fit_without_alpha_needs_a_semi_supervised_datamodule():
    from lightning.pytorch import Trainer

    model = small_model(alpha=None)
    model.trainer = Trainer(logger=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match=r"alpha=None takes 0.1 \* N / N_labeled"):
        model.setup("fit")


def test_m2_logs_the_training_terms_only_on_the_steps_lightning_writes(tmp_path):
    # as the VAE: four self.log calls a step would cost ~2 ms on a CPU
    labels = torch.tensor([2, 0, 1])
    batches = [(binary_images(4, seed), binary_images(3), labels) for seed in range(6)]
    steps, trainer = logged_steps(small_model(), "train/cross_entropy", batches, tmp_path)
    assert steps == [2, 5]
    assert {"train/loss", "train/cross_entropy"} <= set(trainer.callback_metrics)
