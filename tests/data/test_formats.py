"""The readers of hashrepro.data.formats: lazy images, and damaged files.

Corrupt, truncated and tampered files are written by the tests in each dataset's real format,
then damaged; every reader must fail with one line holding the file's path, what was expected
and what was found.
"""

from __future__ import annotations

import pathlib
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
from fake_formats import SMALL, write_cifar, write_dcmh, write_svhn
from PIL import Image

from hashrepro.data import CIFAR10, NUSWIDE, SVHN, CrossModalFeatures, MIRFlickr25K
from hashrepro.data.formats import HDF5Images


def one_line(err: pytest.ExceptionInfo, path: Path) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    assert str(path) in msg, msg
    return msg


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# --------------------------------------------------------------------------------- lazy images
def test_lazy_hdf5_images(tmp_path: Path) -> None:
    path = tmp_path / "big.mat"
    with h5py.File(path, "w") as f:  # 3 GB declared, nothing allocated or read
        f.create_dataset(
            "IAll", shape=(20015, 3, 224, 224), dtype=np.uint8, chunks=(1, 3, 224, 224)
        )
    src = HDF5Images(path, "IAll")
    assert len(src) == 20015  # from the stored shape alone
    assert src[20014].shape == (3, 224, 224)
    copy = pickle.loads(pickle.dumps(src))  # works after reading: the handle is not pickled
    assert copy[0].shape == (3, 224, 224)
    copy.close()
    src.close()
    assert src[1].shape == (3, 224, 224)  # reopens on the next access
    src.close()


# --------------------------------------------------------------------------------- CIFAR-10
def cifar(tmp_path: Path) -> CIFAR10:
    return CIFAR10(root=str(tmp_path), split_dir=None)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_cifar_batch(tmp_path: Path, damage: str) -> None:
    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    if damage == "garbage":
        path.write_bytes(b"\x89PNG not a pickle at all")
    else:
        truncate(path)
    with pytest.raises(ValueError) as err:
        _ = cifar(tmp_path).data
    msg = one_line(err, path)
    assert "as a pickled CIFAR-10 batch" in msg and "found " in msg and " bytes starting " in msg


class Payload:
    """Unpickling this creates a marker file: what a tampered batch would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_tampered_cifar_batch_runs_no_code(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch = {"data": np.zeros((40, 3072), np.uint8), "labels": [0] * 40, "x": Payload(marker)}
    path.write_bytes(pickle.dumps(batch))
    with pytest.raises(ValueError) as err:
        _ = cifar(tmp_path).data
    assert not marker.exists()  # nothing in the file was run
    msg = one_line(err, path)
    assert "refused" in msg and "pathlib" in msg and "tampered" in msg


def test_real_cifar_batches_still_read_at_every_pickle_protocol(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    names = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    for protocol, name in enumerate(names):  # pickle protocols 0..5
        batch = pickle.loads((folder / name).read_bytes())
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    assert cifar(tmp_path).data.sources["image"].shape == (190, 32, 32, 3)


# --------------------------------------------------------------------------------- SVHN .mat (v5)
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_svhn_mat(tmp_path: Path, damage: str) -> None:
    write_svhn(tmp_path)
    path = tmp_path / "test_32x32.mat"
    if damage == "garbage":
        path.write_bytes(b"garbage, not MATLAB")
    else:
        truncate(path)
    with pytest.raises(ValueError) as err:
        _ = SVHN(root=str(tmp_path), split_dir=None).data
    msg = one_line(err, path)
    assert "as a MATLAB file with 'X'" in msg and "found " in msg


# --------------------------------------------------------------------------------- DCMH .mat
def test_corrupt_dcmh_v5_matrix(tmp_path: Path) -> None:
    write_dcmh(tmp_path, "mirflickr25k")
    path = tmp_path / "mirflickr25k-yall.mat"
    path.write_bytes(b"garbage, not MATLAB")
    with pytest.raises(ValueError) as err:
        MIRFlickr25K(root=str(tmp_path), **SMALL).check_files()
    msg = one_line(err, path)
    assert msg.startswith("MIRFlickr25K: cannot read") and "MATLAB .mat file" in msg
    assert "found 19 bytes starting b'garbage" in msg


@pytest.mark.parametrize("name", ["mirflickr25k-iall.mat", "mirflickr25k-lall.mat"])
def test_truncated_dcmh_v73_file(tmp_path: Path, name: str) -> None:
    write_dcmh(tmp_path, "mirflickr25k", v73_matrices=True)
    path = tmp_path / name
    truncate(path)
    with pytest.raises(ValueError) as err:
        _ = MIRFlickr25K(root=str(tmp_path), **SMALL).data
    msg = one_line(err, path)
    assert "MIRFlickr25K: cannot read" in msg and "found " in msg


# --------------------------------------------------------------------------------- features, lists
@pytest.mark.parametrize(
    ("name", "make", "needle"),
    [
        (
            "feats.npz",
            lambda root: CrossModalFeatures(path=str(root / "feats.npz"), name="f", split_dir=None),
            "f: cannot read {path} as a .npz or .mat",
        ),
        (
            "all.txt",
            lambda root: NUSWIDE(root=str(root), list_file="all.txt", split_dir=None),
            "NUSWIDE: cannot read {path} as a text list ('<image path> <0/1 label per class>'",
        ),
    ],
)
def test_binary_garbage_feature_or_list_file(tmp_path: Path, name: str, make, needle: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\xff\xfe\x00binary\x80\x81")
    with pytest.raises(ValueError) as err:
        _ = make(tmp_path).data
    msg = one_line(err, path)
    assert needle.format(path=path) in msg and "found 11 bytes starting" in msg


def test_corrupt_image_file(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "images" / "a.jpg")
    bad = tmp_path / "images" / "b.jpg"
    bad.write_bytes(b"not a JPEG")
    (tmp_path / "all.txt").write_text("images/a.jpg 1 0\nimages/b.jpg 0 1\n")
    images = NUSWIDE(root=str(tmp_path), list_file="all.txt", split_dir=None).data.sources["image"]
    assert images[0].shape == (224, 224, 3)
    with pytest.raises(ValueError) as err:
        images[1]
    assert "NUSWIDE: cannot read" in one_line(err, bad)
