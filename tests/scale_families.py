"""The model families that the DDP, mixed-precision and resume tests run.

One entry per family: a config of it, the overrides that make it tiny, the tiny data
it trains on, the metrics a fit must log and where its latent layer is. Adding a
family to ``FAMILIES`` adds it to tests/test_ddp.py, tests/test_mixed_precision.py
and tests/test_resume.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from lightning.pytorch import LightningModule
from torch import Tensor

from catlight.tasks.nri import ParticlesDataModule
from catlight.tasks.rl import Rollout
from tests.conftest import write_binarized_npz, write_mnist_files

REPO = Path(__file__).resolve().parents[1]


def tuple_example_rows(batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The streams of examples in a tuple batch, one example per row.

    Every tensor of two or more dimensions (images, labeled images, trajectories) is
    a stream; labels are not.
    """
    return tuple(tensor.flatten(1) for tensor in batch if tensor.dim() >= 2)


@dataclass(frozen=True)
class Family:
    """How to run one model family small and fast on CPU.

    Attributes:
        config: a config of the family under configs/, with a relaxed estimator.
        shrink: command-line overrides that make the model tiny.
        write_data: writes tiny data into a folder (or leaves it to the data module,
            which simulates into it) and returns the overrides that point the config
            at it; batches of 4 per process, 8 training batches an epoch in one process.
        metrics: scalars a fit must log (training and validation).
        latent: the name of one DiscreteLatent submodule of the model.
        latent_arg: the command-line prefix of that latent's settings.
        example_rows: the streams of examples in a training batch, each a
            ``(examples, features)`` tensor; 2-process DDP must give the ranks
            different examples in every stream.
        deterministic_val_metrics: validation metrics that depend only on the weights
            and the data (no sampling); a 2-process validation must log the value of a
            1-process validation over the same examples.
        ddp_overrides: extra overrides of the 2-process runs (e.g. a binarization
            without noise, so that an example is the same rows on every rank).
        check_ddp_data: checks, after a 2-process fit, what the data module left in
            the data folder (e.g. that only rank 0 simulated).
        first_rows: the rows that each stream of rank ``r``'s first training batch
            begins with under 2-process DDP, where they are known in advance (e.g. the
            reset observations of environments seeded per rank); None: not checked.
        one_process_overrides: overrides that give one process the validation set of
            both ranks of a 2-process run (for ``deterministic_val_metrics``).
        optimizer_steps_per_batch: optimizer steps (Lightning's global steps) taken on
            each training batch: 1, or more under manual optimisation.
        noise: draws random numbers from the trained model, as its training does
            (must differ across ranks); None: samples of ``latent`` for zero scores.
        autocast_outputs: tensors the model computes from bf16 inputs under autocast
            that must be finite float32; None: the log-probabilities and samples of
            ``latent``.
        exact_resume: whether a run resumed from a mid-epoch checkpoint ends exactly
            like the uninterrupted run (False where the data cannot be checkpointed,
            e.g. environments in the middle of their episodes).
    """

    config: str
    shrink: tuple[str, ...]
    write_data: Callable[[Path], list[str]]
    metrics: tuple[str, ...]
    latent: str = "latent"
    latent_arg: str = "--model.init_args.latent"
    example_rows: Callable[[Any], tuple[Tensor, ...]] = tuple_example_rows
    deterministic_val_metrics: tuple[str, ...] = ()
    ddp_overrides: tuple[str, ...] = ()
    check_ddp_data: Callable[[Path], None] | None = None
    first_rows: Callable[[int], tuple[Tensor, ...]] | None = None
    one_process_overrides: tuple[str, ...] = ()
    optimizer_steps_per_batch: int = 1
    noise: Callable[[LightningModule], Tensor] | None = None
    autocast_outputs: Callable[[LightningModule], tuple[Tensor, ...]] | None = None
    exact_resume: bool = True

    @property
    def config_path(self) -> Path:
        """The config file."""
        return REPO / "configs" / self.config

    def draw_noise(self, model: LightningModule) -> Tensor:
        """Random numbers of the model (see ``noise``)."""
        if self.noise is not None:
            return self.noise(model)
        layer = model.get_submodule(self.latent)
        return layer(torch.zeros(16, 2, layer.num_scores)).z

    def float32_outputs(self, model: LightningModule) -> tuple[Tensor, ...]:
        """What must stay float32 under autocast (see ``autocast_outputs``)."""
        if self.autocast_outputs is not None:
            return self.autocast_outputs(model)
        layer = model.get_submodule(self.latent)
        out = layer(30 * torch.randn(8, 2, layer.num_scores).bfloat16())
        return out.log_probs, out.z


