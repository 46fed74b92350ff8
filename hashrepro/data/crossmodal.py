"""Image-text datasets in the DCMH release formats, plus a precomputed-features variant.

The DCMH release (Jiang & Li, CVPR 2017) ships each dataset as three MATLAB files under ``root``:
``<stem>-iall.mat`` (``IAll``: 224x224 RGB images, MATLAB v7.3), ``<stem>-yall.mat`` (``YAll``:
bag-of-words text) and ``<stem>-lall.mat`` (``LAll``: multi-hot labels). MATLAB stores arrays
column-major, so through h5py a v7.3 array comes out with its axes reversed: images as
(N, 3, W, H) and matrices as (D, N). The images stay on disk and are read one item at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import scipy.io
import scipy.sparse
import torch
import torch.nn.functional as F

from hashrepro.data.base import RetrievalData, RetrievalDataModule

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ROLES = ("image", "text", "label")


# --------------------------------------------------------------------------- MATLAB file helpers
def mat_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Variable name -> stored shape (h5py order for v7.3), read without loading any data."""
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            return {k: tuple(v.shape) for k, v in f.items() if isinstance(v, h5py.Dataset)}
    return {name: tuple(shape) for name, shape, _ in scipy.io.whosmat(str(path))}


def needs_transpose(shape: tuple[int, ...], n: int, hdf5: bool) -> bool | None:
    """Whether a stored 2-D matrix must be transposed to put its ``n`` items first.

    v7.3 (HDF5) matrices come out transposed, so that orientation is tried first; ``None`` means
    neither axis has ``n`` entries.
    """
    if len(shape) != 2:
        return None
    natural = shape[::-1] if hdf5 else shape
    if natural[0] == n:
        return hdf5
    if natural[1] == n:
        return not hdf5
    return None


def read_matrix(path: Path, key: str, transpose: bool) -> np.ndarray:
    """Read a whole 2-D matrix from a v5 or v7.3 ``.mat`` file as float32, items first."""
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            arr = f[key][()]
    else:
        arr = scipy.io.loadmat(str(path), variable_names=[key])[key]
    if scipy.sparse.issparse(arr):
        arr = arr.toarray()
    arr = arr.T if transpose else arr
    return np.ascontiguousarray(arr, dtype=np.float32)


class HDF5Images:
    """Lazy images from a MATLAB v7.3 array stored as (N, 3, W, H): one item read per access.

    The file is opened on the first ``__getitem__`` in each process (DataLoader workers open their
    own handle) and the handle is dropped when pickled. ``len()`` comes from the stored shape.

    Args:
        path: the ``.mat`` (HDF5) file.
        key: the image array's name in it.
        swap_hw: transpose the last two axes, undoing MATLAB's column-major (W, H) order.

    """

    def __init__(self, path: str | Path, key: str, swap_hw: bool = True) -> None:
        self.path = str(path)
        self.key = key
        self.swap_hw = swap_hw
        with h5py.File(self.path, "r") as f:
            self.shape: tuple[int, ...] = tuple(f[key].shape)  # (N, 3, W, H), metadata only
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def _dataset(self) -> h5py.Dataset:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")  # after a fork the parent's handle is not used
            self._pid = os.getpid()
        return self._file[self.key]

    def __getitem__(self, i: int) -> np.ndarray:
        x = self._dataset()[int(i)]  # (3, W, H) uint8
        return x.transpose(0, 2, 1) if self.swap_hw else x  # (3, H, W)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None, "_pid": None}

    def close(self) -> None:
        """Close this process's handle (it reopens on the next access)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = self._pid = None


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

    @property
    def protocol_name(self) -> str:
        """The DCMH protocol: random query set, training set drawn from the database."""
        return "dcmh"

    def layouts(self) -> list[dict[str, tuple[Path, str]]]:
        """List the accepted file layouts, each as role -> (path, key), preferred first."""
        root = self.root or Path(".")
        out = [
            {r: (root / f"{stem}-{self.suffixes[r]}.mat", self.keys[r]) for r in ROLES}
            for stem in self.stems
        ]
        return out + [{r: (root / b, self.bundle_keys[r]) for r in ROLES} for b in self.bundles]

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
            role -> (path, key, whether to transpose) for ``image``, ``text`` and ``label``.

        Raises:
            FileNotFoundError: no accepted layout is complete.
            ValueError: a key is missing or the shapes do not fit together.

        """
        cls = type(self).__name__
        if self.root is None:
            raise ValueError(f"{cls}: root is not set; {self.expected()}")
        layouts = self.layouts()
        complete = [lay for lay in layouts if all(p.exists() for p, _ in lay.values())]
        if not complete:  # name a missing file of the most complete layout
            best = max(layouts, key=lambda lay: sum(p.exists() for p, _ in lay.values()))
            missing = next(p for p, _ in best.values() if not p.exists())
            raise FileNotFoundError(f"{cls}: missing {missing}; {self.expected()}")
        layout = complete[0]
        cache: dict[Path, dict[str, tuple[int, ...]]] = {}
        shapes = {}
        for role, (path, key) in layout.items():
            if path not in cache:  # a single-file layout holds all three keys
                cache[path] = mat_shapes(path)
            stored = cache[path]
            if key not in stored:
                found = ", ".join(sorted(stored)) or "nothing"
                raise ValueError(
                    f"{cls}: {path} has no key {key!r} (found {found}); {self.expected()}"
                )
            shapes[role] = stored[key]
        ipath, ikey = layout["image"]
        ishape = shapes["image"]  # (N, 3, W, H)
        if not h5py.is_hdf5(ipath) or len(ishape) != 4 or ishape[1] != 3:
            raise ValueError(
                f"{cls}: {ikey} in {ipath} has shape {ishape} (v7.3: {h5py.is_hdf5(ipath)}), "
                f"not a v7.3 N x 3 x W x H array; {self.expected()}"
            )
        n = ishape[0]
        out = {"image": (ipath, ikey, False)}
        for role in ("text", "label"):
            path, key = layout[role]
            transpose = needs_transpose(shapes[role], n, h5py.is_hdf5(path))
            if transpose is None:
                raise ValueError(
                    f"{cls}: {key} in {path} has shape {shapes[role]} but {ikey} has "
                    f"N={n} items; {self.expected()}"
                )
            out[role] = (path, key, transpose)
        return out

    def load(self) -> RetrievalData:
        """Check the files, then read text and labels; images stay on disk (lazy)."""
        files = self.check_files()
        ipath, ikey, _ = files["image"]
        images = HDF5Images(ipath, ikey)
        text = read_matrix(*files["text"])  # (N, D)
        labels = read_matrix(*files["label"])  # (N, C)
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
    default_protocol = {"num_query": 2000, "num_train": 10000, "num_val": 500}


