"""GradientDiagnostics: its statistics on a toy with an exact gradient, and in every family.

Statistical checks are seeded. A mean of M independent estimates misses the true
gradient by ``sqrt(total variance / M)`` in expectation (root mean square); the bias
tolerance of an unbiased estimator is 4 times that (a false alarm needs a 4-sigma
deviation of a sum of many coordinates: rarer than 1 in 10^4), and a biased one must
lie above 5 times it.
"""

from __future__ import annotations

import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor, nn

from catlight.diagnostics import GradientDiagnostics, GradientMoments, resolve_estimator
from catlight.latent import (
    Catnat,
    DiscreteLatent,
    Estimator,
    Exact,
    LeaveOneOut,
    Reinforce,
    Softmax,
    StraightThrough,
)
from catlight.tasks import BaseTask
from tests.scale_families import FAMILIES, fit_args
from tests.test_ddp import TWO_PROCESSES, run_fit

NUM_ESTIMATES = 400
BIAS_ESTIMATES = 2000  # the bias test's: ST's bias is 11 to 16 noise floors there


class Toy(nn.Module):
    """Two 4-way variables from a linear encoder; a cost nonlinear in the sample."""

    def __init__(self, estimator: Estimator, parameterization=None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.latent = DiscreteLatent(4, parameterization or Softmax(), estimator)
        self.encoder = nn.Linear(3, 2 * self.latent.num_scores)
        self.register_buffer("values", torch.randn(2, 4))

    def training_loss(self, batch: Tensor) -> Tensor:
        out = self.latent(self.encoder(batch).unflatten(-1, (2, self.latent.num_scores)))
        cost = (out.z * self.values).sum((-2, -1)).square()  # [S, B]
        return out.objective(cost).mean()


BATCH = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))


def measure(estimator: Estimator, **settings) -> dict[str, float]:
    torch.manual_seed(2)
    settings.setdefault("num_estimates", NUM_ESTIMATES)
    return GradientDiagnostics(**settings).measure(Toy(estimator), BATCH)


def noise_floor(stats: dict[str, float], prefix: str) -> float:
    """The root-mean-square error of the mean of the estimates, if they are unbiased."""
    return math.sqrt(stats[f"{prefix}/variance"] / BIAS_ESTIMATES)


@pytest.mark.parametrize("parameterization", [Softmax(), Catnat()])
def test_exact_reference_an_unbiased_estimator_has_no_bias_a_biased_one_has(parameterization):
    torch.manual_seed(2)
    model = Toy(LeaveOneOut(num_samples=4), parameterization)
    stats = GradientDiagnostics(num_estimates=BIAS_ESTIMATES, compare=["st"]).measure(model, BATCH)
    loo, st = "gradient/latent/model", "gradient/latent/StraightThrough"
    assert stats[f"{loo}/bias_norm"] < 4 * noise_floor(stats, loo)
    assert stats[f"{st}/bias_norm"] > 5 * noise_floor(stats, st)
    assert stats[f"{st}/bias_norm"] > 0.2 * stats["gradient/latent/reference/norm"]
    # mse = bias^2 + (M - 1) / M variance, up to rounding
    for prefix in (loo, st):
        expected = stats[f"{prefix}/bias_norm"] ** 2 + stats[f"{prefix}/variance"] * (
            1 - 1 / BIAS_ESTIMATES
        )
        assert stats[f"{prefix}/mse"] == pytest.approx(expected, rel=1e-6)


def test_exact_is_its_own_reference_without_variance():
    stats = measure(Exact(), num_estimates=2)
    assert stats["gradient/latent/model/variance"] == pytest.approx(0, abs=1e-10)
    assert stats["gradient/latent/model/bias_norm"] == pytest.approx(0, abs=1e-6)
    assert stats["gradient/latent/model/cosine"] == pytest.approx(1, abs=1e-6)
    assert stats["gradient/latent/model/snr"] == math.inf


