"""FashionMNIST on tiny idx files written here: layouts, Debian fallback, protocols, errors."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from hashrepro.data import FashionMNIST, fashion_mnist
from hashrepro.data.fashion_mnist import FILES

N_TRAIN, N_TEST = 60, 20  # 6 / 2 per class


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx encoding of a uint8 array: magic (0, 0, 0x08, ndim), big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion(folder: Path, gz: bool) -> dict[str, np.ndarray]:
    """The four idx files (images carry their item number in pixel (0, 0))."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for stem, n, offset in (("train", N_TRAIN, 0), ("t10k", N_TEST, N_TRAIN)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(offset, offset + n) % 256
        images[:, 5:20, 5:20] = 200
        labels = (np.arange(n) % 10).astype(np.uint8)
        arrays[f"{stem}-images-idx3-ubyte"] = images
        arrays[f"{stem}-labels-idx1-ubyte"] = labels
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


@pytest.fixture
def no_debian(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the Debian package directory at an empty folder."""
    empty = tmp_path / "no-debian"
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", empty)
    return empty


SMALL = {"num_query": 10, "num_train": 20, "num_val": 10, "split_dir": None}


@pytest.mark.parametrize("gz", [False, True])
def test_torchvision_layout(tmp_path: Path, no_debian: Path, gz: bool) -> None:
    write_fashion(tmp_path / "FashionMNIST" / "raw", gz)
    dm = FashionMNIST(root=str(tmp_path), **SMALL)
    images = dm.data.sources["image"]
    assert images.shape == (N_TRAIN + N_TEST, 28, 28) and images.dtype == np.uint8
    assert list(images[:, 0, 0]) == list(range(N_TRAIN + N_TEST))  # train items, then test
    assert dm.data.labels.shape == (N_TRAIN + N_TEST, 10)
    assert (dm.data.labels.argmax(1) == np.r_[np.arange(N_TRAIN), np.arange(N_TEST)] % 10).all()
    dm.setup()
    split = dm.split
    assert len(split["query"]) == 10 and len(split["train"]) == 20 and len(split["val_query"]) == 10
    assert not set(split["query"]) & set(split["database"])
    assert not set(split["val_query"]) & set(split["query"])
    assert len(split["database"]) == N_TRAIN + N_TEST - 10
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (20, 1, 28, 28)  # batch_size 64 > 20 training items
    assert 0.0 <= float(batch["image"].min()) and float(batch["image"].max()) <= 1.0


def test_files_directly_in_root(tmp_path: Path, no_debian: Path) -> None:
    write_fashion(tmp_path, gz=False)
    assert len(FashionMNIST(root=str(tmp_path), **SMALL).data.labels) == N_TRAIN + N_TEST


def test_debian_directory_when_root_holds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    debian = tmp_path / "usr-share-datasets"
    write_fashion(debian, gz=True)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", debian)
    for root in (None, str(tmp_path / "empty")):
        dm = FashionMNIST(root=root, **SMALL)
        assert dm.check_files()[FILES[0]].parent == debian
        assert len(dm.data.labels) == N_TRAIN + N_TEST


def test_cifar10_2_protocol(tmp_path: Path, no_debian: Path) -> None:
    write_fashion(tmp_path, gz=True)
    dm = FashionMNIST(root=str(tmp_path), protocol="cifar10-2", num_val=10, split_dir=None)
    split = dm.split
    assert list(split["query"]) == list(range(N_TRAIN, N_TRAIN + N_TEST))  # the test images
    assert sorted(split["database"]) == list(range(N_TRAIN))  # in a shuffled order
    assert len(split["train"]) == N_TRAIN - 10  # validation carved out of training
    assert not set(split["val_query"]) & set(split["train"])
    assert dm.protocol == "cifar10-2"


def test_default_protocol_is_cifar10_1_scale() -> None:
    dm = FashionMNIST(split_dir=None)
    assert (dm.num_query, dm.num_train, dm.num_val) == (1000, 5000, 1000)
    assert dm.protocol == "cifar10-1"
    with pytest.raises(ValueError, match="protocol must be one of"):
        FashionMNIST(protocol="cifar10-3")


def test_missing_files_say_what_to_install(tmp_path: Path, no_debian: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        FashionMNIST(root=str(tmp_path), **SMALL).check_files()
    message = str(info.value)
    assert "\n" not in message
    assert "dataset-fashion-mnist" in message and "download=True" in message
    assert "train-images-idx3-ubyte" in message and str(no_debian) in message


def test_some_files_missing(tmp_path: Path, no_debian: Path) -> None:
    write_fashion(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="missing: t10k-labels-idx1-ubyte"):
        FashionMNIST(root=str(tmp_path), **SMALL).check_files()


def test_corrupt_file_names_it(tmp_path: Path, no_debian: Path) -> None:
    write_fashion(tmp_path, gz=False)
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"not an idx file")
    with pytest.raises(ValueError, match="cannot read .*train-images-idx3-ubyte as an idx image"):
        _ = FashionMNIST(root=str(tmp_path), **SMALL).data


def test_augmentation_only_for_training(tmp_path: Path, no_debian: Path) -> None:
    write_fashion(tmp_path, gz=False)
    dm = FashionMNIST(root=str(tmp_path), augment=True, **SMALL)
    image = dm.data.sources["image"][0]
    evaluated = dm.transforms("eval")["image"](image)
    assert evaluated.shape == (1, 28, 28)
    assert float(evaluated[0, 0, 0]) == 0.0 and float(evaluated[0, 10, 10]) == pytest.approx(
        200 / 255
    )
    assert len(dm.transforms("train")["image"].transforms) == 3


def test_download_uses_torchvision(
    tmp_path: Path, no_debian: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    class FakeTorchvision:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append((root, download))
            write_fashion(Path(root) / "FashionMNIST" / "raw", gz=False)

    monkeypatch.setattr("torchvision.datasets.FashionMNIST", FakeTorchvision)
    dm = FashionMNIST(root=str(tmp_path), download=True, **SMALL)
    dm.prepare_data()
    dm.prepare_data()  # files present: no second download
    assert calls == [(str(tmp_path), True)]
    assert len(dm.data.labels) == N_TRAIN + N_TEST