def binarized_mnist(folder: Path) -> list[str]:
    """32 / 16 / 16 binary images; batches of 4 (4 per epoch on each of 2 ranks)."""
    write_binarized_npz(folder, {"train": 32, "valid": 16, "test": 16})
    return [
        "--data.init_args.data_dir",
        str(folder),
        "--data.init_args.batch_size",
        "4",
        "--data.init_args.eval_batch_size",
        "8",
    ]


def labeled_mnist(folder: Path) -> list[str]:
    """MNIST IDX files: 32 unlabeled and 20 labeled training images, 16 for validation.

    Labels are ``i % 10`` (two labeled images of each class). Batches pair 4 unlabeled
    images with 3 labeled ones: 8 batches an epoch in one process, and under 2-process
    DDP each rank gets 16 unlabeled and 10 labeled images (3 labeled batches a pass).
    """
    train_size, valid_size, test_size = 68, 16, 16
    rng = np.random.default_rng(0)
    write_mnist_files(
        folder / "mnist",
        {
            "train_images": rng.integers(0, 256, (train_size, 28, 28), dtype=np.uint8),
            "train_labels": (np.arange(train_size) % 10).astype(np.uint8),
            "test_images": rng.integers(0, 256, (test_size, 28, 28), dtype=np.uint8),
            "test_labels": (np.arange(test_size) % 10).astype(np.uint8),
        },
    )
    settings = {
        "data_dir": folder,
        "download": "false",
        "valid_size": valid_size,
        "num_labeled": 20,
        "labeled_batch_size": 3,
        "batch_size": 4,
        "eval_batch_size": 8,
    }
    return [f"--data.init_args.{key}={value}" for key, value in settings.items()]


class RecordedSimulation(ParticlesDataModule):
    """ParticlesDataModule that appends the rank of every simulation it runs to a file."""

    record_name = "simulated_on_ranks.txt"

    def simulate(self, quiet: bool = False) -> dict[str, np.ndarray]:
        """Record this process's rank, then simulate."""
        rank = self.trainer.global_rank if self.trainer is not None else 0
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / self.record_name).open("a") as record:
            record.write(f"{rank}\n")
        return super().simulate(quiet)


def simulated_particles(folder: Path) -> list[str]:
    """32 / 16 / 8 springs simulations of 6 states (test: 12), simulated on first use.

    Nothing is written here: the data module simulates into ``folder`` (in
    ``prepare_data``, rank 0 only) and caches the result for the next runs.
    """
    settings = {
        "data_dir": folder,
        "num_train": 32,
        "num_valid": 16,
        "num_test": 8,
        "train_steps": 6,
        "test_steps": 12,
        "sample_interval": 10,
        "batch_size": 4,
        "eval_batch_size": 8,
    }
    return [
        "--data.class_path=tests.scale_families.RecordedSimulation",
        *(f"--data.init_args.{key}={value}" for key, value in settings.items()),
        "--model.init_args.num_timesteps=6",
    ]


def assert_simulated_once_on_rank_zero(folder: Path) -> None:
    """The data folder holds one cached data set, simulated by rank 0 alone."""
    assert (folder / RecordedSimulation.record_name).read_text().split() == ["0"]
    assert len(list(folder.glob("particles_*.npz"))) == 1
    assert not list(folder.glob("*.part.npz"))


# CartPole-v1 with 2 environments of 16 steps a rollout: 8 rollouts in one process,
# 4 per rank under 2-process DDP (the budget is shared by the ranks)
RL_SEED, RL_ENVS, RL_STEPS, RL_ROLLOUTS = 0, 2, 16, 8


def cartpole_rollouts(folder: Path) -> list[str]:
    """The budget of 8 rollouts of 2 CartPole-v1 environments x 16 steps, 1 eval episode.

    Nothing is written: the environments are the data. The config's evaluation every
    39 rollouts becomes one at the end of the (limited) epoch.
    """
    settings = {
        "num_envs": RL_ENVS,
        "num_steps": RL_STEPS,
        "total_env_steps": RL_ROLLOUTS * RL_ENVS * RL_STEPS,
        "eval_episodes": 1,
    }
    return [
        *(f"--data.init_args.{key}={value}" for key, value in settings.items()),
        "--trainer.val_check_interval=1.0",
    ]


def rollout_observations(rollout: Rollout) -> tuple[Tensor, ...]:
    """The observations a rollout trained on, step-major: row ``t * E + i`` is env i at t."""
    return (rollout.observations.flatten(0, 1),)


