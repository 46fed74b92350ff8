"""Image-text datasets in the DCMH release formats, and precomputed features in one file.

The DCMH release (Jiang & Li, CVPR 2017) ships each dataset as three MATLAB files under ``root``:
``<stem>-iall.mat`` (``IAll``: 224x224 RGB images, MATLAB v7.3), ``<stem>-yall.mat`` (``YAll``:
bag-of-words text) and ``<stem>-lall.mat`` (``LAll``: multi-hot labels). MATLAB stores arrays
column-major, so through h5py a v7.3 array comes out with its axes reversed: images as
(N, 3, W, H) and matrices as (D, N). The images stay on disk and are read one item at a time.
The files are read by :mod:`hashrepro.data.formats`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse
import torch
import torch.nn.functional as F

from hashrepro.data.base import RetrievalData, RetrievalDataModule
from hashrepro.data.formats import (
    DataFileError,
    HDF5Images,
    Layout,
    find_dcmh_files,
    needs_transpose,
    read_arrays,
    read_matrix,
)
from hashrepro.data.images import IMAGENET_MEAN, IMAGENET_STD

PARTS = ("image", "text", "label")  # the three files (or keys) of a DCMH release


class ImageToTensor:
    """uint8 (3, H, W) image -> float tensor, optionally resized, then normalised.

    Args:
        norm: ``imagenet``: /255 then ImageNet mean/std (torchvision backbones); ``cnnf``: keep
            0-255 (the CNN-F backbone subtracts its own mean image).
        size: square side to resize to; ``None`` or the stored size keeps the image as is.

    """

    def __init__(self, norm: Literal["imagenet", "cnnf"], size: int | None) -> None:
        self.norm = norm
        self.size = size
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __call__(self, x: Any) -> torch.Tensor:
        """Convert one (3, H, W) image."""
        img = torch.from_numpy(np.ascontiguousarray(x)).float()  # (3, H, W), 0-255
        if self.size is not None and tuple(img.shape[1:]) != (self.size, self.size):
            img = F.interpolate(
                img[None], size=(self.size, self.size), mode="bilinear", antialias=True
            )[0]
        if self.norm == "imagenet":
            img = (img / 255.0 - self.mean) / self.std
        return img


# --------------------------------------------------------------------------- DCMH formats
class DCMHFormat(RetrievalDataModule):
    """Shared loader for the DCMH ``<stem>-{iall,yall,lall}.mat`` releases.

    Subclasses set the file ``stems`` (alternative spellings), optional single-file ``bundles``
    (keys ``images``, ``YAll``, ``LAll``), the expected ``text_dim`` and ``num_labels`` (used in
    error messages) and the default protocol. Default sampling is ``random`` (multi-label data).

    Args:
        root: directory holding the ``.mat`` files.
        image_norm: ``imagenet`` (/255, ImageNet mean/std) or ``cnnf`` (keep 0-255).
        image_size: square image side; the default 224 (the stored size) means no resize,
            ``None`` never resizes.
        sampling: how the protocol draws its splits (see the base class).
        **kwargs: the base class's arguments (protocol sizes, seed, batch sizes, ...).

    """

    modalities = ("image", "text")
    stems: tuple[str, ...] = ()
    bundles: tuple[str, ...] = ()
    keys = {"image": "IAll", "text": "YAll", "label": "LAll"}
    bundle_keys = {"image": "images", "text": "YAll", "label": "LAll"}
    suffixes = {"image": "iall", "text": "yall", "label": "lall"}
    text_dim: int = 0
    num_labels: int = 0

    def __init__(
        self,
        root: str | None = None,
        image_norm: Literal["imagenet", "cnnf"] = "imagenet",
        image_size: int | None = 224,
        sampling: Literal["per_class", "random"] = "random",
        **kwargs: Any,
    ) -> None:
        super().__init__(root=root, sampling=sampling, **kwargs)
        if image_norm not in ("imagenet", "cnnf"):
            raise ValueError(f"image_norm must be 'imagenet' or 'cnnf', got {image_norm!r}")
        self.image_norm = image_norm
        self.image_size = image_size

    protocol = "dcmh"  # random query set, training set drawn from the database

    def layouts(self) -> list[Layout]:
        """List the accepted file layouts, each as part -> (path, key), preferred first."""
        root = self.root or Path(".")
        out = [
            {r: (root / f"{stem}-{self.suffixes[r]}.mat", self.keys[r]) for r in PARTS}
            for stem in self.stems
        ]
        return out + [{r: (root / b, self.bundle_keys[r]) for r in PARTS} for b in self.bundles]

    def expected(self) -> str:
        """Describe the expected files, for error messages."""
        k = self.keys
        shapes = (
            f"keys {k['image']} N x 3 x 224 x 224 v7.3, {k['text']} N x {self.text_dim}, "
            f"{k['label']} N x {self.num_labels}"
        )
        options = [f"{s}-{{iall,yall,lall}}.mat" for s in self.stems]
        options[-1] += f" ({shapes})"
        bk = self.bundle_keys
        options += [f"{b} (keys {bk['image']}, {bk['text']}, {bk['label']})" for b in self.bundles]
        either = "either " if len(options) > 1 else ""
        return f"expected {either}{' or '.join(options)} under {self.root or '<root>'}"

    def check_files(self) -> dict[str, tuple[Path, str, bool]]:
        """Find the files and check keys and shapes from metadata only (no data is read).

        Returns:
            part -> (path, key, whether to transpose) for ``image``, ``text`` and ``label``.

        Raises:
            FileNotFoundError: no accepted layout is complete.
            DataFileError: a file is unreadable, a key is missing or the shapes do not fit.

        """
        cls = type(self).__name__
        if self.root is None:
            raise ValueError(f"{cls}: root is not set; {self.expected()}")
        return find_dcmh_files(cls, self.layouts(), self.expected())

    def load(self) -> RetrievalData:
        """Check the files, then read text and labels; images stay on disk (lazy)."""
        files = self.check_files()
        cls = type(self).__name__
        ipath, ikey, _ = files["image"]
        images = HDF5Images(ipath, ikey, who=cls)
        text = read_matrix(cls, *files["text"])  # (N, D)
        labels = read_matrix(cls, *files["label"])  # (N, C)
        return RetrievalData({"image": images, "text": text}, labels)

    def transforms(self, stage: Literal["train", "eval"]) -> dict[str, Callable[[Any], Any]]:
        """Images to normalised float tensors; text to float (the default)."""
        return {"image": ImageToTensor(self.image_norm, self.image_size)}


class MIRFlickr25K(DCMHFormat):
    """MIRFlickr-25K as released by DCMH: 20,015 pairs, 1,386-d tag BoW, 24 labels.

    Files: ``mirflickr25k-{iall,yall,lall}.mat`` or a single ``FLICKR-25K.mat``. Default protocol:
    2,000 random queries, database = the other 18,015, 10,000 training items from it.
    """

    name = "mirflickr25k"
    stems = ("mirflickr25k",)
    bundles = ("FLICKR-25K.mat",)
    text_dim = 1386
    num_labels = 24
    default_sizes = {"num_query": 2000, "num_train": 10000, "num_val": 500}


class NUSWIDECrossModal(DCMHFormat):
    """NUS-WIDE as released by DCMH: 1,000-d tag BoW, 10 (``tc10``) or 21 (``tc21``) concepts.

    The concepts are the most frequent ones. Files: ``nus-wide-<concepts>-{iall,yall,lall}.mat``.
    Default protocol: 2,100 random queries, 10,500 training items from the database.

    Args:
        root: directory holding the ``.mat`` files.
        concepts: the concept set, ``tc10`` or ``tc21``.
        **kwargs: :class:`DCMHFormat`'s arguments.

    """

    name = "nuswide_crossmodal"
    text_dim = 1000
    default_sizes = {"num_query": 2100, "num_train": 10500, "num_val": 500}

    def __init__(
        self, root: str | None = None, concepts: Literal["tc10", "tc21"] = "tc10", **kwargs: Any
    ) -> None:
        if concepts not in ("tc10", "tc21"):
            raise ValueError(f"concepts must be 'tc10' or 'tc21', got {concepts!r}")
        self.concepts = concepts
        self.stems = (f"nus-wide-{concepts}",)
        self.num_labels = 10 if concepts == "tc10" else 21
        super().__init__(root=root, **kwargs)

    @property
    def protocol(self) -> str:
        """``dcmh_tc10`` or ``dcmh_tc21``."""
        return f"dcmh_{self.concepts}"


class IAPRTC12(DCMHFormat):
    """IAPR TC-12 as released by DCMH: 20,000 pairs, 2,912-d BoW, 255 labels.

    Files: ``iapr-tc12-{iall,yall,lall}.mat`` (or ``iaprtc12-*``). Default protocol: 2,000 random
    queries, 10,000 training items from the database.
    """

    name = "iaprtc12"
    stems = ("iapr-tc12", "iaprtc12")
    text_dim = 2912
    num_labels = 255
    default_sizes = {"num_query": 2000, "num_train": 10000, "num_val": 500}


# --------------------------------------------------------------------------- precomputed features
class CrossModalFeatures(RetrievalDataModule):
    """Precomputed image features paired with text vectors, for already-extracted CNN features.

    The file holds three arrays: ``image`` (N, D_i), ``text`` (N, D_t) and ``labels`` (N, C)
    multi-hot, as a ``.npz`` or a ``.mat`` (v5, or v7.3 whose matrices come out transposed; each
    is oriented by matching N).

    Args:
        path: the ``.npz`` / ``.mat`` file; relative paths are taken under ``root`` when it is set.
        name: dataset name (used in split file names and logs).
        sampling: how the protocol draws its splits (default ``random``).
        **kwargs: the base class's arguments (default protocol 2,000 / 10,000 / 500).

    """

    modalities = ("image", "text")
    default_sizes = {"num_query": 2000, "num_train": 10000, "num_val": 500}
    keys = ("image", "text", "labels")

    def __init__(
        self,
        path: str,
        name: str = "crossmodal_features",
        sampling: Literal["per_class", "random"] = "random",
        **kwargs: Any,
    ) -> None:
        super().__init__(sampling=sampling, **kwargs)
        self.name = name
        p = Path(path).expanduser()
        self.path = self.root / p if self.root is not None and not p.is_absolute() else p

    def expected(self) -> str:
        """Describe the expected file, for error messages."""
        return (
            "expected a .npz or .mat (v5 or v7.3) file with arrays image (N x D_i), "
            "text (N x D_t), labels (N x C)"
        )

    def check_files(self) -> None:
        """Fail at once on a missing file or an unknown extension."""
        if not self.path.exists():
            raise FileNotFoundError(f"{self.name}: missing {self.path}; {self.expected()}")
        if self.path.suffix not in (".npz", ".mat"):
            raise ValueError(f"{self.name}: {self.path} is not .npz or .mat; {self.expected()}")

    def load(self) -> RetrievalData:
        """Read the arrays, orient them items-first and check that N agrees."""
        self.check_files()
        expected = self.expected().removeprefix("expected ")
        arrays, hdf5 = read_arrays(self.name, self.path, self.keys, expected)
        missing = [k for k in self.keys if k not in arrays]
        if missing:
            found = ", ".join(sorted(k for k in arrays if not k.startswith("__"))) or "nothing"
            raise DataFileError(
                f"{self.name}: {self.path} lacks {', '.join(missing)} (found {found}); "
                f"{self.expected()}"
            )
        shapes = {k: tuple(arrays[k].shape) for k in self.keys}
        natural = shapes["labels"][::-1] if hdf5 else shapes["labels"]
        for n in dict.fromkeys(natural):  # the convention's N first, then the other axis
            flips = {k: needs_transpose(shapes[k], n, hdf5) for k in self.keys}
            if None not in flips.values():
                break
        else:
            raise DataFileError(
                f"{self.name}: the arrays in {self.path} disagree on N (shapes {shapes}); "
                f"{self.expected()}"
            )
        out = {}
        for k in self.keys:
            arr = arrays[k].toarray() if scipy.sparse.issparse(arrays[k]) else arrays[k]
            out[k] = np.ascontiguousarray(arr.T if flips[k] else arr, dtype=np.float32)
        sources = {m: torch.from_numpy(out[m]) for m in ("image", "text")}
        return RetrievalData(sources, out["labels"])
