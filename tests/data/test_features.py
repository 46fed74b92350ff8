"""The frozen-encoder feature cache: served features, keys, reuse, resumption, classic fits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hashrepro.data import Digits, features
from hashrepro.data.base import _LOADED
from hashrepro.data.features import resolve

TINY = {"class_path": "tiny_model.TinyEncoder", "init_args": {"out_features": 5}}


@pytest.fixture(autouse=True)
def no_earlier_loads() -> None:
    """Each test extracts for itself (the in-process load cache would serve an earlier test's)."""
    _LOADED.clear()


def digits(tmp_path: Path, spec: dict | None = TINY, **kwargs: object) -> Digits:
    feats = {"image": spec} if spec is not None else None
    kwargs.setdefault("split_dir", None)
    return Digits(features=feats, feature_dir=str(tmp_path / "f"), **kwargs)


def test_features_replace_the_modality_and_keep_the_split(tmp_path: Path) -> None:
    raw, encoded = digits(tmp_path, None), digits(tmp_path)
    assert encoded.data.sources["image"].shape == (1797, 5)
    assert np.array_equal(encoded.data.labels, raw.data.labels)
    for key, idx in raw.split.items():
        assert np.array_equal(idx, encoded.split[key])
    # the values are the encoder's outputs on the evaluation transform's inputs
    torch.manual_seed(0)
    from tiny_model import TinyEncoder

    encoder = TinyEncoder(out_features=5).eval()
    item = raw.dataset("query")[0]
    with torch.no_grad():
        expected = encoder(item["image"][None])[0]
    served = encoded.dataset("query")[0]
    assert torch.allclose(served["image"], expected, atol=1e-6)
    assert encoded.item_transforms("eval") == {}  # no image transform on feature vectors


def test_split_files_are_shared_with_raw_inputs(tmp_path: Path) -> None:
    splits = str(tmp_path / "splits")
    raw = Digits(split_dir=splits)
    encoded = digits(tmp_path, split_dir=splits)
    assert raw.split_path() == encoded.split_path()


def test_cache_is_written_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = digits(tmp_path).data.sources["image"]
    files = sorted((tmp_path / "f").glob("digits_image_TinyEncoder_*"))
    assert [f.suffix for f in files] == [".json", ".npy"]
    entry = json.loads(files[0].read_text())
    assert entry["num_items"] == 1797 and entry["init_args"] == {
        "in_features": 64,
        "out_features": 5,
    }
    assert "frozen" not in entry["init_args"]  # does not change the features

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("extracted again instead of reading the cache")

    monkeypatch.setattr(features, "extract", fail)
    # same encoder spelled with its defaults and another `frozen`: the same file
    same = {
        "class_path": "tiny_model.TinyEncoder",
        "init_args": {"out_features": 5, "frozen": False},
    }
    assert torch.equal(digits(tmp_path, same).data.sources["image"], first)


def test_other_encoder_or_inputs_get_other_files(tmp_path: Path) -> None:
    _ = digits(tmp_path).data
    wider = {"class_path": "tiny_model.TinyEncoder", "init_args": {"out_features": 7}}
    assert digits(tmp_path, wider).data.sources["image"].shape == (1797, 7)
    assert len(list((tmp_path / "f").glob("*.npy"))) == 2


def test_random_initialisation_is_seeded(tmp_path: Path) -> None:
    a = digits(tmp_path / "a").data.sources["image"]
    torch.manual_seed(123)  # the global seed must not matter
    b = digits(tmp_path / "b").data.sources["image"]
    assert torch.equal(a, b)


def test_interrupted_extraction_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "CHUNK", 500)
    monkeypatch.setattr(features, "BATCH", 100)
    complete = digits(tmp_path / "full").data.sources["image"]
    _LOADED.clear()  # the same settings: extract again, not the in-process load
    calls = {"n": 0}
    original = torch.nn.Linear.forward

    def dying(self: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 12:  # inside the third chunk
            raise KeyboardInterrupt
        return original(self, x)

    monkeypatch.setattr(torch.nn.Linear, "forward", dying)
    with pytest.raises(KeyboardInterrupt):
        _ = digits(tmp_path / "cut").data
    parts = list((tmp_path / "cut" / "f").glob("*.part/*.npy"))
    assert len(parts) == 2  # two finished chunks kept
    calls["n"] = -1000  # no further interruption
    resumed = digits(tmp_path / "cut").data.sources["image"]
    assert calls["n"] == -1000 + 8  # only the last 1797 - 1000 items were encoded (8 batches)
    assert torch.allclose(resumed, complete)
    assert not list((tmp_path / "cut" / "f").glob("*.part"))


def test_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="class_path"):
        resolve({"init_args": {}})
    with pytest.raises(ValueError, match="not found"):
        resolve({"class_path": "NoSuchEncoder"})
    with pytest.raises(ValueError, match="unexpected keyword"):
        resolve({"class_path": "tiny_model.TinyEncoder", "init_args": {"colour": 1}})
    with pytest.raises(ValueError, match="not among the modalities"):
        _ = Digits(split_dir=None, features={"text": TINY}, feature_dir=str(tmp_path)).data


def test_short_names_come_from_the_backbones() -> None:
    cls, args = resolve({"class_path": "EfficientNetLite0", "init_args": {"input_size": 32}})
    assert cls.__name__ == "EfficientNetLite0"
    assert args == {"weights": "package", "input_size": 32, "frozen": False}