def test_leave_one_out_variance_falls_with_more_samples():
    variance = {
        n: measure(LeaveOneOut(num_samples=n))["gradient/latent/model/variance"] for n in (2, 8)
    }
    # 1 / (n - 1) scaling predicts 7x; allow for the estimate's own noise
    assert variance[8] < variance[2] / 3


def test_sampled_reference_when_exact_does_not_fit():
    stats = measure(
        LeaveOneOut(num_samples=4), num_estimates=50, reference="loo", reference_estimates=200
    )
    # both means are noisy: the mean of 50 estimates and the reference, of 200
    floor = math.sqrt(stats["gradient/latent/model/variance"] * (1 / 50 + 1 / 200))
    assert stats["gradient/latent/model/bias_norm"] < 4 * floor


def test_gradient_with_respect_to_the_encoder_parameters():
    stats = measure(StraightThrough(), num_estimates=20, wrt="parameters")
    assert set(stats) >= {
        "gradient/parameters/model/variance",
        "gradient/parameters/model/bias_norm",
        "gradient/parameters/reference/norm",
    }
    assert not any(key.startswith("gradient/latent/") for key in stats)


def test_measuring_leaves_estimators_buffers_and_random_stream_alone():
    estimator = Reinforce(baseline="moving_average")
    model = Toy(estimator)
    model.training_loss(BATCH).backward()  # pending baseline statistics
    gradients = [p.grad.clone() for p in model.parameters()]
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    random_state = torch.get_rng_state()
    GradientDiagnostics(num_estimates=3, compare=["reinmax", "LeaveOneOut"]).measure(model, BATCH)
    assert model.latent.estimator is estimator
    assert torch.equal(torch.get_rng_state(), random_state)
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, buffers[name]), name
    for parameter, gradient in zip(model.parameters(), gradients, strict=True):
        assert torch.equal(parameter.grad, gradient)


def test_moments_match_direct_statistics():
    estimates = torch.randn(30, 7, generator=torch.Generator().manual_seed(3)).double()
    reference = torch.randn(7, generator=torch.Generator().manual_seed(4)).double()
    moments = GradientMoments(reference)
    for estimate in estimates:
        moments.add(estimate)
    stats = moments.statistics()
    assert stats["variance"] == pytest.approx(float(estimates.var(0).sum()))
    assert stats["bias_norm"] == pytest.approx(float((estimates.mean(0) - reference).norm()))
    assert stats["mse"] == pytest.approx(float((estimates - reference).square().sum(1).mean()))
    cosines = torch.nn.functional.cosine_similarity(estimates, reference.expand(30, 7), dim=1)
    assert stats["cosine"] == pytest.approx(float(cosines.mean()))
    snr = (estimates.mean(0).abs() / estimates.std(0)).mean()
    assert stats["snr"] == pytest.approx(float(snr))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_estimates": 1}, "num_estimates must be an int >= 2, got 1"),
        ({"every_n_steps": 0}, "every_n_steps must be an int >= 1, got 0"),
        ({"wrt": "weights"}, "wrt must be one of .*'scores', 'parameters'.*got 'weights'"),
        ({"compare": ["ReinMix"]}, "estimator must be one of gs .*; got 'ReinMix'"),
        ({"reference": "st"}, "reference must be 'auto' or an unbiased estimator .*got 'st'"),
    ],
)
def test_invalid_settings_name_the_argument(settings, message):
    with pytest.raises(ValueError, match=message):
        GradientDiagnostics(**settings)


def test_estimators_resolve_by_short_and_class_name():
    assert resolve_estimator("loo") is resolve_estimator("LeaveOneOut")


def test_a_model_without_latent_estimators_is_left_alone_with_a_warning():
    model = nn.Sequential(nn.Linear(2, 2))
    diagnostics = GradientDiagnostics()
    with pytest.warns(UserWarning, match="nothing to measure"):
        assert diagnostics.measure(model, torch.zeros(1, 2)) == {}
    assert diagnostics.measure(model, torch.zeros(1, 2)) == {}  # warned once


