"""Readers of the on-disk formats the datasets come in; every failure is one line.

- CIFAR-10 pickles (torchvision's ``cifar-10-batches-py``), through an unpickler that builds
  only what those files hold (dicts, lists, strings, NumPy arrays) and refuses anything else;
- MATLAB ``.mat`` files: v5 (scipy) and v7.3 (HDF5, h5py), whose arrays come out with their axes
  reversed (MATLAB is column-major); SVHN's ``*_32x32.mat``; lazy v7.3 images;
- NUS-WIDE list files (``<image path> <0/1 label per class>``) and lazily read image files;
- ``.npz`` / ``.mat`` feature files;
- idx files (MNIST's and Fashion-MNIST's, plain or gzipped), through torchvision's readers.

A missing file raises ``FileNotFoundError``; a file that is there but unreadable or inconsistent
raises :class:`DataFileError`. Both messages are one line that names the file, what was
expected and what was found. torchvision's own CIFAR-10 and SVHN readers check the official
files' MD5 sums and unpickle with plain ``pickle.load``, so the DataModules use torchvision to
download only; image files are opened with torchvision's ``pil_loader``.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io
import scipy.sparse
from PIL import Image
from torchvision.datasets.folder import pil_loader

ROOT_HINT = "set data.init_args.root"


class DataFileError(ValueError):
    """A data file is unreadable, tampered with or inconsistent (a one-line message)."""


def found(path: Path | str, err: BaseException | None = None) -> str:
    """What is in ``path``, for messages: its size, first bytes and the reader's complaint."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
        what = f"{os.path.getsize(path):,} bytes starting {head!r}"
    except OSError as os_err:
        what = f"an unreadable file ({os_err.strerror})"
    if err is not None:
        complaint = " ".join(str(err).split()) or "no message"
        what += f"; {type(err).__name__}: {complaint[:200]}"
    return what


def unreadable(who: str, path: Path | str, expected: str, err: BaseException) -> DataFileError:
    """The one-line error for a file that cannot be read as ``expected``."""
    return DataFileError(f"{who}: cannot read {path} as {expected} (found {found(path, err)})")


def check_present(
    dataset: str, root: Path | None, names: Sequence[str], expected: str, hint: str
) -> Path:
    """Return ``root`` if it holds all ``names``, else raise one line saying what is expected.

    Raises:
        FileNotFoundError: ``root`` is unset or lacks some of the files.

    """
    missing = list(names) if root is None else [n for n in names if not (root / n).is_file()]
    if root is None or missing:
        where = "root (not set)" if root is None else str(root)
        raise FileNotFoundError(
            f"{dataset}: expected {expected} under {where} (missing: {', '.join(missing)}; {hint})"
        )
    return root


def require_root(dataset: str, root: Path | None) -> Path:
    """``root``, or a one-line error if it is not set."""
    if root is None:
        raise FileNotFoundError(f"{dataset}: no root folder given; {ROOT_HINT}")
    return root


