"""The protocol's index sets: drawing rules, saving, reuse, and damaged or outdated files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_data import Toy

from hashrepro.data import RetrievalDataModule, one_hot
from hashrepro.data.splits import draw


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
    with pytest.raises(ValueError, match="another protocol") as err:
        _ = other.split
    assert "deleting it is safe" in one_line(err)


def test_draw_random_is_distinct() -> None:
    rng = np.random.default_rng(0)
    out = draw(rng, np.arange(50), one_hot(np.arange(50) % 5), 30, False, "query")
    assert len(np.unique(out)) == 30


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing array"])
def test_damaged_split_file_is_one_line_saying_deleting_is_safe(
    tmp_path: Path, damage: str
) -> None:
    path = Toy(split_dir=str(tmp_path)).split_path()
    _ = Toy(split_dir=str(tmp_path)).split  # draws and saves it
    if damage == "garbage":
        path.write_bytes(b"this is no npz file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        with np.load(path) as f:
            kept = {k: f[k] for k in f.files if k != "val_query"}
        np.savez(path, **kept)
    with pytest.raises(ValueError) as err:
        _ = Toy(split_dir=str(tmp_path)).split
    msg = one_line(err)
    assert f"split file {path} is unreadable" in msg and "found " in msg
    assert "deleting it is safe" in msg
    path.unlink()  # as the message says: the split is drawn again
    assert len(Toy(split_dir=str(tmp_path)).split["query"]) == 20


def test_split_file_indexing_past_the_dataset_says_deleting_is_safe(tmp_path: Path) -> None:
    dm = Toy(split_dir=str(tmp_path))
    split = dict(dm.split)
    split["train"] = np.append(split["train"], 500)
    np.savez(dm.split_path(), protocol=json.dumps(dm.split_settings()), **split)
    with pytest.raises(ValueError) as err:
        _ = Toy(split_dir=str(tmp_path)).split
    msg = one_line(err)
    assert "indexes past the dataset's 120 items" in msg and "deleting it is safe" in msg
