"""CIFAR10, SVHN and NUSWIDE read tiny files written in each dataset's exact on-disk format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_formats import write_cifar, write_svhn
from PIL import Image
from scipy.io import savemat

from hashrepro.data import CIFAR10, NUSWIDE, SVHN
from hashrepro.data.images import CIFAR_MEAN, CIFAR_STD


def split_sets(dm) -> dict[str, set[int]]:
    return {k: set(v.tolist()) for k, v in dm.split.items()}


def check_batch(batch: dict, size: int, num_classes: int) -> None:
    b = len(batch["index"])
    assert batch["image"].shape == (b, 3, size, size) and batch["image"].dtype == torch.float32
    assert batch["label"].shape == (b, num_classes) and batch["label"].dtype == torch.float32
    assert batch["index"].dtype == torch.int64


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_cifar10_1(tmp_path: Path, bytes_keys: bool) -> None:
    rows = write_cifar(tmp_path / "data", bytes_keys)
    dm = CIFAR10(
        root=str(tmp_path / "data"),
        num_query=20,
        num_train=50,
        num_val=20,
        batch_size=8,
        split_dir=str(tmp_path / "splits"),
    )
    images = dm.data.sources["image"]
    assert images.shape == (190, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[57], rows[57].reshape(3, 32, 32).transpose(1, 2, 0))
    assert dm.protocol == "cifar10-1" and dm.num_classes == 10
    s = split_sets(dm)
    sizes = {k: len(v) for k, v in s.items()}
    assert sizes == {"query": 20, "database": 170, "train": 50, "val_query": 20, "val_database": 50}
    assert dm.data.labels[dm.split["query"]].sum(0).tolist() == [2.0] * 10  # per class
    assert s["query"] | s["database"] == set(range(190)) and not s["query"] & s["database"]
    assert s["train"] <= s["database"]
    assert not s["val_query"] & (s["query"] | s["train"]) and s["val_database"] == s["train"]
    dm.setup("fit")
    check_batch(next(iter(dm.train_dataloader())), 32, 10)
    # eval items: exactly the raw pixels, scaled and normalised with the CIFAR statistics
    item = dm.dataset("query")[0]
    raw = torch.from_numpy(images[item["index"]]).permute(2, 0, 1).float() / 255
    mean, std = torch.tensor(CIFAR_MEAN)[:, None, None], torch.tensor(CIFAR_STD)[:, None, None]
    torch.testing.assert_close(item["image"], (raw - mean) / std)


def test_cifar10_2_and_resize(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    dm = CIFAR10(
        protocol="cifar10-2",
        image_size=48,
        root=str(tmp_path),
        num_val=20,
        batch_size=8,
        split_dir=str(tmp_path / "splits"),
    )
    s = split_sets(dm)
    assert dm.protocol == "cifar10-2"
    assert s["query"] == set(range(150, 190))  # the test batch
    assert s["database"] == set(range(150))  # the training batches
    assert len(s["val_query"]) == 20 and len(s["train"]) == 130  # validation carved from train
    assert s["val_query"] <= s["database"] and not s["val_query"] & (s["query"] | s["train"])
    assert s["val_database"] == s["train"]
    dm.setup("fit")
    check_batch(next(iter(dm.train_dataloader())), 48, 10)
    check_batch(next(iter(dm.test_dataloader()[0])), 48, 10)
    assert "cifar10-2" in str(dm.split_path()) and dm.split_path().exists()


def test_cifar10_paper_protocol_on_tiny_data_is_a_clear_error(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    dm = CIFAR10(root=str(tmp_path), split_dir=str(tmp_path / "splits"))
    with pytest.raises(ValueError, match="class 0 has only 19 items left for the query split"):
        dm.setup("fit")
    with pytest.raises(ValueError, match="protocol must be one of"):
        CIFAR10(protocol="cifar10-3", root=str(tmp_path))


def test_cifar10_missing_and_malformed(tmp_path: Path) -> None:
    dm = CIFAR10(root=str(tmp_path), split_dir=str(tmp_path / "splits"))
    with pytest.raises(FileNotFoundError) as err:
        dm.check_files()
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path) in msg and "download=True" in msg
    assert all(n in msg for n in ["cifar-10-batches-py", "data_batch_1", "test_batch"])
    with pytest.raises(FileNotFoundError, match="root"):
        CIFAR10(root=None).setup()
    write_cifar(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="cannot read .*data_batch_3"):
        CIFAR10(root=str(tmp_path), split_dir=None).setup()
    bad = {"data": np.zeros((30, 100), np.uint8), "labels": [0] * 30}
    (folder / "data_batch_3").write_bytes(pickle.dumps(bad))
    with pytest.raises(ValueError, match=r"data_batch_3 holds 'data' \(30, 100\)"):
        CIFAR10(root=str(tmp_path), split_dir=None).setup()
    bad = {"data": np.zeros((30, 3072), np.uint8), "labels": [0] * 29}
    (folder / "data_batch_3").write_bytes(pickle.dumps(bad))
    with pytest.raises(ValueError, match="data_batch_3 needs one label in 0..9 per image"):
        CIFAR10(root=str(tmp_path), split_dir=None).setup()


# --------------------------------------------------------------------------------- SVHN
def test_svhn(tmp_path: Path) -> None:
    x = write_svhn(tmp_path)
    dm = SVHN(
        root=str(tmp_path),
        num_query=20,
        num_train=30,
        num_val=20,
        batch_size=8,
        split_dir=str(tmp_path / "splits"),
    )
    source = dm.data.sources["image"]
    assert source.shape == (100, 32, 32, 3) and source.dtype == np.uint8
    for i in (0, 7, 60, 99):  # pixel-exact round trip through the (32, 32, 3, N) layout
        np.testing.assert_array_equal(source[i], x[..., i])
    assert dm.data.labels[0].argmax() == 0 and dm.data.labels[60].argmax() == 0  # 10 -> digit 0
    assert dm.data.labels[1].argmax() == 1 and dm.data.labels.sum(0).tolist() == [10.0] * 10
    s = split_sets(dm)
    assert {k: len(v) for k, v in s.items()} == {
        "query": 20,
        "database": 80,
        "train": 30,
        "val_query": 20,
        "val_database": 30,
    }
    assert s["train"] <= s["database"] and not s["query"] & s["database"]
    assert not s["val_query"] & (s["query"] | s["train"])
    dm.setup("fit")
    check_batch(next(iter(dm.train_dataloader())), 32, 10)


def test_svhn_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        SVHN(root=str(tmp_path)).check_files()
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path) in msg
    assert "train_32x32.mat" in msg and "test_32x32.mat" in msg and "32x32x3xN" in msg
    write_svhn(tmp_path)
    savemat(
        tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 5), np.uint8), "y": np.ones((5, 1))}
    )
    with pytest.raises(ValueError, match=r"test_32x32.mat holds 'X' \(32, 32, 5\)"):
        SVHN(root=str(tmp_path), split_dir=None).setup()
    bad_y = np.full((5, 1), 11, np.uint8)
    savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 5), np.uint8), "y": bad_y})
    with pytest.raises(ValueError, match="test_32x32.mat needs 'y'.*labels 1..10"):
        SVHN(root=str(tmp_path), split_dir=None).setup()
    (tmp_path / "test_32x32.mat").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read .*test_32x32.mat"):
        SVHN(root=str(tmp_path), split_dir=None).setup()


# --------------------------------------------------------------------------------- NUS-WIDE
NUM_TAGS, NUM_IMAGES = 5, 60


def write_nuswide(image_root: Path) -> tuple[list[str], np.ndarray]:
    """Write tiny JPEGs of varied sizes; return their relative paths and (N, 5) multi-hot labels."""
    labels = np.zeros((NUM_IMAGES, NUM_TAGS), dtype=int)
    paths = []
    for i in range(NUM_IMAGES):
        labels[i, i % NUM_TAGS] = 1
        if i % 3 == 0:
            labels[i, (i + 2) % NUM_TAGS] = 1
        path = f"images/{i:04d}.jpg"
        (image_root / "images").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (10 + i % 4, 12), (4 * i, 100, 200)).save(image_root / path)
        paths.append(path)
    return paths, labels


def write_list(path: Path, paths: list[str], labels: np.ndarray, items) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [paths[i] + " " + " ".join(map(str, labels[i])) for i in items]
    path.write_text("\n".join(lines) + "\n")


def test_nuswide_three_lists(tmp_path: Path) -> None:
    paths, labels = write_nuswide(tmp_path)
    write_list(tmp_path / "test.txt", paths, labels, range(10))
    write_list(tmp_path / "database.txt", paths, labels, range(10, 60))
    write_list(tmp_path / "train.txt", paths, labels, range(10, 30))  # train within database
    dm = NUSWIDE(
        root=str(tmp_path), image_size=16, num_val=5, batch_size=4, split_dir=str(tmp_path / "s")
    )
    assert dm.protocol == "lists" and dm.data.labels.shape == (60, NUM_TAGS)
    np.testing.assert_array_equal(dm.data.labels, labels)  # test then database items, no repeats
    s = split_sets(dm)
    assert s["query"] == set(range(10)) and s["database"] == set(range(10, 60))
    assert s["train"] == set(range(10, 30)) and len(s["val_query"]) == 5
    assert s["val_query"] <= s["database"] - s["train"]
    image = dm.data.sources["image"][3]  # read lazily, resized, RGB
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    assert abs(int(image[8, 8, 1]) - 100) < 8 and abs(int(image[8, 8, 2]) - 200) < 8
    dm.setup("fit")
    check_batch(next(iter(dm.train_dataloader())), 16, NUM_TAGS)
    check_batch(next(iter(dm.val_dataloader()[0])), 16, NUM_TAGS)


def test_nuswide_single_list_and_image_root(tmp_path: Path) -> None:
    paths, labels = write_nuswide(tmp_path / "pictures")
    write_list(tmp_path / "lists" / "all.txt", paths, labels, range(NUM_IMAGES))
    dm = NUSWIDE(
        root=str(tmp_path / "lists"),
        list_file="all.txt",
        image_root=str(tmp_path / "pictures"),
        image_size=16,
        num_query=10,
        num_train=20,
        num_val=5,
        batch_size=4,
        split_dir=str(tmp_path / "s"),
    )
    assert dm.protocol == "drawn"
    s = split_sets(dm)
    assert {k: len(v) for k, v in s.items()} == {
        "query": 10,
        "database": 50,
        "train": 20,
        "val_query": 5,
        "val_database": 20,
    }
    assert (dm.data.labels[dm.split["query"]].sum(0) >= 2).all()  # 2 per tag, multi-label
    assert s["train"] <= s["database"] and not s["query"] & s["database"]
    assert not s["val_query"] & (s["query"] | s["train"])
    dm.setup("fit")
    check_batch(next(iter(dm.test_dataloader()[1])), 16, NUM_TAGS)
    wrong_root = NUSWIDE(root=str(tmp_path / "lists"), list_file="all.txt", split_dir=None)
    with pytest.raises(FileNotFoundError, match="image_root"):
        wrong_root.setup()


def test_nuswide_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        NUSWIDE(root=str(tmp_path)).check_files()
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path) in msg and "list_file" in msg
    assert all(n in msg for n in ["train.txt", "test.txt", "database.txt", "0/1 label"])
    lines = ["images/a.jpg 0 1 0 1 0", "images/b.jpg 1 0 0 0 0", "images/c.jpg 1 0 0 0"]
    (tmp_path / "all.txt").write_text("\n".join(lines) + "\n")
    dm = NUSWIDE(root=str(tmp_path), list_file="all.txt", split_dir=None)
    with pytest.raises(ValueError, match="all.txt line 3 has 4 labels"):
        dm.setup()
    (tmp_path / "all.txt").write_text("images/a.jpg 0 1 0 1 0\nimages/b.jpg 1 0 2 0 0\n")
    with pytest.raises(ValueError, match="all.txt line 2: expected '<image path> <0/1"):
        NUSWIDE(root=str(tmp_path), list_file="all.txt", split_dir=None).setup()