class NUSWIDECrossModal(DCMHFormat):
    """NUS-WIDE as released by DCMH: 1,000-d tag BoW, 10 (``tc10``) or 21 (``tc21``) concepts.

    The concepts are the most frequent ones. Files: ``nus-wide-<variant>-{iall,yall,lall}.mat``.
    Default protocol: 2,100 random queries, 10,500 training items from the database.

    Args:
        root: directory holding the ``.mat`` files.
        variant: ``tc10`` or ``tc21``.
        **kwargs: :class:`DCMHFormat`'s arguments.

    """

    name = "nuswide_crossmodal"
    text_dim = 1000
    default_protocol = {"num_query": 2100, "num_train": 10500, "num_val": 500}

    def __init__(
        self, root: str | None = None, variant: Literal["tc10", "tc21"] = "tc10", **kwargs: Any
    ) -> None:
        if variant not in ("tc10", "tc21"):
            raise ValueError(f"variant must be 'tc10' or 'tc21', got {variant!r}")
        self.variant = variant
        self.stems = (f"nus-wide-{variant}",)
        self.num_labels = 10 if variant == "tc10" else 21
        super().__init__(root=root, **kwargs)

    @property
    def protocol_name(self) -> str:
        """``dcmh_tc10`` or ``dcmh_tc21``."""
        return f"dcmh_{self.variant}"


class IAPRTC12(DCMHFormat):
    """IAPR TC-12 as released by DCMH: 20,000 pairs, 2,912-d BoW, 255 labels.

    Files: ``iapr-tc12-{iall,yall,lall}.mat`` (or ``iaprtc12-*``). Default protocol: 2,000 random
    queries, 10,000 training items from the database.
    """

    name = "iaprtc12"
    stems = ("iapr-tc12", "iaprtc12")
    text_dim = 2912
    num_labels = 255
    default_protocol = {"num_query": 2000, "num_train": 10000, "num_val": 500}


# --------------------------------------------------------------------------- features variant
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
    default_protocol = {"num_query": 2000, "num_train": 10000, "num_val": 500}
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

    def read(self) -> tuple[dict[str, Any], bool]:
        """Read the arrays named in :attr:`keys` as stored; also say whether the file is v7.3."""
        if self.path.suffix == ".npz":
            with np.load(self.path) as f:
                return {k: f[k] for k in self.keys if k in f.files}, False
        if h5py.is_hdf5(self.path):
            with h5py.File(self.path, "r") as f:
                return {k: f[k][()] for k in self.keys if k in f}, True
        return scipy.io.loadmat(str(self.path), variable_names=list(self.keys)), False

    def load(self) -> RetrievalData:
        """Read the arrays, orient them items-first and check that N agrees."""
        self.check_files()
        arrays, hdf5 = self.read()
        missing = [k for k in self.keys if k not in arrays]
        if missing:
            found = ", ".join(sorted(k for k in arrays if not k.startswith("__"))) or "nothing"
            raise ValueError(
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
            raise ValueError(
                f"{self.name}: the arrays in {self.path} disagree on N (shapes {shapes}); "
                f"{self.expected()}"
            )
        out = {}
        for k in self.keys:
            arr = arrays[k].toarray() if scipy.sparse.issparse(arrays[k]) else arrays[k]
            out[k] = np.ascontiguousarray(arr.T if flips[k] else arr, dtype=np.float32)
        sources = {m: torch.from_numpy(out[m]) for m in ("image", "text")}
        return RetrievalData(sources, out["labels"])
