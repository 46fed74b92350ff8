"""Single-modal image datasets read from files under ``root``: CIFAR-10, SVHN and NUS-WIDE.

The files are read by :mod:`hashrepro.data.formats`. Sources hold uint8 (H, W, 3) images
(CIFAR-10 and SVHN in memory, NUS-WIDE read lazily from its image files); :meth:`transforms`
turns each into a normalised float (3, S, S) tensor, with random crops (and flips) for
training items.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torchvision import transforms as T

from hashrepro.data.base import RetrievalData, RetrievalDataModule, one_hot
from hashrepro.data.formats import (
    ROOT_HINT,
    ImageFiles,
    check_present,
    read_cifar_batch,
    read_lists,
    read_svhn_mat,
    require_root,
)

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
SVHN_MEAN, SVHN_STD = (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def to_float_chw(image: Any) -> torch.Tensor:
    """Turn a uint8 (H, W, 3) image into a float32 (3, H, W) tensor in [0, 1]."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0


def image_transform(
    size: int, mean: Sequence[float], std: Sequence[float], augment: bool, flip: bool = True
) -> T.Compose:
    """Map uint8 (H, W, 3) to normalised float (3, size, size); crop (+ flip) if augment."""
    steps: list[Callable[[Any], Any]] = [to_float_chw, T.Resize((size, size), antialias=True)]
    if augment:
        steps.append(T.RandomCrop(size, padding=size // 8, padding_mode="reflect"))
        if flip:
            steps.append(T.RandomHorizontalFlip())
    steps.append(T.Normalize(mean, std))
    return T.Compose(steps)


# --------------------------------------------------------------------------------- CIFAR-10
class CIFAR10(RetrievalDataModule):
    """CIFAR-10 from torchvision's ``cifar-10-batches-py`` folder: 60,000 32x32 images, 10 classes.

    Protocols of the deep-hashing literature:

    - ``cifar10-1``: 1,000 queries (100 per class) from all 60,000 images, database = the other
      59,000, 5,000 training images (500 per class) from the database, 1,000 validation queries.
    - ``cifar10-2``: the 10,000 test images are the queries and the 50,000 training images are
      both training set and database; the 1,000 validation queries are carved out of training.

    Args:
        protocol: ``cifar10-1`` or ``cifar10-2``.
        image_size: side of the served images (resized from 32, e.g. 224 for ImageNet backbones).
        augment: random crop and horizontal flip for training items.
        **kwargs: :class:`RetrievalDataModule` arguments (``root``, ``num_query``, ``seed`` ...).

    """

    cache_loads = True

    name = "cifar10"
    folder = "cifar-10-batches-py"
    files = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
    protocol_sizes = {
        "cifar10-1": {"num_query": 1000, "num_train": 5000, "num_val": 1000},
        "cifar10-2": {"num_query": 10000, "num_train": 50000, "num_val": 1000},
    }

    def __init__(
        self,
        protocol: Literal["cifar10-1", "cifar10-2"] = "cifar10-1",
        image_size: int = 32,
        augment: bool = True,
        **kwargs: Any,
    ) -> None:
        if protocol not in self.protocol_sizes:
            raise ValueError(
                f"CIFAR10 protocol must be one of {list(self.protocol_sizes)}, got {protocol!r}"
            )
        self.protocol = protocol
        self.default_sizes = self.protocol_sizes[protocol]
        super().__init__(**kwargs)
        self.image_size = image_size
        self.augment = augment

    def check_files(self) -> Path:
        """Fail early, with one line, if the batch files are missing; return their folder."""
        names = [f"{self.folder}/{f}" for f in self.files]
        expected = f"torchvision's '{self.folder}' folder with data_batch_1..5, test_batch"
        hint = f"pass download=True with internet access, or {ROOT_HINT}"
        return check_present("CIFAR10", self.root, names, expected, hint) / self.folder

    def prepare_data(self) -> None:
        """Download and extract the batches with torchvision when ``download`` is set."""
        if self.download:
            from torchvision.datasets import CIFAR10 as TorchCIFAR10

            TorchCIFAR10(str(require_root("CIFAR10", self.root)), download=True)

    def load(self) -> RetrievalData:
        """Read the five training batches then the test batch (items 0..49,999 then 50,000..)."""
        folder = self.check_files()
        parts = [read_cifar_batch(folder / f) for f in self.files]
        images = np.concatenate([p[0] for p in parts])  # (N, 32, 32, 3)
        classes = np.concatenate([p[1] for p in parts])  # (N,)
        partition: dict[str, np.ndarray] = {}
        if self.protocol == "cifar10-2":
            num_train = len(classes) - len(parts[-1][1])
            train = np.arange(num_train)
            partition = {
                "query": np.arange(num_train, len(classes)),
                "database": train,
                "train": train,
            }
        return RetrievalData({"image": images}, one_hot(classes, 10), partition)

    def transforms(self, stage: Literal["train", "eval"]) -> dict[str, Callable[[Any], Any]]:
        """Float CHW, CIFAR mean/std, resized to ``image_size``; crop + flip when training."""
        augment = self.augment and stage == "train"
        return {"image": image_transform(self.image_size, CIFAR_MEAN, CIFAR_STD, augment)}


# --------------------------------------------------------------------------------- SVHN
class SVHN(RetrievalDataModule):
    """SVHN digits from torchvision's ``train_32x32.mat`` and ``test_32x32.mat``: 99,289 images.

    Protocol (cifar10-1 style) over train + test: 1,000 queries (100 per class), database = the
    rest, 5,000 training images (500 per class) from it, 1,000 validation queries.

    Args:
        image_size: side of the served images (resized from 32).
        augment: random crop for training items (no flip: digits are not mirror-symmetric).
        extra: also use the 531,131 images of ``extra_32x32.mat``.
        **kwargs: :class:`RetrievalDataModule` arguments (``root``, ``num_query``, ``seed`` ...).

    """

    cache_loads = True

    name = "svhn"
    default_sizes = {"num_query": 1000, "num_train": 5000, "num_val": 1000}

    def __init__(
        self, image_size: int = 32, augment: bool = True, extra: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.image_size = image_size
        self.augment = augment
        self.extra = extra

    @property
    def protocol(self) -> str:
        """``default`` or ``extra`` (with the extra images)."""
        return "extra" if self.extra else "default"

    @property
    def splits(self) -> tuple[str, ...]:
        """Names of the torchvision SVHN splits read, in item order."""
        return ("train", "test", "extra") if self.extra else ("train", "test")

    @property
    def files(self) -> tuple[str, ...]:
        """The ``.mat`` files read, in item order."""
        return tuple(f"{s}_32x32.mat" for s in self.splits)

    def check_files(self) -> Path:
        """Fail early, with one line, if the ``.mat`` files are missing; return their folder."""
        expected = (
            f"torchvision's {', '.join(self.files)} (MATLAB files with 'X' uint8 32x32x3xN and "
            "'y' Nx1 labels 1..10)"
        )
        hint = f"pass download=True with internet access, or {ROOT_HINT}"
        return check_present("SVHN", self.root, self.files, expected, hint)

    def prepare_data(self) -> None:
        """Download the ``.mat`` files with torchvision when ``download`` is set."""
        if self.download:
            from torchvision.datasets import SVHN as TorchSVHN

            for split in self.splits:
                TorchSVHN(str(require_root("SVHN", self.root)), split=split, download=True)

    def load(self) -> RetrievalData:
        """Read train then test (then extra) images; digit labels 0..9."""
        folder = self.check_files()
        parts = [read_svhn_mat(folder / f) for f in self.files]
        images = np.concatenate([p[0] for p in parts])  # (N, 32, 32, 3)
        classes = np.concatenate([p[1] for p in parts])  # (N,)
        return RetrievalData({"image": images}, one_hot(classes, 10))

    def transforms(self, stage: Literal["train", "eval"]) -> dict[str, Callable[[Any], Any]]:
        """Float CHW, SVHN mean/std, resized to ``image_size``; random crop when training."""
        augment = self.augment and stage == "train"
        return {"image": image_transform(self.image_size, SVHN_MEAN, SVHN_STD, augment, flip=False)}


# --------------------------------------------------------------------------------- NUS-WIDE
class NUSWIDE(RetrievalDataModule):
    """NUS-WIDE images with multi-hot concept labels (21 concepts) from HashNet-style list files.

    Each list line is ``<image path relative to image_root> <one 0/1 label per class>``. Without
    ``list_file``, ``test.txt``, ``database.txt`` and ``train.txt`` under ``root`` are the split
    (test = queries; items listed twice are one item). With ``list_file`` the protocol is drawn:
    2,100 queries (100 per class), database = the rest, 10,500 training items (500 per class)
    from it, 2,100 validation queries.

    Args:
        list_file: a single list to draw the protocol from (relative to ``root``).
        image_root: folder the image paths are relative to (default ``root``).
        image_size: side the images are resized to.
        augment: random crop and horizontal flip for training items.
        **kwargs: :class:`RetrievalDataModule` arguments (``root``, ``num_query``, ``seed`` ...).

    """

    name = "nuswide"
    lists = ("test.txt", "database.txt", "train.txt")
    default_sizes = {"num_query": 2100, "num_train": 10500, "num_val": 2100}

    def __init__(
        self,
        list_file: str | None = None,
        image_root: str | None = None,
        image_size: int = 224,
        augment: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.list_file = list_file
        self.image_root = Path(image_root).expanduser() if image_root is not None else self.root
        self.image_size = image_size
        self.augment = augment

    @property
    def protocol(self) -> str:
        """``lists`` (the shipped test/database/train lists) or ``drawn`` (from ``list_file``)."""
        return "lists" if self.list_file is None else "drawn"

    @property
    def files(self) -> tuple[str, ...]:
        """The list files read, relative to ``root``."""
        return self.lists if self.list_file is None else (self.list_file,)

    def check_files(self) -> Path:
        """Fail early, with one line, if the list files are missing; return their folder."""
        expected = (
            f"the list file(s) {', '.join(self.files)} (one line per image: "
            "'<image path relative to image_root> <0/1 label per class>')"
        )
        hint = ROOT_HINT if self.list_file else f"or pass list_file=<one list>; {ROOT_HINT}"
        return check_present("NUSWIDE", self.root, self.files, expected, hint)

    def load(self) -> RetrievalData:
        """Read the lists; the images themselves are read lazily, item by item."""
        folder = self.check_files()
        paths, labels, listed = read_lists(folder, self.files)
        partition: dict[str, np.ndarray] = {}
        if self.list_file is None:  # the shipped split: test.txt holds the queries
            partition = {
                "query": listed["test.txt"],
                "database": listed["database.txt"],
                "train": listed["train.txt"],
            }
        image_root = self.image_root if self.image_root is not None else folder
        first = image_root / paths[0]
        if not first.is_file():
            raise FileNotFoundError(
                f"NUSWIDE: image {first} not found; the list paths are relative to image_root "
                f"({image_root}); set data.init_args.image_root"
            )
        source = ImageFiles([str(image_root / p) for p in paths], self.image_size, "NUSWIDE")
        return RetrievalData({"image": source}, labels, partition)

    def transforms(self, stage: Literal["train", "eval"]) -> dict[str, Callable[[Any], Any]]:
        """Float CHW, ImageNet mean/std; random crop + flip when training."""
        augment = self.augment and stage == "train"
        return {"image": image_transform(self.image_size, IMAGENET_MEAN, IMAGENET_STD, augment)}
