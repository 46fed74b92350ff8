"""Writers of tiny files in the exact on-disk formats users have (shared by several tests).

- torchvision's CIFAR-10 pickles and SVHN ``.mat`` files;
- MATLAB v7.3 (HDF5 with MATLAB's header, axes reversed), and DCMH releases written with it;
- MatConvNet's ``imagenet-vgg-f.mat`` (SimpleNN layout), narrow but with CNN-F's real layout.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import scipy.io

TRAIN_PER_BATCH, TEST_SIZE = 30, 40  # 5 x 30 training + 40 test images: 19 per class


def write_cifar(root: Path, bytes_keys: bool = False) -> np.ndarray:
    """Write torchvision's cifar-10-batches-py layout; return all (N, 3072) rows in item order."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = TEST_SIZE if name == "test_batch" else TRAIN_PER_BATCH
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        batch = {"data": data, "labels": [i % 10 for i in range(n)], "batch_label": name}
        if bytes_keys:
            batch = {k.encode(): v for k, v in batch.items()}
        (folder / name).write_bytes(pickle.dumps(batch))
        rows.append(data)
    meta = {"label_names": [f"c{i}" for i in range(10)], "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return np.concatenate(rows)


def write_svhn(root: Path, n_train: int = 60, n_test: int = 40) -> np.ndarray:
    """Write train/test_32x32.mat (X: 32x32x3xN, y: Nx1 in 1..10); return X in item order."""
    rng = np.random.default_rng(1)
    xs = []
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        digits = np.arange(n) % 10
        y = np.where(digits == 0, 10, digits).reshape(n, 1).astype(np.uint8)  # 10 is digit 0
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})
        xs.append(x)
    return np.concatenate(xs, axis=3)


