"""Kill and resume: a run that crashes after a mid-epoch checkpoint and is resumed with
``--ckpt_path last`` ends exactly where the uninterrupted run ends.

Every family of tests/scale_families.py runs with two estimators: Gumbel-Softmax with a
fast temperature schedule (a function of its restored step count) and REINFORCE with
its moving-average baseline (a buffer). The checkpoint at step 5 falls
in the middle of the first epoch (8 batches), so the data loader's position, the
optimizer's moments and RandomState's generators must all be restored; the run then
crosses an epoch end with validation (and, for NRI, a learning-rate decay) before
step 10.

Reinforcement learning is not exact: its data are environments in the middle of their
episodes, which a checkpoint does not hold, so a resumed run resets them and collects
other transitions than the uninterrupted run. Its test checks instead that the resumed
run restores and continues the rest of the state (step and environment-step counts,
optimizer moments, observation statistics, learning-rate schedule) and ends its budget.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from catlight.callbacks import RandomState
from catlight.tasks.rl import Rollout
from tests.scale_families import FAMILIES, RL_ENVS, RL_ROLLOUTS, RL_STEPS, Family, fit_args

CHECKPOINT_STEP = 5
TOTAL_STEPS = 10
ANNEALING = {"tau": 1.0, "tau_min": 0.3, "anneal_rate": 0.1, "anneal_interval": 2}
# the resumed run writes its checkpoints beside the crashed run's, as a real resume does
pytestmark = pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")


class CrashAtStep(Callback):
    """Raises at the start of training step ``step``: a run killed mid-epoch.

    Args:
        step: the global step at which to fail.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: object, batch_idx: int
    ) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"simulated crash at step {self.step}")


def estimator_overrides(family: Family, case: str) -> list[str]:
    if case == "gs_annealing":
        estimator = {"class_path": "GumbelSoftmax", "init_args": ANNEALING}
    else:
        estimator = {"class_path": "Reinforce", "init_args": {"baseline": "moving_average"}}
    return [f"{family.latent_arg}.init_args.estimator={json.dumps(estimator)}"]


def callbacks(
    checkpoint_dir: Path,
    *,
    crash: bool = False,
    checkpoint_step: int = CHECKPOINT_STEP,
    extra: tuple[dict, ...] = (),
) -> list[str]:
    """The ``--trainer.callbacks`` of one run, instead of the config's.

    A checkpoint every ``checkpoint_step`` global steps (and ``last.ckpt``), a crash
    at ``checkpoint_step`` if asked, then ``extra``.

    RandomState is a CLI default, added to these. The list is emptied first:
    jsonargparse merges a new list of the same length into the old one item by item,
    so a lone ModelCheckpoint would inherit the ``monitor`` of the config's.
    """
    chosen = [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {
                "dirpath": str(checkpoint_dir),
                "every_n_train_steps": checkpoint_step,
                "save_top_k": -1,
                "save_last": True,
            },
        }
    ]
    if crash:
        crash_callback = {"step": checkpoint_step}
        chosen.append({"class_path": "tests.test_resume.CrashAtStep", "init_args": crash_callback})
    chosen.extend(extra)
    return ["--trainer.callbacks=[]", f"--trainer.callbacks={json.dumps(chosen)}"]


def fit_case(
    run_cli,
    family: Family,
    case: str,
    tmp_path: Path,
    checkpoint_dir: str,
    *extra: str,
    **callback_options,
):
    """Fit ``family`` with the estimator of ``case``, checkpointing in ``checkpoint_dir``."""
    args = fit_args(
        family,
        tmp_path / "data",
        *estimator_overrides(family, case),
        f"--trainer.max_steps={TOTAL_STEPS}",
        *callbacks(tmp_path / checkpoint_dir, **callback_options),
        *extra,
    )
    return run_cli("fit", *args)


