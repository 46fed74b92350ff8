"""DCMH-format cross-modal datasets, read from tiny files written in each exact format."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch
from fake_formats import SMALL, C, D, H, N, W, make_items, matlab_images, write_dcmh, write_v73

from hashrepro.data.crossmodal import IAPRTC12, CrossModalFeatures, MIRFlickr25K, NUSWIDECrossModal


def check_batch(dm, expected_size: tuple[int, int] = (H, W)) -> dict:
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()[0]))
    b = len(batch["index"])
    assert batch["image"].shape == (b, 3, *expected_size)
    assert batch["image"].dtype == torch.float32
    assert batch["text"].shape == (b, D)
    assert batch["label"].shape == (b, C)
    return batch


@pytest.mark.parametrize("v73_matrices", [False, True])
def test_mirflickr_pixels_text_labels(tmp_path, v73_matrices):
    write_dcmh(tmp_path, "mirflickr25k", v73_matrices)
    images, text, labels = make_items()
    dm = MIRFlickr25K(root=str(tmp_path), image_norm="cnnf", image_size=None, **SMALL)
    batch = check_batch(dm)
    idx = batch["index"].numpy()
    np.testing.assert_array_equal(batch["image"].numpy(), images[idx].astype(np.float32))
    np.testing.assert_array_equal(batch["text"].numpy(), text[idx])
    np.testing.assert_array_equal(batch["label"].numpy(), labels[idx])
    assert batch["image"][0, 2, 5, 3] == images[idx[0], 2, 5, 3]  # (c, h, w), h=5 >= W


def test_protocol_counts_and_defaults(tmp_path):
    write_dcmh(tmp_path, "mirflickr25k")
    dm = MIRFlickr25K(root=str(tmp_path), **SMALL)
    dm.setup("fit")
    sizes = {k: len(v) for k, v in dm.split.items()}
    assert sizes == {"query": 8, "database": 32, "train": 20, "val_query": 4, "val_database": 20}
    assert not np.intersect1d(dm.split["query"], dm.split["database"]).size
    assert np.isin(dm.split["train"], dm.split["database"]).all()
    default = MIRFlickr25K(root=str(tmp_path))
    assert (default.num_query, default.num_train, default.num_val) == (2000, 10000, 500)
    assert default.sampling == "random" and default.image_norm == "imagenet"
    assert NUSWIDECrossModal(root=".").num_query == 2100
    assert NUSWIDECrossModal(root=".").num_train == 10500


def test_image_norm_and_resize(tmp_path):
    write_dcmh(tmp_path, "mirflickr25k")
    images, _, _ = make_items()
    dm = MIRFlickr25K(root=str(tmp_path), image_size=None, **SMALL)
    batch = check_batch(dm)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = (torch.from_numpy(images[batch["index"].numpy()]).float() / 255 - mean) / std
    torch.testing.assert_close(batch["image"], expected)
    check_batch(MIRFlickr25K(root=str(tmp_path), image_size=8, **SMALL), expected_size=(8, 8))


def test_single_file_flickr(tmp_path):
    images, text, labels = make_items()
    arrays = {"images": matlab_images(images), "YAll": text, "LAll": labels}
    write_v73(tmp_path / "FLICKR-25K.mat", arrays)
    dm = MIRFlickr25K(root=str(tmp_path), image_norm="cnnf", image_size=None, **SMALL)
    batch = check_batch(dm)
    idx = batch["index"].numpy()
    np.testing.assert_array_equal(batch["image"].numpy(), images[idx].astype(np.float32))
    np.testing.assert_array_equal(batch["label"].numpy(), labels[idx])


def test_nuswide_concepts_and_iapr_spelling(tmp_path):
    write_dcmh(tmp_path, "nus-wide-tc21", v73_matrices=True)
    dm = NUSWIDECrossModal(root=str(tmp_path), concepts="tc21", image_size=None, **SMALL)
    check_batch(dm)
    assert dm.protocol == "dcmh_tc21"
    write_dcmh(tmp_path, "iaprtc12")
    check_batch(IAPRTC12(root=str(tmp_path), image_size=None, **SMALL))


def test_dataloader_workers(tmp_path):
    write_dcmh(tmp_path, "mirflickr25k")
    images, _, _ = make_items()
    dm = MIRFlickr25K(
        root=str(tmp_path),
        image_norm="cnnf",
        image_size=None,
        num_workers=2,
        eval_batch_size=16,
        **SMALL,
    )
    dm.setup("test")
    _ = dm.data.sources["image"][0]  # a parent handle open before the fork: each worker
    # must open its own (h5py handles do not survive a fork)
    batches = list(dm.test_dataloader()[1])
    got = torch.cat([b["image"] for b in batches])
    idx = torch.cat([b["index"] for b in batches]).numpy()
    assert len(idx) == 32
    np.testing.assert_array_equal(got.numpy(), images[idx].astype(np.float32))


@pytest.mark.parametrize("fmt", ["npz", "v5", "v73"])
def test_features(tmp_path, fmt):
    rng = np.random.default_rng(1)
    image = rng.standard_normal((N, 9)).astype(np.float32)
    _, text, labels = make_items()
    arrays = {"image": image, "text": text, "labels": labels}
    path = tmp_path / ("feats.npz" if fmt == "npz" else "feats.mat")
    if fmt == "npz":
        np.savez(path, **arrays)
    elif fmt == "v5":
        scipy.io.savemat(path, arrays)
    else:
        write_v73(path, arrays)
    dm = CrossModalFeatures(path="feats." + path.suffix[1:], root=str(tmp_path), name="f", **SMALL)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()[0]))
    idx = batch["index"].numpy()
    np.testing.assert_allclose(batch["image"].numpy(), image[idx])
    np.testing.assert_array_equal(batch["text"].numpy(), text[idx])
    np.testing.assert_array_equal(batch["label"].numpy(), labels[idx])
    assert dm.name == "f" and dm.sampling == "random"
    assert CrossModalFeatures(path=str(path)).num_query == 2000


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_missing_file(tmp_path):
    write_dcmh(tmp_path, "mirflickr25k")
    (tmp_path / "mirflickr25k-yall.mat").unlink()
    dm = MIRFlickr25K(root=str(tmp_path), **SMALL)
    with pytest.raises(FileNotFoundError) as err:
        dm.setup("fit")
    msg = one_line(err)
    assert f"MIRFlickr25K: missing {tmp_path / 'mirflickr25k-yall.mat'};" in msg
    assert "mirflickr25k-{iall,yall,lall}.mat (keys IAll N x 3 x 224 x 224 v7.3" in msg
    assert "YAll N x 1386, LAll N x 24) or FLICKR-25K.mat (keys images, YAll, LAll)" in msg
    with pytest.raises(FileNotFoundError, match="missing .*nus-wide-tc10-iall.mat"):
        NUSWIDECrossModal(root=str(tmp_path)).check_files()
    with pytest.raises(FileNotFoundError, match="missing") as err:
        CrossModalFeatures(path=str(tmp_path / "nope.npz")).setup()
    assert "image (N x D_i), text (N x D_t), labels (N x C)" in one_line(err)


def test_missing_key(tmp_path):
    write_dcmh(tmp_path, "mirflickr25k")
    _, text, _ = make_items()
    scipy.io.savemat(tmp_path / "mirflickr25k-yall.mat", {"Y": text})
    with pytest.raises(ValueError) as err:
        MIRFlickr25K(root=str(tmp_path)).check_files()
    assert "mirflickr25k-yall.mat has no key 'YAll' (found Y)" in one_line(err)
    np.savez(tmp_path / "f.npz", image=text, text=text)
    with pytest.raises(ValueError) as err:
        CrossModalFeatures(path=str(tmp_path / "f.npz")).setup()
    assert "lacks labels (found image, text)" in one_line(err)


def test_shape_mismatch(tmp_path):
    write_dcmh(tmp_path, "mirflickr25k", v73_matrices=True, n_text=N - 1)
    with pytest.raises(ValueError) as err:
        MIRFlickr25K(root=str(tmp_path)).setup()
    assert f"YAll in {tmp_path / 'mirflickr25k-yall.mat'} has shape ({D}, {N - 1})" in one_line(err)
    assert f"IAll has N={N} items" in str(err.value)
    write_v73(tmp_path / "mirflickr25k-iall.mat", {"IAll": np.zeros((H, W, N), np.uint8)})
    with pytest.raises(ValueError, match="not a v7.3 N x 3 x W x H array"):
        MIRFlickr25K(root=str(tmp_path)).check_files()
    _, text, labels = make_items()
    np.savez(tmp_path / "f.npz", image=text[:-1], text=text, labels=labels)
    with pytest.raises(ValueError, match="disagree on N"):
        CrossModalFeatures(path=str(tmp_path / "f.npz")).setup()