def write_v73(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays as MATLAB v7.3 does: HDF5 with a 512-byte header, axes reversed.

    Each array is given in its MATLAB shape (e.g. an (N, D) matrix, or H x W x 3 x N images).
    """
    with h5py.File(path, "w", userblock_size=512) as f:
        for key, arr in arrays.items():
            ds = f.create_dataset(key, data=np.ascontiguousarray(arr.T))  # column-major
            ds.attrs["MATLAB_class"] = np.bytes_("uint8" if arr.dtype == np.uint8 else "double")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 "
    header += b"HDF5 schema 1.00 ."
    header = header.ljust(116) + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as f:
        f.write(header)


def matlab_images(images: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) -> MATLAB's H x W x 3 x N."""
    return images.transpose(2, 3, 1, 0)


WIDTH = 1 / 32  # conv1 2 channels, conv2-5 8 channels, fc6/fc7 128 units
C1, C2, FC = 2, 8, 128
LRN_PARAM = [5.0, 2.0, 1e-4, 0.75]


def mat_cell(*items: object) -> np.ndarray:
    cell = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        cell[0, i] = item
    return cell


def fake_vgg_f(path: Path, layout: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Write a narrow imagenet-vgg-f.mat mirroring MatConvNet's SimpleNN layout.

    ``layout``: ``"old"`` (top-level ``normalization``, 224x224x3 mean image, ``normalize``
    LRN type), ``"meta"`` (``meta.normalization``, 3-vector mean, ``lrn`` type) or ``"net"``
    (everything inside a ``net`` struct, legacy ``filters`` / ``biases`` fields).
    Returns the written arrays by layer name, plus ``"mean"``.
    """
    shapes = {
        "conv1": (11, 11, 3, C1),
        "conv2": (5, 5, C1, C2),
        "conv3": (3, 3, C2, C2),
        "conv4": (3, 3, C2, C2),
        "conv5": (3, 3, C2, C2),
        "fc6": (6, 6, C2, FC),
        "fc7": (1, 1, FC, FC),
        "fc8": (1, 1, FC, 10),
    }
    written: dict[str, np.ndarray] = {}

    def conv(name: str, stride: int, pad: int) -> dict[str, object]:
        f = rng.standard_normal(shapes[name]).astype(np.float32) * 0.1
        b = rng.standard_normal((1, shapes[name][3])).astype(np.float32) * 0.1
        written[name], written[name + "_b"] = f, b.ravel()
        common = {"name": name, "type": "conv", "stride": [stride, stride], "pad": [pad] * 4}
        if layout == "net":
            return {**common, "filters": f, "biases": b.T}  # legacy fields, column biases
        return {**common, "weights": mat_cell(f, b), "size": list(shapes[name])}

    lrn_type = "normalize" if layout == "old" else "lrn"

    def lrn(name: str) -> dict[str, object]:
        return {"name": name, "type": lrn_type, "param": LRN_PARAM}

    def pool(name: str, pad: list[int]) -> dict[str, object]:
        return {"name": name, "type": "pool", "method": "max", "pool": [3, 3], "stride": [2, 2],
                "pad": pad}  # fmt: skip

    def relu(name: str) -> dict[str, object]:
        return {"name": name, "type": "relu"}

    layers = mat_cell(
        conv("conv1", 4, 0), relu("relu1"), lrn("norm1"), pool("pool1", [0, 1, 0, 1]),
        conv("conv2", 1, 2), relu("relu2"), lrn("norm2"), pool("pool2", [0, 0, 0, 0]),
        conv("conv3", 1, 1), relu("relu3"), conv("conv4", 1, 1), relu("relu4"),
        conv("conv5", 1, 1), relu("relu5"), pool("pool5", [0, 0, 0, 0]),
        conv("fc6", 1, 0), relu("relu6"), conv("fc7", 1, 0), relu("relu7"),
        conv("fc8", 1, 0), {"name": "prob", "type": "softmax"},
    )  # fmt: skip
    if layout == "old":
        mean = rng.uniform(90, 130, (224, 224, 3)).astype(np.float32)
    else:
        mean = np.array([[[122.8, 114.9, 101.6]]], dtype=np.float32)  # 1x1x3
    written["mean"] = mean
    normalization = {"averageImage": mean, "imageSize": [224.0, 224.0, 3.0], "keepAspect": 1}
    classes = {"name": mat_cell(*(f"n{i:08d}" for i in range(10)))}
    if layout == "old":
        content = {"layers": layers, "normalization": normalization, "classes": classes}
    elif layout == "meta":
        content = {"layers": layers, "meta": {"normalization": normalization, "classes": classes}}
    else:
        content = {"net": {"layers": layers, "normalization": normalization}}
    scipy.io.savemat(path, content)
    return written


def write_mirflickr(root: Path, n: int, rng: np.random.Generator, side: int = 224) -> np.ndarray:
    """Write a tiny MIRFlickr-25K as DCMH released it; return its (n, 24) labels.

    ``mirflickr25k-iall.mat`` (v7.3, ``IAll`` side x side x 3 x n uint8 in MATLAB's order),
    ``mirflickr25k-yall.mat`` (v5, ``YAll`` n x 1386 tag BoW), ``mirflickr25k-lall.mat`` (v5,
    ``LAll`` n x 24 multi-hot). Items of one label get brighter images and shared tags, so a
    model can learn something in a few steps.
    """
    labels = (rng.random((n, 24)) < 0.1).astype(np.uint8)
    labels[np.arange(n), np.arange(n) % 4] = 1  # four dominant classes, every item labelled
    images = rng.integers(0, 128, (n, 3, side, side), dtype=np.uint8)  # (N, 3, H, W)
    images += (40 * (np.arange(n) % 4)).astype(np.uint8)[:, None, None, None]
    tags = (rng.random((n, 1386)) < 0.01).astype(np.float64)
    tags[:, :4] = labels[:, :4]  # a tag per dominant class
    write_v73(root / "mirflickr25k-iall.mat", {"IAll": matlab_images(images)})
    scipy.io.savemat(root / "mirflickr25k-yall.mat", {"YAll": tags})
    scipy.io.savemat(root / "mirflickr25k-lall.mat", {"LAll": labels})
    return labels


# ---------------------------------------------------------------- DCMH releases (tiny)
N, H, W, D, C = 40, 6, 5, 12, 6  # non-square images catch a missing H/W swap
SMALL = {"num_query": 8, "num_train": 20, "num_val": 4, "split_dir": None}


def make_items(n: int = N, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images (n, 3, H, W) uint8 with a known pattern, text (n, D), multi-hot labels (n, C)."""
    rng = np.random.default_rng(seed)
    nn, c, h, w = np.meshgrid(np.arange(n), np.arange(3), np.arange(H), np.arange(W), indexing="ij")
    images = ((nn * 7 + c * 60 + h * 10 + w) % 256).astype(np.uint8)
    text = (rng.random((n, D)) < 0.3).astype(np.float64)
    labels = (rng.random((n, C)) < 0.3).astype(np.uint8)
    labels[np.arange(n), np.arange(n) % C] = 1
    return images, text, labels


def write_dcmh(root: Path, stem: str, v73_matrices: bool = False, n_text: int = N) -> None:
    images, text, labels = make_items()
    write_v73(root / f"{stem}-iall.mat", {"IAll": matlab_images(images)})
    for suffix, key, arr in (("yall", "YAll", text[:n_text]), ("lall", "LAll", labels)):
        if v73_matrices:
            write_v73(root / f"{stem}-{suffix}.mat", {key: arr})
        else:
            scipy.io.savemat(root / f"{stem}-{suffix}.mat", {key: arr})
