"""Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): 70,000 28x28 clothing images, 10 classes.

The four original idx files are found, in this order:

1. under ``root`` in torchvision's layout (``root/FashionMNIST/raw/``) or directly in ``root``;
2. when ``root`` holds none of them, in the directory of the Debian package
   ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``, gzipped files);
3. with ``download=True``, torchvision fetches them into ``root/FashionMNIST/raw/``.

Files are read with torchvision's idx readers (gzipped ones are decompressed to a temporary
file first). Items 0..59,999 are the training images, 60,000..69,999 the test images.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torchvision import transforms as T

from hashrepro.data.base import RetrievalData, RetrievalDataModule, one_hot
from hashrepro.data.formats import find_file, read_idx

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
INSTALL_HINT = (
    "install the Debian package dataset-fashion-mnist (`make data`), pass download=True with "
    "internet access, or set data.init_args.root"
)


class FashionMNIST(RetrievalDataModule):
    """Fashion-MNIST: 70,000 grey 28x28 images of 10 clothing classes, served as (1, 28, 28).

    Protocols, at the scale of CIFAR-10's in the deep-hashing literature:

    - ``cifar10-1`` (default): 1,000 queries (100 per class) from all 70,000 images, database =
      the other 69,000, 5,000 training images (500 per class) from the database, 1,000
      validation queries from the database outside the training set (they search the
      training set).
    - ``cifar10-2``: the 10,000 test images are the queries, the 60,000 training images are both
      training set and database; the 1,000 validation queries are carved out of training.

    Images are floats in [0, 1] (no normalisation): ``SmallCNN`` takes them as they are, and the
    pretrained ``EfficientNetLite0`` backbone resizes, repeats the channel and normalises them
    itself.

    Args:
        protocol: ``cifar10-1`` or ``cifar10-2``.
        augment: random 2-pixel shifts and horizontal flips for training items.
        **kwargs: :class:`RetrievalDataModule` arguments (``root``, ``seed``, ``features`` ...).

    """

    cache_loads = True

    name = "fashion_mnist"
    classes = CLASSES
    protocol_sizes = {
        "cifar10-1": {"num_query": 1000, "num_train": 5000, "num_val": 1000},
        "cifar10-2": {"num_query": 10000, "num_train": 60000, "num_val": 1000},
    }

    def __init__(
        self,
        protocol: Literal["cifar10-1", "cifar10-2"] = "cifar10-1",
        augment: bool = False,
        **kwargs: Any,
    ) -> None:
        if protocol not in self.protocol_sizes:
            raise ValueError(
                f"FashionMNIST protocol must be one of {list(self.protocol_sizes)}, "
                f"got {protocol!r}"
            )
        self.protocol = protocol
        self.default_sizes = self.protocol_sizes[protocol]
        super().__init__(**kwargs)
        self.augment = augment

    def candidate_dirs(self) -> list[Path]:
        """Folders searched under ``root``: torchvision's layout first, then ``root`` itself."""
        if self.root is None:
            return []
        return [self.root / "FashionMNIST" / "raw", self.root]

    def check_files(self) -> dict[str, Path]:
        """Locate the four idx files (see the module docstring); one-line error if absent."""
        for folder in self.candidate_dirs():
            found = {n: find_file(folder, n) for n in FILES}
            if all(found.values()):
                return found  # type: ignore[return-value]
            if any(found.values()):
                missing = [f"{n}[.gz]" for n, p in found.items() if p is None]
                raise FileNotFoundError(
                    f"FashionMNIST: {folder} holds only some of the idx files (missing: "
                    f"{', '.join(missing)}); {INSTALL_HINT}"
                )
        found = {n: find_file(DEBIAN_DIR, n) for n in FILES}
        if all(found.values()):
            return found  # type: ignore[return-value]
        where = f"{self.root}/FashionMNIST/raw, {self.root}, " if self.root else ""
        raise FileNotFoundError(
            f"FashionMNIST: no idx files ({', '.join(f'{n}[.gz]' for n in FILES)}) in "
            f"{where}{DEBIAN_DIR}; {INSTALL_HINT}"
        )

    def prepare_data(self) -> None:
        """Download the idx files with torchvision when ``download`` is set and none are found."""
        if not self.download:
            return
        try:
            self.check_files()
        except FileNotFoundError:
            if self.root is None:
                raise FileNotFoundError(
                    "FashionMNIST: download=True needs a root folder; set data.init_args.root"
                ) from None
            from torchvision.datasets import FashionMNIST as TorchFashionMNIST

            TorchFashionMNIST(str(self.root), train=True, download=True)

    def load(self) -> RetrievalData:
        """Read the training then the test images and labels."""
        files = self.check_files()
        train_x = read_idx("FashionMNIST", files[FILES[0]], images=True)
        train_y = read_idx("FashionMNIST", files[FILES[1]], images=False)
        test_x = read_idx("FashionMNIST", files[FILES[2]], images=True)
        test_y = read_idx("FashionMNIST", files[FILES[3]], images=False)
        for x, y, which in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
            if len(x) != len(y):
                raise ValueError(
                    f"FashionMNIST: the {which} files hold {len(x)} images but {len(y)} labels"
                )
        classes = np.concatenate([train_y, test_y])  # (N,)
        if classes.min() < 0 or classes.max() > 9:
            raise ValueError("FashionMNIST: labels must lie in 0..9")
        images = np.concatenate([train_x, test_x])  # (N, 28, 28) uint8
        partition: dict[str, np.ndarray] = {}
        if self.protocol == "cifar10-2":
            train = np.arange(len(train_y))
            partition = {
                "query": np.arange(len(train_y), len(classes)),
                "database": train,
                "train": train,
            }
        return RetrievalData({"image": images}, one_hot(classes, 10), partition)

    def transforms(self, stage: Literal["train", "eval"]) -> dict[str, Callable[[Any], Any]]:
        """uint8 (28, 28) -> float (1, 28, 28) in [0, 1]; shifts and flips when training."""
        steps: list[Callable[[Any], Any]] = [to_float_image]
        if self.augment and stage == "train":
            steps += [T.RandomCrop(28, padding=2), T.RandomHorizontalFlip()]
        return {"image": T.Compose(steps)}


def to_float_image(image: Any) -> torch.Tensor:
    """uint8 (H, W) -> float32 (1, H, W) in [0, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).unsqueeze(0)