# --------------------------------------------------------------------------------- CIFAR-10
class RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global that the restricted unpickler does not build."""


class CifarUnpickler(pickle.Unpickler):
    """Unpickles what a CIFAR-10 batch holds and refuses every other global (no code runs).

    The batches are dicts of strings, lists and one NumPy uint8 array, so the only globals a
    genuine file names are NumPy's array reconstruction functions (and ``_codecs.encode`` for
    bytes pickled by Python 3 at protocol 2 or lower).
    """

    ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        """Resolve an allowed global; refuse any other."""
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise RefusedGlobal(f"it asks for {module}.{name}")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one pickled CIFAR-10 batch as uint8 (n, 32, 32, 3) images and (n,) class ids.

    Raises:
        DataFileError: the file is not a readable batch, asks for anything but NumPy arrays
            (a tampered file: nothing in it is run), or holds the wrong shapes.

    """
    expected = "a pickled CIFAR-10 batch (a dict with 'data' and 'labels')"
    try:
        with path.open("rb") as f:
            batch = CifarUnpickler(f, encoding="latin1").load()
    except RefusedGlobal as err:
        raise DataFileError(
            f"CIFAR10: refused {path}: {err}, which a CIFAR-10 batch never holds (only dicts, "
            "lists, strings and NumPy arrays are read; the file may have been tampered "
            "with: replace it with a fresh download)"
        ) from None
    except Exception as err:  # noqa: BLE001  (any failure of a corrupt pickle is one line)
        raise unreadable("CIFAR10", path, expected, err) from None
    if not isinstance(batch, dict):
        raise DataFileError(f"CIFAR10: {path} holds a {type(batch).__name__}; expected {expected}")
    data = batch.get("data", batch.get(b"data"))
    labels = batch.get("labels", batch.get(b"labels"))
    if data is None or labels is None:
        keys = ", ".join(sorted(map(repr, batch))) or "nothing"
        raise DataFileError(f"CIFAR10: {path} has keys {keys}; expected {expected}")
    data, labels = np.asarray(data), np.asarray(labels).ravel()
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataFileError(
            f"CIFAR10: {path} holds 'data' {data.shape} {data.dtype}; expected uint8 (n, 3072)"
        )
    if len(labels) != len(data) or not np.isin(labels, np.arange(10)).all():
        raise DataFileError(
            f"CIFAR10: {path} needs one label in 0..9 per image ({len(data)} images)"
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (n, 32, 32, 3)
    return np.ascontiguousarray(images), labels.astype(np.int64)


# --------------------------------------------------------------------------------- MATLAB
def is_hdf5(path: Path | str) -> bool:
    """Whether ``path`` is an HDF5 file (a MATLAB v7.3 ``.mat``), from its signature."""
    return h5py.is_hdf5(path)


def load_mat(who: str, path: Path | str, expected: str, **kwargs: Any) -> dict[str, Any]:
    """``scipy.io.loadmat`` (MATLAB v5 and older) with a one-line error naming the file."""
    try:
        return scipy.io.loadmat(str(path), **kwargs)
    except Exception as err:  # noqa: BLE001  (scipy raises many types on corrupt files)
        raise unreadable(who, path, expected, err) from None


def open_hdf5(who: str, path: Path | str, expected: str) -> h5py.File:
    """Open a MATLAB v7.3 file for reading, with a one-line error naming the file."""
    try:
        return h5py.File(path, "r")
    except Exception as err:  # noqa: BLE001  (h5py raises OSError subclasses and others)
        raise unreadable(who, path, expected, err) from None


def mat_shapes(who: str, path: Path, expected: str) -> dict[str, tuple[int, ...]]:
    """Variable name -> stored shape (h5py order for v7.3), read without loading any data."""
    if is_hdf5(path):
        with open_hdf5(who, path, expected) as f:
            return {k: tuple(v.shape) for k, v in f.items() if isinstance(v, h5py.Dataset)}
    try:
        return {name: tuple(shape) for name, shape, _ in scipy.io.whosmat(str(path))}
    except Exception as err:  # noqa: BLE001
        raise unreadable(who, path, expected, err) from None


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


def read_matrix(
    who: str, path: Path, key: str, transpose: bool, expected: str = "a MATLAB file"
) -> np.ndarray:
    """Read a whole 2-D matrix from a v5 or v7.3 ``.mat`` file as float32, items first."""
    if is_hdf5(path):
        with open_hdf5(who, path, expected) as f:
            try:
                arr = f[key][()]
            except Exception as err:  # noqa: BLE001  (a truncated dataset fails on read)
                raise unreadable(who, path, expected, err) from None
    else:
        arr = load_mat(who, path, expected, variable_names=[key])[key]
    if scipy.sparse.issparse(arr):
        arr = arr.toarray()
    arr = arr.T if transpose else arr
    return np.ascontiguousarray(arr, dtype=np.float32)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one SVHN ``*_32x32.mat`` as uint8 (n, 32, 32, 3) images and (n,) digits 0..9."""
    expected = "a MATLAB file with 'X' (32x32x3xN uint8) and 'y' (Nx1, 1..10)"
    mat = load_mat("SVHN", path, expected)
    if "X" not in mat or "y" not in mat:
        keys = ", ".join(sorted(k for k in mat if not k.startswith("__"))) or "nothing"
        raise DataFileError(f"SVHN: {path} has {keys}; expected {expected}")
    x, y = mat["X"], np.asarray(mat["y"]).ravel()
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataFileError(
            f"SVHN: {path} holds 'X' {x.shape} {x.dtype}; expected uint8 (32, 32, 3, n)"
        )
    if len(y) != x.shape[3] or not np.isin(y, np.arange(1, 11)).all():
        raise DataFileError(
            f"SVHN: {path} needs 'y' of shape (n, 1) with labels 1..10 (n={x.shape[3]})"
        )
    images = np.ascontiguousarray(x.transpose(3, 0, 1, 2))  # (n, 32, 32, 3)
    return images, np.where(y == 10, 0, y).astype(np.int64)  # label 10 is the digit 0


class HDF5Images:
    """Lazy images from a MATLAB v7.3 array stored as (N, 3, W, H): one item read per access.

    The file is opened on the first ``__getitem__`` in each process (DataLoader workers open their
    own handle) and the handle is dropped when pickled. ``len()`` comes from the stored shape.

    Args:
        path: the ``.mat`` (HDF5) file.
        key: the image array's name in it.
        swap_hw: transpose the last two axes, undoing MATLAB's column-major (W, H) order.
        who: the dataset, for error messages.

    """

    def __init__(self, path: str | Path, key: str, swap_hw: bool = True, who: str = "") -> None:
        self.path = str(path)
        self.key = key
        self.swap_hw = swap_hw
        self.who = who or "images"
        with open_hdf5(self.who, self.path, "a MATLAB v7.3 file") as f:
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
        try:
            x = self._dataset()[int(i)]  # (3, W, H) uint8
        except Exception as err:  # noqa: BLE001  (a truncated file fails on read)
            expected = f"a MATLAB v7.3 file whose {self.key} holds item {i}"
            raise unreadable(self.who, self.path, expected, err) from None
        return x.transpose(0, 2, 1) if self.swap_hw else x  # (3, H, W)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None, "_pid": None}

    def close(self) -> None:
        """Close this process's handle (it reopens on the next access)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = self._pid = None


Layout = dict[str, tuple[Path, str]]  # part (image, text, label) -> (file, key)


def find_dcmh_files(who: str, layouts: list[Layout], expected: str) -> dict:
    """Pick the first complete DCMH layout and check it from metadata only (no data is read).

    Args:
        who: the dataset, for messages.
        layouts: the accepted layouts, preferred first, each part -> (file, key).
        expected: a description of the accepted layouts, for messages.

    Returns:
        part -> (path, key, whether to transpose) for ``image``, ``text`` and ``label``.

    Raises:
        FileNotFoundError: no layout is complete (names a missing file of the closest one).
        DataFileError: a file is unreadable, a key is missing or the shapes do not fit.

    """
    complete = [lay for lay in layouts if all(p.exists() for p, _ in lay.values())]
    if not complete:  # name a missing file of the most complete layout
        best = max(layouts, key=lambda lay: sum(p.exists() for p, _ in lay.values()))
        missing = next(p for p, _ in best.values() if not p.exists())
        raise FileNotFoundError(f"{who}: missing {missing}; {expected}")
    layout = complete[0]
    cache: dict[Path, dict[str, tuple[int, ...]]] = {}
    shapes = {}
    for part, (path, key) in layout.items():
        if path not in cache:  # a single-file layout holds all three keys
            cache[path] = mat_shapes(who, path, "a MATLAB .mat file (v5 or v7.3)")
        if key not in cache[path]:
            keys = ", ".join(sorted(cache[path])) or "nothing"
            raise DataFileError(f"{who}: {path} has no key {key!r} (found {keys}); {expected}")
        shapes[part] = cache[path][key]
    ipath, ikey = layout["image"]
    ishape = shapes["image"]  # (N, 3, W, H)
    if not is_hdf5(ipath) or len(ishape) != 4 or ishape[1] != 3:
        raise DataFileError(
            f"{who}: {ikey} in {ipath} has shape {ishape} (v7.3: {is_hdf5(ipath)}), "
            f"not a v7.3 N x 3 x W x H array; {expected}"
        )
    n = ishape[0]
    out = {"image": (ipath, ikey, False)}
    for part in ("text", "label"):
        path, key = layout[part]
        transpose = needs_transpose(shapes[part], n, is_hdf5(path))
        if transpose is None:
            raise DataFileError(
                f"{who}: {key} in {path} has shape {shapes[part]} but {ikey} has "
                f"N={n} items; {expected}"
            )
        out[part] = (path, key, transpose)
    return out


def read_arrays(
    who: str, path: Path, keys: Iterable[str], expected: str
) -> tuple[dict[str, Any], bool]:
    """Read the arrays named ``keys`` from a ``.npz`` or ``.mat`` (v5 or v7.3) as stored.

    Returns:
        The arrays found (keys absent from the file are left out) and whether it was v7.3.

    """
    keys = list(keys)
    if path.suffix == ".npz":
        try:
            with np.load(path) as f:
                return {k: f[k] for k in keys if k in f.files}, False
        except Exception as err:  # noqa: BLE001  (bad zip, pickled data, truncated member)
            raise unreadable(who, path, expected, err) from None
    if is_hdf5(path):
        with open_hdf5(who, path, expected) as f:
            try:
                return {k: f[k][()] for k in keys if k in f}, True
            except Exception as err:  # noqa: BLE001
                raise unreadable(who, path, expected, err) from None
    return load_mat(who, path, expected, variable_names=keys), False


# --------------------------------------------------------------------------------- list files
def read_list(path: Path) -> tuple[list[str], np.ndarray]:
    """Read a ``<image path> <label 0/1> ...`` list as paths and (n, C) float32 multi-hot labels."""
    paths: list[str] = []
    rows: list[list[str]] = []
    expected = "a text list ('<image path> <0/1 label per class>' per line)"
    try:
        with path.open(encoding="utf-8") as f:
            lines = f.readlines()
    except UnicodeDecodeError as err:
        raise unreadable("NUSWIDE", path, expected, err) from None
    for lineno, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        bits = parts[1:]
        if not bits or any(b not in ("0", "1") for b in bits):
            raise DataFileError(
                f"NUSWIDE: {path} line {lineno}: expected '<image path> <0/1 label per "
                f"class>', got {line.strip()[:80]!r}"
            )
        if rows and len(bits) != len(rows[0]):
            raise DataFileError(
                f"NUSWIDE: {path} line {lineno} has {len(bits)} labels but earlier lines have "
                f"{len(rows[0])}"
            )
        paths.append(parts[0])
        rows.append(bits)
    if not rows:
        raise DataFileError(f"NUSWIDE: {path} lists no images; expected {expected}")
    return paths, np.array(rows, dtype=np.float32)  # (n, C)


def read_lists(folder: Path, names: Sequence[str]) -> tuple[list[str], np.ndarray, dict]:
    """Read several lists of one dataset; an image listed in more than one is one item.

    Returns:
        The items' image paths, their (N, C) labels, and list name -> (n,) item indices.

    Raises:
        DataFileError: the lists disagree on the number of labels or on an image's labels.

    """
    index: dict[str, int] = {}  # image path -> item
    rows: list[np.ndarray] = []  # (C,) labels per item
    listed: dict[str, np.ndarray] = {}  # list name -> its items
    for name in names:
        paths, labels = read_list(folder / name)
        if rows and labels.shape[1] != len(rows[0]):
            raise DataFileError(
                f"NUSWIDE: {folder / name} has {labels.shape[1]} label columns but "
                f"{names[0]} has {len(rows[0])}"
            )
        for p, row in zip(paths, labels, strict=True):
            if p not in index:
                index[p] = len(rows)
                rows.append(row)
            elif not np.array_equal(rows[index[p]], row):
                raise DataFileError(
                    f"NUSWIDE: {p} is listed with different labels in {folder / name}"
                )
        listed[name] = np.array([index[p] for p in paths], dtype=np.int64)
    return list(index), np.stack(rows), listed


class ImageFiles:
    """Lazily read images: item ``i`` is ``paths[i]`` as RGB uint8 (size, size, 3)."""

    def __init__(self, paths: Sequence[str], size: int, who: str = "images") -> None:
        self.paths = list(paths)
        self.size = size
        self.who = who

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        try:
            rgb = pil_loader(self.paths[i])
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.who}: image {self.paths[i]} not found") from None
        except Exception as err:  # noqa: BLE001  (PIL raises several types on bad files)
            raise unreadable(self.who, self.paths[i], "an image file", err) from None
        rgb = rgb.resize((self.size, self.size), Image.Resampling.BILINEAR)
        return np.asarray(rgb)  # (size, size, 3)


# --------------------------------------------------------------------------------- idx
def find_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` or ``folder/name.gz``, whichever exists (plain first)."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(who: str, path: Path, images: bool) -> np.ndarray:
    """Read an idx image file as uint8 (n, 28, 28) or a label file as int64 (n,).

    Uses torchvision's readers; a ``.gz`` file is decompressed to a temporary file first.

    Raises:
        DataFileError: the file is not an idx file of that kind (one line naming it).

    """
    from torchvision.datasets.mnist import read_image_file, read_label_file

    reader = read_image_file if images else read_label_file
    kind = "image (n, 28, 28) uint8" if images else "label (n,) uint8"
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as src, tempfile.NamedTemporaryFile(suffix=".idx") as tmp:
                shutil.copyfileobj(src, tmp)
                tmp.flush()
                array = reader(tmp.name).numpy()
        else:
            array = reader(str(path)).numpy()
    except (AssertionError, OSError, EOFError, KeyError, RuntimeError, TypeError, ValueError) as e:
        raise unreadable(who, path, f"an idx {kind} file", e) from None
    if images and array.shape[1:] != (28, 28):
        raise DataFileError(f"{who}: {path} holds images of shape {array.shape[1:]}, not 28x28")
    return array