def cartpole_reset_observations(rank: int) -> tuple[Tensor, ...]:
    """The first observations of rank ``rank``: env i reset with seed ``seed + rank E + i``."""
    seeds = [RL_SEED + rank * RL_ENVS + i for i in range(RL_ENVS)]
    env = gym.make("CartPole-v1")
    first = [torch.as_tensor(env.reset(seed=seed)[0], dtype=torch.float32) for seed in seeds]
    env.close()
    return (torch.stack(first),)


def sampled_actions(model: LightningModule) -> Tensor:
    """256 actions the policy samples (nearly uniform at initialisation) for one state."""
    return model.act(torch.zeros(256, model.observation_size, device=model.device))[0]


def policy_log_probs(model: LightningModule) -> tuple[Tensor, ...]:
    """The latent's log-probabilities of bf16 scores and the policy's of bf16 states."""
    scores = 30 * torch.randn(8, 1, model.latent.num_scores).bfloat16()
    states = torch.randn(8, model.observation_size).bfloat16()
    return model.latent.log_probs(scores), model.policy(states)[0], model.act(states)[1]


FAMILIES: dict[str, Family] = {
    "vae": Family(
        config="vae/categorical/gs_softmax.yaml",
        shrink=(
            "--model.init_args.num_latents=2",
            "--model.init_args.encoder_sizes=[16]",
            "--model.init_args.decoder_sizes=[16]",
            "--model.init_args.eval_num_samples=4",
        ),
        write_data=binarized_mnist,
        metrics=("train/neg_elbo", "val/neg_elbo"),
    ),
    "sbn": Family(
        config="sbn/categorical/gs_softmax.yaml",
        shrink=(
            "--model.init_args.num_latents=2",
            "--model.init_args.val_num_samples=4",
            "--model.init_args.eval_num_samples=4",
        ),
        write_data=binarized_mnist,
        metrics=("train/loss", "val/nll"),
        latent="latents.0",
    ),
    "semisupervised": Family(
        config="semisupervised/mnist/gs_softmax.yaml",
        shrink=("--model.init_args.hidden_size=16", "--model.init_args.latent_size=2"),
        write_data=labeled_mnist,
        metrics=("train/loss", "val/accuracy", "val/unlabeled_neg_elbo"),
        deterministic_val_metrics=("val/accuracy", "hp_metric"),
        ddp_overrides=("--data.init_args.binarization=threshold",),
    ),
    "nri": Family(
        config="nri/springs5.yaml",
        shrink=(
            "--model.init_args.encoder_hidden_size=16",
            "--model.init_args.decoder_hidden_size=16",
            "--model.init_args.prediction_steps=2",
            "--model.init_args.lr_decay_epochs=1",  # the learning rate decays in 10 steps
            "--model.init_args.skip_first=true",  # type 0 is "no edge": edge AUROC logged
        ),
        write_data=simulated_particles,
        metrics=("train/loss", "val/nll", "val/edge_acc_best"),
        deterministic_val_metrics=(
            "val/nll",
            "val/kl",
            "val/mse",
            "val/mse_1step",
            "val/edge_acc",
            "val/edge_acc_best",
            "val/edge_auroc",
        ),
        check_ddp_data=assert_simulated_once_on_rank_zero,
    ),
    "rl": Family(
        config="rl/cartpole/ppo_softmax.yaml",
        shrink=(
            "--model.init_args.hidden_sizes=[16]",
            "--model.init_args.update_epochs=2",
            "--model.init_args.num_minibatches=2",
            "--model.init_args.normalize_observations=true",
        ),
        write_data=cartpole_rollouts,
        metrics=(
            "train/policy_loss",
            "train/value_loss",
            "train/entropy",
            "train/episodic_return",
            "val/episodic_return",
        ),
        example_rows=rollout_observations,
        # greedy episodes from fixed seeds: 2 ranks x 1 episode are 1 process's 2
        deterministic_val_metrics=("val/episodic_return", "val/episode_length", "hp_metric"),
        first_rows=cartpole_reset_observations,
        one_process_overrides=("--data.init_args.eval_episodes=2",),
        optimizer_steps_per_batch=4,
        noise=sampled_actions,
        autocast_outputs=policy_log_probs,
        exact_resume=False,
    ),
}

# the trainer settings of every quick run (one training epoch is 8 batches of 4
# in one process, 4 per rank under 2-process DDP; validation covers the 16 examples)
QUICK_TRAINER = (
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.limit_val_batches=1.0",
    "--trainer.num_sanity_val_steps=0",
    "--trainer.log_every_n_steps=1",
)


def fit_args(family: Family, data_dir: Path, *overrides: str) -> list[str]:
    """``catlight fit`` arguments: the family's config, tiny model and data, overrides."""
    return [
        "--config",
        str(family.config_path),
        *family.shrink,
        *family.write_data(data_dir),
        *QUICK_TRAINER,
        *overrides,
    ]
