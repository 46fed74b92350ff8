"""The retrieval protocol's index sets: drawn from a seed, saved, and loaded back.

Five index sets over the items of a dataset (:data:`SPLITS`): ``query`` (the test queries),
``database`` (what they search), ``train`` (drawn from the database by default),
``val_query`` (validation queries, drawn outside the test queries and preferably outside
training) and ``val_database`` (what the validation queries search). A saved split is a
``.npz`` with the five arrays and the settings it was drawn with; it is derived data, so a
damaged or outdated one can always be deleted and drawn again from its seed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hashrepro.data.formats import DataFileError, found

SPLITS = ("query", "database", "train", "val_query", "val_database")
REDRAW = "it is derived from the seed: deleting it is safe, the split is drawn again"


def draw(
    rng: np.random.Generator,
    pool: np.ndarray,
    labels: np.ndarray,
    count: int,
    per_class: bool,
    role: str,
) -> np.ndarray:
    """Draw ``count`` distinct items from ``pool``, at random or equally per class.

    Per-class drawing on multi-label data picks, class by class, items carrying that label that
    were not picked yet.

    Raises:
        ValueError: the pool cannot meet the request; the message says what to change.

    """
    if count < 0:
        raise ValueError(f"num_{role} must be >= 0, got {count}")
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if not per_class:
        if count > len(pool):
            raise ValueError(
                f"num_{role}={count} exceeds the {len(pool)} items available for it; "
                f"lower num_{role}"
            )
        return np.sort(rng.choice(pool, size=count, replace=False))
    num_classes = labels.shape[1]
    if count % num_classes:
        raise ValueError(
            f"num_{role}={count} is not divisible by the {num_classes} classes with "
            f"sampling='per_class'; use a multiple of {num_classes} or sampling='random'"
        )
    per = count // num_classes
    taken = np.zeros(len(labels), dtype=bool)
    chosen = []
    for c in range(num_classes):
        cand = pool[(labels[pool, c] > 0) & ~taken[pool]]
        if len(cand) < per:
            raise ValueError(
                f"class {c} has only {len(cand)} items left for the {role} split but the "
                f"protocol asks for {per} per class; lower num_{role} or use sampling='random'"
            )
        pick = rng.choice(cand, size=per, replace=False)
        taken[pick] = True
        chosen.append(pick)
    return np.sort(np.concatenate(chosen))


def make_split(
    labels: np.ndarray,
    partition: Mapping[str, np.ndarray],
    num_query: int,
    num_train: int,
    num_val: int,
    per_class: bool,
    train_in_database: bool,
    val_database: str,
    seed: int,
    dataset: str = "dataset",
    shuffle_database: bool = True,
) -> dict[str, np.ndarray]:
    """Draw the protocol's index sets from ``seed``.

    Args:
        labels: (N, C) multi-hot labels of every item.
        partition: index sets the dataset fixes itself (``query``, ``database``, ``train``);
            the others are drawn.
        num_query: test queries to draw (unless ``partition`` fixes them).
        num_train: training items (a subset is drawn when ``partition`` fixes a larger set).
        num_val: validation queries.
        per_class: draw equal counts per class (else uniformly).
        train_in_database: whether training items stay in the database.
        val_database: what the validation queries search, ``train`` or ``database``.
        seed: the seed of the draw.
        dataset: the dataset's name, for messages.
        shuffle_database: put ``database`` and ``val_database`` in an order drawn from the
            seed (from its own stream, so the sets themselves do not change). Tied items are
            ranked in database order by ``ties="index"``; in dataset order they often come
            sorted by class, which biases mAP upward.

    Returns:
        ``{name: int64 indices}`` for every name of :data:`SPLITS`: sorted, except the
        shuffled databases.

    Raises:
        ValueError: the protocol cannot be drawn from this data (one line).

    """
    n = len(labels)
    rng = np.random.default_rng(seed)
    everything = np.arange(n)
    if "query" in partition:
        query = np.sort(partition["query"])
    else:
        query = draw(rng, everything, labels, num_query, per_class, "query")
    rest = np.setdiff1d(everything, query)
    if "train" in partition:
        train_pool = np.asarray(partition["train"])
        if num_train and num_train < len(train_pool):
            train = draw(rng, train_pool, labels, num_train, per_class, "train")
        else:
            train = np.sort(train_pool)
    else:
        train_pool = np.asarray(partition.get("database", rest))
        train = draw(rng, train_pool, labels, num_train, per_class, "train")
    if "database" in partition:
        database = np.sort(partition["database"])
    elif train_in_database:
        database = rest
    else:
        database = np.setdiff1d(rest, train)
    if len(np.intersect1d(query, train)):
        raise ValueError(f"{dataset}: the training items overlap the test queries")
    # Validation queries: never a test query; preferably not a training item either.
    val_pool = np.setdiff1d(np.setdiff1d(database, train), query)
    if num_val <= len(val_pool):
        val_query = draw(rng, val_pool, labels, num_val, per_class, "val")
    else:
        val_query = draw(rng, train, labels, num_val, per_class, "val")
        train = np.setdiff1d(train, val_query)
    if val_database == "train":
        val_db = np.setdiff1d(train, val_query)
    else:
        val_db = np.setdiff1d(database, val_query)
    split = {
        "query": query,
        "database": database,
        "train": train,
        "val_query": val_query,
        "val_database": val_db,
    }
    for key, idx in split.items():
        if len(idx) == 0 and not (key == "val_query" and num_val == 0):
            raise ValueError(f"{dataset}: the protocol leaves the {key} split empty")
    if shuffle_database:
        order = np.random.default_rng([seed, 1])  # its own stream: the sets stay the same
        split["database"] = order.permutation(split["database"])
        split["val_database"] = order.permutation(split["val_database"])
    return {k: v.astype(np.int64) for k, v in split.items()}


def split_path(split_dir: Path, settings: Mapping[str, Any]) -> Path:
    """Where the split of ``settings`` is saved: keyed by dataset, protocol, seed and a digest."""
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    name = f"{settings['dataset']}_{settings['protocol']}_seed{settings['seed']}_{digest}.npz"
    return split_dir / name


def write_split(path: Path, split: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> None:
    """Save a split with its settings, atomically (a crash never leaves half a split behind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, protocol=json.dumps(settings, sort_keys=True), **split)
    tmp.replace(path)


def read_split(path: Path, settings: Mapping[str, Any], num_items: int) -> dict[str, np.ndarray]:
    """Load a saved split, checking that it was drawn with ``settings`` for ``num_items`` items.

    Raises:
        DataFileError: the file is unreadable, incomplete, made for another protocol or indexes
            past the dataset; the one-line message says that deleting it is safe.

    """
    try:
        with np.load(path) as f:
            saved = json.loads(str(f["protocol"]))
            split = {k: f[k].astype(np.int64) for k in SPLITS} if saved == settings else None
    except Exception as err:  # noqa: BLE001  (bad zip, pickled data, missing arrays, bad JSON)
        raise DataFileError(
            f"split file {path} is unreadable (expected a .npz with the protocol and the arrays "
            f"{', '.join(SPLITS)}; found {found(path, err)}); {REDRAW}"
        ) from None
    if split is None:
        raise DataFileError(f"split file {path} was made for another protocol; {REDRAW}")
    if max(int(v.max(initial=-1)) for v in split.values()) >= num_items:
        raise DataFileError(
            f"split file {path} indexes past the dataset's {num_items} items; {REDRAW}"
        )
    return split
