"""Kill and resume: a run that crashes after a mid-epoch checkpoint and is resumed with
``--ckpt_path last`` ends exactly where the uninterrupted run ends.

Every family of tests/scale_families.py runs with two estimators: Gumbel-Softmax with a
fast TemperatureAnnealing (the temperature is a function of the restored step) and
REINFORCE with its moving-average baseline (a buffer). The checkpoint at step 5 falls
in the middle of the first epoch (8 batches), so the data loader's position, the
optimizer's moments and RandomState's generators must all be restored; the run then
crosses an epoch end with validation (and, for NRI, a learning-rate decay) before
step 10.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from catlight.callbacks import RandomState
from tests.scale_families import FAMILIES, Family, fit_args

CHECKPOINT_STEP = 5
TOTAL_STEPS = 10
ANNEALING = {"tau0": 1.0, "tau_min": 0.3, "rate": 0.1, "interval": 2}
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
        return []  # the family's config: GumbelSoftmax; the annealing is in callbacks()
    reinforce = {"class_path": "Reinforce", "init_args": {"baseline": "moving_average"}}
    return [f"{family.latent_arg}.init_args.estimator={json.dumps(reinforce)}"]


def callbacks(case: str, checkpoint_dir: Path, *, crash: bool = False) -> list[str]:
    """The ``--trainer.callbacks`` of one run, instead of the config's.

    RandomState is a CLI default, added to these. The list is emptied first:
    jsonargparse merges a new list of the same length into the old one item by item,
    so a lone ModelCheckpoint would inherit the ``monitor`` of the config's.
    """
    chosen = [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {
                "dirpath": str(checkpoint_dir),
                "every_n_train_steps": CHECKPOINT_STEP,
                "save_top_k": -1,
                "save_last": True,
            },
        }
    ]
    if case == "gs_annealing":
        chosen.append({"class_path": "TemperatureAnnealing", "init_args": ANNEALING})
    if crash:
        chosen.append({"class_path": "tests.test_resume.CrashAtStep", "init_args": {"step": 5}})
    return ["--trainer.callbacks=[]", f"--trainer.callbacks={json.dumps(chosen)}"]


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
@pytest.mark.parametrize("name", FAMILIES)
def test_resume_after_a_crash_continues_exactly_like_the_uninterrupted_run(
    name, case, run_cli, tmp_path
):
    family = FAMILIES[name]

    def fit(checkpoint_dir: str, *extra: str, **callback_options):
        args = fit_args(
            family,
            tmp_path / "data",
            *estimator_overrides(family, case),
            f"--trainer.max_steps={TOTAL_STEPS}",
            *callbacks(case, tmp_path / checkpoint_dir, **callback_options),
            *extra,
        )
        return run_cli("fit", *args)

    straight = final_state(fit("straight"))
    with pytest.raises(RuntimeError, match="simulated crash at step 5"):
        fit("crashed", crash=True)
    checkpoint = torch.load(tmp_path / "crashed" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == CHECKPOINT_STEP
    resumed = final_state(fit("crashed", "--ckpt_path=last"))
    assert_same_state(resumed, straight)

    if case == "gs_annealing":
        (tau, *others) = buffers(straight, "estimator.tau")
        last_update = TOTAL_STEPS - 1 - (TOTAL_STEPS - 1) % ANNEALING["interval"]
        assert tau.item() == pytest.approx(math.exp(-ANNEALING["rate"] * last_update))
        assert all(torch.equal(other, tau) for other in others)
    else:
        for baseline in buffers(straight, "estimator.baseline_value"):
            assert baseline.item() > 0  # it moved towards the (positive) mean cost


def test_resume_without_restoring_random_state_diverges_from_the_uninterrupted_run(
    run_cli, tmp_path, monkeypatch
):
    family = FAMILIES["vae"]

    def fit(checkpoint_dir: str, *extra: str, **callback_options):
        args = fit_args(
            family,
            tmp_path / "data",
            f"--trainer.max_steps={TOTAL_STEPS}",
            *callbacks("gs_annealing", tmp_path / checkpoint_dir, **callback_options),
            *extra,
        )
        return run_cli("fit", *args)

    straight = final_state(fit("straight"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit("crashed", crash=True)
    monkeypatch.setattr(RandomState, "on_load_checkpoint", lambda *args: None)
    resumed = final_state(fit("crashed", "--ckpt_path=last"))
    assert resumed["global_step"] == straight["global_step"]
    weights = "encoder.0.weight"
    assert not torch.equal(resumed["model"][weights], straight["model"][weights])