def final_state(cli) -> dict:
    trainer = cli.trainer
    optimizer = trainer.optimizers[0]
    return {
        "global_step": trainer.global_step,
        "model": cli.model.state_dict(),
        "optimizer": optimizer.state_dict()["state"],
        "learning_rates": [group["lr"] for group in optimizer.param_groups],
        "schedulers": [config.scheduler.state_dict() for config in trainer.lr_scheduler_configs],
    }


def assert_same_state(resumed: dict, straight: dict) -> None:
    assert resumed["global_step"] == straight["global_step"] == TOTAL_STEPS
    assert resumed["model"].keys() == straight["model"].keys()
    for name, value in straight["model"].items():
        assert torch.equal(resumed["model"][name], value), name
    for index, moments in straight["optimizer"].items():
        for key, value in moments.items():
            assert torch.equal(resumed["optimizer"][index][key], value), (index, key)
    assert resumed["learning_rates"] == straight["learning_rates"]
    assert resumed["schedulers"] == straight["schedulers"]


def buffers(state: dict, suffix: str) -> list[torch.Tensor]:
    return [value for name, value in state["model"].items() if name.endswith(suffix)]


@pytest.mark.parametrize("case", ["gs_annealing", "reinforce_baseline"])
@pytest.mark.parametrize("name", [name for name, family in FAMILIES.items() if family.exact_resume])
def test_resume_after_a_crash_continues_exactly_like_the_uninterrupted_run(
    name, case, run_cli, tmp_path
):
    def fit(checkpoint_dir: str, *extra: str, **callback_options):
        return fit_case(
            run_cli, FAMILIES[name], case, tmp_path, checkpoint_dir, *extra, **callback_options
        )

    straight = final_state(fit("straight"))
    with pytest.raises(RuntimeError, match="simulated crash at step 5"):
        fit("crashed", crash=True)
    checkpoint = torch.load(tmp_path / "crashed" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == CHECKPOINT_STEP
    resumed = final_state(fit("crashed", "--ckpt_path=last"))
    assert_same_state(resumed, straight)

    if case == "gs_annealing":
        (tau, *others) = buffers(straight, "estimator.tau")
        # the temperature after TOTAL_STEPS steps, updated every anneal_interval steps
        last_update = TOTAL_STEPS - TOTAL_STEPS % ANNEALING["anneal_interval"]
        assert tau.item() == pytest.approx(math.exp(-ANNEALING["anneal_rate"] * last_update))
        assert all(torch.equal(other, tau) for other in others)
    else:
        for baseline in buffers(straight, "estimator.baseline_value"):
            assert baseline.item() > 0  # it moved towards the (positive) mean cost


def test_resume_without_restoring_random_state_diverges_from_the_uninterrupted_run(
    run_cli, tmp_path, monkeypatch
):
    def fit(checkpoint_dir: str, *extra: str, **callback_options):
        return fit_case(
            run_cli,
            FAMILIES["vae"],
            "gs_annealing",
            tmp_path,
            checkpoint_dir,
            *extra,
            **callback_options,
        )

    straight = final_state(fit("straight"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit("crashed", crash=True)
    monkeypatch.setattr(RandomState, "on_load_checkpoint", lambda *args: None)
    resumed = final_state(fit("crashed", "--ckpt_path=last"))
    assert resumed["global_step"] == straight["global_step"]
    weights = "encoder.0.weight"
    assert not torch.equal(resumed["model"][weights], straight["model"][weights])


# -- reinforcement learning: a continuation, not a replay ---------------------------------


class ResumeProbe(Callback):
    """Records the state a fit starts training from and the rollouts it trains on.

    Attributes:
        start: global step, model state dict, optimizer and scheduler states at the
            start of training (after a checkpoint is restored).
        valid_rows: the number of valid (trained-on) transitions of every rollout.
    """

    def __init__(self) -> None:
        self.start: dict = {}
        self.valid_rows: list[int] = []

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.start = {
            "global_step": trainer.global_step,
            "model": {name: value.clone() for name, value in pl_module.state_dict().items()},
            # copies: training updates the optimizer's tensors in place
            "optimizer": copy.deepcopy(trainer.optimizers[0].state_dict()),
            "scheduler": copy.deepcopy(trainer.lr_scheduler_configs[0].scheduler.state_dict()),
        }

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Rollout, batch_idx: int
    ) -> None:
        self.valid_rows.append(int(batch.valid.sum()))


# Lightning notes that manual optimisation checkpoints the weights after the rollout's
# updates (which is what resuming needs), and that the rollouts cannot be resumed mid-epoch
@pytest.mark.filterwarnings("ignore:Using ModelCheckpoint with manual optimization")
@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before")
def test_resume_of_an_rl_run_continues_its_counters_statistics_and_schedule(run_cli, tmp_path):
    family = FAMILIES["rl"]
    assert not family.exact_resume
    steps_per_rollout = family.optimizer_steps_per_batch
    crash_rollout = 5  # checkpointed after 5 rollouts, killed before the 6th
    probe = {"class_path": "tests.test_resume.ResumeProbe"}

    def fit(checkpoint_dir: str, *extra: str, crash: bool = False):
        args = fit_args(
            family,
            tmp_path / "data",
            *callbacks(
                tmp_path / checkpoint_dir,
                crash=crash,
                checkpoint_step=crash_rollout * steps_per_rollout,
                extra=(probe,),
            ),
            *extra,
        )
        cli = run_cli("fit", *args)
        (recorder,) = [c for c in cli.trainer.callbacks if isinstance(c, ResumeProbe)]
        return cli, recorder

    straight, _ = fit("straight")
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit("crashed", crash=True)
    checkpoint = torch.load(tmp_path / "crashed" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == crash_rollout * steps_per_rollout
    saved = checkpoint["state_dict"]
    assert saved["env_steps"].item() == crash_rollout * RL_ENVS * RL_STEPS
    assert saved["observation_normalizer.count"].item() > 0

    resumed, probe_record = fit("crashed", "--ckpt_path=last")

    # the resumed run starts from the checkpoint: weights, env-step count, observation
    # statistics, Adam's moments and step, the learning-rate schedule's position
    start = probe_record.start
    assert start["global_step"] == checkpoint["global_step"]
    assert start["model"].keys() == saved.keys()
    for name, value in saved.items():
        assert torch.equal(start["model"][name], value), name
    for index, moments in checkpoint["optimizer_states"][0]["state"].items():
        for key, value in moments.items():
            assert torch.equal(start["optimizer"]["state"][index][key], value), (index, key)
    assert start["scheduler"] == checkpoint["lr_schedulers"][0]
    assert start["scheduler"]["last_epoch"] == crash_rollout

    # ... and finishes the budget where the uninterrupted run does
    rollouts_left = RL_ROLLOUTS - crash_rollout
    assert len(probe_record.valid_rows) == rollouts_left
    final, reference = resumed.model, straight.model
    assert resumed.trainer.global_step == straight.trainer.global_step
    assert resumed.trainer.global_step == RL_ROLLOUTS * steps_per_rollout
    assert final.env_steps.item() == reference.env_steps.item() == RL_ROLLOUTS * RL_ENVS * RL_STEPS
    states = [cli.trainer.optimizers[0].state_dict() for cli in (resumed, straight)]
    for index, moments in states[1]["state"].items():
        assert torch.equal(states[0]["state"][index]["step"], moments["step"]), index
    schedules = [cli.trainer.lr_scheduler_configs[0].scheduler for cli in (resumed, straight)]
    assert schedules[0].state_dict() == schedules[1].state_dict()
    assert schedules[0].last_epoch == RL_ROLLOUTS
    assert schedules[0].get_last_lr() == schedules[1].get_last_lr() == [0.0]  # annealed
    # the observation statistics went on from the restored ones, merging exactly the
    # valid transitions of the rollouts after the resume
    restored_count = saved["observation_normalizer.count"].item()
    normalizer = final.observation_normalizer
    assert normalizer.count.item() == restored_count + sum(probe_record.valid_rows)
    assert torch.isfinite(normalizer.mean).all() and (normalizer.var > 0).all()
