"""Semi-supervised MNIST and Fashion-MNIST: a few labeled images, the rest unlabeled.

The labeled subset is class-balanced and drawn with the data module's seed from the
training split (the last ``valid_size`` training images stay the validation set);
every other training image is unlabeled. A training batch pairs a batch of unlabeled
images with a batch of labeled ones, the small labeled set being cycled (reshuffled
at every pass) as often as the unlabeled epochs need.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from catlight.data.images import Binarization, FashionMNISTDataModule, MNISTDataModule
from catlight.data.tensor_loader import TensorLoader

__all__ = [
    "SemiSupervisedFashionMNISTDataModule",
    "SemiSupervisedLoader",
    "SemiSupervisedMNISTDataModule",
    "balanced_subset",
]


def balanced_subset(labels: Tensor, size: int, num_classes: int, seed: int) -> Tensor:
    """Indices of ``size / num_classes`` random examples of every class, sorted.

    The draw depends only on ``labels`` and ``seed``.

    Args:
        labels: the class of every example, in ``[0, num_classes)``.
        size: examples to pick, a multiple of ``num_classes``.
        num_classes: number of classes.
        seed: seed of the draw.

    Returns:
        Sorted int64 indices into ``labels``, ``size // num_classes`` per class.

    Raises:
        ValueError: if ``size`` is not a positive multiple of ``num_classes``, or a
            class has fewer than ``size / num_classes`` examples.

    Shapes:
        - labels: ``(num_examples,)``; output: ``(size,)``
    """
    if size < num_classes or size % num_classes:
        raise ValueError(
            f"balanced_subset: size must be a positive multiple of num_classes = "
            f"{num_classes} (the same number of each class), got {size}"
        )
    per_class = size // num_classes
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in range(num_classes):
        members = (labels.cpu() == label).nonzero()[:, 0]
        if members.numel() < per_class:
            raise ValueError(
                f"balanced_subset: {size} labeled examples need {per_class} of each of the "
                f"{num_classes} classes, but class {label} has {members.numel()} among the "
                f"{labels.numel()} training examples; ask for fewer labeled examples or "
                "use more training data"
            )
        chosen.append(members[torch.randperm(members.numel(), generator=generator)[:per_class]])
    return torch.cat(chosen).sort().values


class SemiSupervisedLoader:
    """Each batch of unlabeled images paired with a batch of labeled ones.

    One epoch is one pass over the unlabeled images. The labeled batches come from
    one running stream of passes over the labeled loader (each pass reshuffled),
    which carries on from one epoch to the next. :meth:`state_dict` holds the
    position of both loaders, so a run resumed mid-epoch continues both.

    Args:
        unlabeled: yields ``(images, labels)``; its labels are dropped.
        labeled: yields ``(images, labels)``; must give at least one batch.

    Raises:
        ValueError: if ``labeled`` gives no batch.

    Shapes:
        - a batch: ``(unlabeled (B_u, D), labeled (B_l, D), labels (B_l,))``
    """

    def __init__(self, unlabeled: TensorLoader, labeled: TensorLoader) -> None:
        if len(labeled) == 0:
            raise ValueError(
                f"SemiSupervisedLoader: the labeled loader gives no batch ({labeled.num_examples} "
                f"labeled examples per rank, batch size {labeled.batch_size})"
            )
        self.unlabeled = unlabeled
        self.labeled = labeled
        self._labeled_batches: Iterator[tuple[Tensor, ...]] | None = None

    def __len__(self) -> int:
        return len(self.unlabeled)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        for unlabeled_images, _ in self.unlabeled:
            yield unlabeled_images, *self._next_labeled()

    def _next_labeled(self) -> tuple[Tensor, ...]:
        """The next labeled batch, starting a new pass when the current one is done."""
        batch = next(self._labeled_batches, None) if self._labeled_batches else None
        if batch is None:
            self._labeled_batches = iter(self.labeled)
            batch = next(self._labeled_batches)
        return batch

    def state_dict(self) -> dict[str, dict[str, int]]:
        """The positions of the unlabeled and the labeled loader."""
        return {"unlabeled": self.unlabeled.state_dict(), "labeled": self.labeled.state_dict()}

    def load_state_dict(self, state_dict: dict[str, dict[str, int]]) -> None:
        """Continue both loaders from :meth:`state_dict`."""
        self.unlabeled.load_state_dict(state_dict["unlabeled"])
        self.labeled.load_state_dict(state_dict["labeled"])
        self._labeled_batches = None


class SemiSupervisedMNISTDataModule(MNISTDataModule):
    """MNIST with ``num_labeled`` class-balanced labeled images and the rest unlabeled.

    Reads the same files as :class:`~catlight.data.MNISTDataModule` (same
    binarization options: dynamic by default, as in the M2 literature). Of the
    ``50,000`` training images (or the first ``train_size``), ``num_labeled / 10`` of
    each class are drawn with ``seed`` as the labeled set; the others are the
    unlabeled set. Validation and test keep their labels.

    Args:
        data_dir: where the IDX files are read from (and downloaded to).
        num_labeled: labeled training images, a multiple of 10 (100 in the papers).
        labeled_batch_size: labeled images in each training batch (at most the
            labeled images per process); ``None``: all of this process's labeled
            images (``num_labeled / world_size``), so 100 labels train the same
            labeled batch on 1 or N processes.
        binarization: see :class:`~catlight.data.MNISTDataModule`.
        valid_size: training images held out for validation (the last ones).
        batch_size: unlabeled images in each training batch (per process).
        eval_batch_size: batch size for validation and test.
        download: fetch missing files.
        on_device: keep the data on the training device.
        train_size: use only the first ``train_size`` training images (quick runs).
        seed: seed of the labeled draw and of the shuffling.

    Raises:
        ValueError: for ``num_labeled`` not a positive multiple of 10, a
            ``labeled_batch_size`` outside ``[1, num_labeled]``; at setup, if the
            training images cannot supply a balanced labeled set (too few of a class).

    Shapes:
        - training batch: ``(unlabeled (B_u, 784), labeled (B_l, 784), labels (B_l,))``
        - validation / test batch: ``(images (B, 784), labels (B,))``
    """

    num_classes = 10

    def __init__(
        self,
        data_dir: str = "data",
        num_labeled: int = 100,
        labeled_batch_size: int | None = None,
        binarization: Binarization = "dynamic",
        valid_size: int = 10000,
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        download: bool = True,
        on_device: bool = True,
        train_size: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            data_dir,
            binarization,
            valid_size,
            batch_size,
            eval_batch_size,
            download,
            on_device,
            train_size,
            seed,
        )
        name = type(self).__name__
        if num_labeled < self.num_classes or num_labeled % self.num_classes:
            raise ValueError(
                f"{name}: num_labeled must be a positive multiple of {self.num_classes} "
                f"(a class-balanced labeled set), got {num_labeled}"
            )
        if labeled_batch_size is not None and not 1 <= labeled_batch_size <= num_labeled:
            raise ValueError(
                f"{name}: labeled_batch_size must be in [1, num_labeled = {num_labeled}], "
                f"got {labeled_batch_size}"
            )
        self.num_labeled = num_labeled
        self.labeled_batch_size = labeled_batch_size

    def setup(self, stage: str | None = None) -> None:
        """Load the splits and divide the training split into labeled and unlabeled."""
        if self.splits:
            return
        super().setup(stage)
        images, labels = self.splits["train"]
        labeled = balanced_subset(labels, self.num_labeled, self.num_classes, self.seed)
        unlabeled = torch.ones(labels.shape[0], dtype=torch.bool)
        unlabeled[labeled] = False
        self.splits["labeled"] = (images[labeled], labels[labeled])
        self.splits["train"] = (images[unlabeled], labels[unlabeled])

    @property
    def num_train_examples(self) -> int:
        """Labeled plus unlabeled training images (N of Kingma et al.'s ``alpha``)."""
        self.setup()
        return self.splits["train"][0].shape[0] + self.splits["labeled"][0].shape[0]

    def train_dataloader(self) -> SemiSupervisedLoader:
        """Unlabeled batches of ``batch_size``, each with ``labeled_batch_size`` labeled.

        Raises:
            ValueError: if a process gets fewer labeled images than ``labeled_batch_size``
                or fewer unlabeled images than ``batch_size``.
        """
        unlabeled = self._training_loader("train")
        labeled = self._loader("labeled", train=True)
        batch_size = self.labeled_batch_size or labeled.num_examples
        if labeled.num_examples < batch_size:
            raise ValueError(
                f"{type(self).__name__}: labeled_batch_size = {batch_size} "
                f"exceeds the {labeled.num_examples} labeled images of each of the "
                f"{labeled.world_size} processes (leave it unset to use them all)"
            )
        labeled.batch_size = batch_size
        return SemiSupervisedLoader(unlabeled, labeled)


class SemiSupervisedFashionMNISTDataModule(SemiSupervisedMNISTDataModule):
    """Fashion-MNIST with a few labeled images; same interface as the MNIST one.

    Finds the files of Debian's ``dataset-fashion-mnist`` package too (see
    :class:`~catlight.data.FashionMNISTDataModule`).
    """

    url = FashionMNISTDataModule.url
    checksums = FashionMNISTDataModule.checksums
    folder = FashionMNISTDataModule.folder
    system_dirs = FashionMNISTDataModule.system_dirs