class TaskWithoutLoss(BaseTask):
    """A task with a latent layer that does not implement training_loss."""

    def __init__(self) -> None:
        super().__init__()
        self.latent = DiscreteLatent(3, Softmax(), StraightThrough())
        self.scores = nn.Parameter(torch.zeros(1, 3))


def test_a_task_without_training_loss_is_left_alone_with_a_warning():
    with pytest.warns(UserWarning, match="TaskWithoutLoss does not implement training_loss"):
        assert GradientDiagnostics().measure(TaskWithoutLoss(), torch.zeros(1)) == {}


CLI_FAMILIES = ["vae", "sbn", "semisupervised", "nri"]
CALLBACK = (
    "--trainer.callbacks+=GradientDiagnostics",
    "--trainer.callbacks.every_n_steps=2",
    "--trainer.callbacks.num_estimates=2",
    "--trainer.callbacks.reference_estimates=2",
    "--trainer.callbacks.compare=[ReinMax]",
)


def scalar_tags(log_dir: str) -> set[str]:
    events = EventAccumulator(log_dir)
    events.Reload()
    return set(events.Tags()["scalars"])


@pytest.mark.parametrize("family_name", CLI_FAMILIES)
def test_every_family_logs_diagnostics_through_the_cli(family_name, run_cli, tmp_path):
    family = FAMILIES[family_name]
    args = fit_args(family, tmp_path / "data", *CALLBACK, "--trainer.max_steps=3")
    cli = run_cli("fit", *args, "--trainer.limit_val_batches=0")
    latent = cli.model.get_submodule(family.latent)
    layer = next(name for name, module in cli.model.named_modules() if module is latent)
    tags = scalar_tags(cli.trainer.logger.log_dir)
    for estimator in ("model", "ReinMax"):
        for stat in ("variance", "snr", "bias_norm", "mse", "cosine"):
            assert f"gradient/{layer}/{estimator}/{stat}" in tags
    events = EventAccumulator(cli.trainer.logger.log_dir)
    events.Reload()
    steps = [event.step for event in events.Scalars(f"gradient/{layer}/model/variance")]
    assert steps == [0, 2]


def test_actor_critic_runs_with_the_callback_and_measures_nothing(run_cli, tmp_path):
    family = FAMILIES["rl"]
    args = fit_args(family, tmp_path / "data", *CALLBACK, "--trainer.max_steps=4")
    with pytest.warns(UserWarning, match="ActorCritic has no latent layer with a gradient"):
        cli = run_cli("fit", *args)
    assert cli.trainer.state.finished
    assert not any(tag.startswith("gradient/") for tag in scalar_tags(cli.trainer.logger.log_dir))


def test_a_run_trains_the_same_with_and_without_the_callback(run_cli, tmp_path):
    family = FAMILIES["vae"]
    runs = {}
    for name, extra in (("without", ()), ("with", CALLBACK)):
        args = fit_args(family, tmp_path / name, *extra, "--trainer.max_steps=4")
        cli = run_cli("fit", *args, "--seed_everything=7", "--trainer.limit_val_batches=0")
        runs[name] = cli.model.state_dict()
    for key, value in runs["without"].items():
        assert torch.equal(runs["with"][key], value), key


def test_two_process_ddp_measures_on_rank_zero_without_deadlock(tmp_path):
    family = FAMILIES["vae"]
    callback = [arg.replace("every_n_steps=2", "every_n_steps=1") for arg in CALLBACK]
    args = fit_args(family, tmp_path / "data", *callback, *TWO_PROCESSES)
    run_fit(
        [*args, "--trainer.max_steps=3", f"--trainer.default_root_dir={tmp_path / 'runs'}"],
        cwd=tmp_path,
    )
    (log_dir,) = (tmp_path / "runs" / "lightning_logs").iterdir()  # rank 0 logs alone
    events = EventAccumulator(str(log_dir))
    events.Reload()
    steps = [event.step for event in events.Scalars("gradient/latent/ReinMax/cosine")]
    assert steps == [0, 1, 2]
