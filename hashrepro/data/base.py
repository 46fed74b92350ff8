"""The one DataModule layer shared by single-modal and cross-modal retrieval data.

A concrete dataset only says how to load its items (:meth:`RetrievalDataModule.load`, reading
through :mod:`hashrepro.data.formats`) and which protocol it uses by default. This base draws
the retrieval protocol from a seed and saves it (:mod:`hashrepro.data.splits`), and serves dict
batches:

- ``image``: (B, C, H, W) float, ``text``: (B, D) float (cross-modal data only),
- ``label``: (B, C) float multi-hot, ``index``: (B,) long item index into the whole dataset.

The protocol has four index sets. ``query`` holds the test queries and ``database`` the items they
search; ``train`` is drawn from the database by default (``train_in_database``). The validation
queries are drawn from items that are neither query nor train (or carved out of train when nothing
else is left), and they search the training set, so model selection never sees the test queries.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from hashrepro.data.splits import SPLITS, make_split, read_split, split_path, write_split
from hashrepro.models.common import is_multilabel

MODALITY_ABBREV = {"image": "i", "text": "t"}


@dataclass
class RetrievalData:
    """Everything a dataset loads: items per modality, labels and an optional fixed partition.

    Attributes:
        sources: modality name -> indexable items (tensor, array or lazy reader) of length N.
        labels: (N, C) float32 multi-hot labels.
        partition: optional predefined index sets (``query``, ``database``, ``train``), for
            datasets that ship their own split (e.g. CIFAR-10's test batch as queries).

    """

    sources: dict[str, Sequence[Any]]
    labels: np.ndarray
    partition: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.labels.ndim != 2:
            raise ValueError(f"labels must be (N, C) multi-hot, got shape {self.labels.shape}")
        n = len(self.labels)
        for name, src in self.sources.items():
            if len(src) != n:
                raise ValueError(f"modality {name!r} has {len(src)} items but there are {n} labels")


def one_hot(class_ids: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Turn (N,) integer class ids into (N, C) float32 one-hot labels."""
    class_ids = np.asarray(class_ids).astype(np.int64).ravel()
    c = int(class_ids.max()) + 1 if num_classes is None else num_classes
    out = np.zeros((len(class_ids), c), dtype=np.float32)
    out[np.arange(len(class_ids)), class_ids] = 1.0
    return out


class RetrievalDataset(Dataset):
    """Items of one split as dict samples.

    One entry per modality, ``label``, ``index`` (the item's index in the dataset) and
    ``position`` (its place in the split).
    """

    def __init__(
        self,
        data: RetrievalData,
        indices: np.ndarray,
        transforms: dict[str, Callable[[Any], torch.Tensor]],
    ) -> None:
        self.data = data
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transforms = transforms
        self.labels = torch.from_numpy(np.ascontiguousarray(data.labels, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        j = int(self.indices[i])
        item: dict[str, Any] = {
            m: self.transforms.get(m, as_float_tensor)(src[j])
            for m, src in self.data.sources.items()
        }
        item["label"] = self.labels[j]
        item["index"] = j
        item["position"] = i  # the item's place in its split (the database order)
        return item


def as_float_tensor(x: Any) -> torch.Tensor:
    """Default transform: any array-like item as a float32 tensor."""
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


#: Datasets loaded in this process, by :meth:`RetrievalDataModule.cache_key` (a grid of runs in
#: one worker process builds many DataModules of the same data); the oldest are dropped.
_LOADED: dict[tuple, RetrievalData] = {}
LOAD_CACHE_SIZE = 4


class RetrievalDataModule(pl.LightningDataModule):
    """Base DataModule: seeded, saved retrieval protocol and dict batches for any modalities.

    Subclasses set ``name``, ``modalities``, ``protocol`` (the name of the protocol they
    follow) and ``default_sizes`` (its query, training and validation counts), and implement
    :meth:`load`.

    Args:
        root: directory holding the dataset files (torchvision's convention); unused by the
            embedded datasets.
        num_query: test queries; ``None`` takes the protocol's default size.
        num_train: training items; ``None`` takes the default.
        num_val: validation queries; ``None`` takes the default.
        sampling: ``per_class`` draws equal counts per class, ``random`` draws uniformly.
        train_in_database: whether training items are part of the database (the field's usual
            protocol) or held out of it.
        val_database: what the validation queries search: the training items (``train``, cheap)
            or the whole database minus the validation queries (``database``).
        seed: seed of the split. The split is saved under ``split_dir`` and reused.
        batch_size: training batch size.
        eval_batch_size: batch size for encoding queries and database.
        num_workers: DataLoader workers.
        split_dir: where split files live; ``None`` keeps splits in memory only.
        download: let datasets that can download themselves do so (needs internet).
        predict_split: the split ``predict`` encodes (``hashrepro predict`` writes its codes).
        database_order: ``shuffled`` (default) puts the database in an order drawn from the
            seed and saved with the split, so that ranking tied items in database order
            (``ties="index"``) carries no class order; ``index`` keeps dataset order.
        features: modality -> frozen encoder (``{class_path, init_args}``, e.g.
            ``EfficientNetLite0``): serve that modality as the encoder's features, computed
            once and cached on disk (see :mod:`hashrepro.data.features`). The split is unchanged.
        feature_dir: folder of the feature cache.

    """

    name: str = "dataset"
    modalities: tuple[str, ...] = ("image",)
    protocol: str = "default"
    default_sizes: dict[str, int] = {"num_query": 100, "num_train": 500, "num_val": 50}
    #: keep loaded data in this process for other DataModules of the same data (only for
    #: classes whose ``load`` sets nothing on the instance besides what it returns)
    cache_loads: bool = False

    def __init__(
        self,
        root: str | None = None,
        num_query: int | None = None,
        num_train: int | None = None,
        num_val: int | None = None,
        sampling: Literal["per_class", "random"] = "per_class",
        train_in_database: bool = True,
        val_database: Literal["train", "database"] = "train",
        seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        split_dir: str | None = "results/splits",
        download: bool = False,
        predict_split: Literal["query", "database", "train", "val_query", "val_database"] = (
            "database"
        ),
        database_order: Literal["shuffled", "index"] = "shuffled",
        features: dict[str, dict[str, Any]] | None = None,
        feature_dir: str = "data/features",
    ) -> None:
        super().__init__()
        if sampling not in ("per_class", "random"):
            raise ValueError(f"sampling must be 'per_class' or 'random', got {sampling!r}")
        if val_database not in ("train", "database"):
            raise ValueError(f"val_database must be 'train' or 'database', got {val_database!r}")
        self.root = Path(root).expanduser() if root is not None else None
        self.num_query = self.default_sizes["num_query"] if num_query is None else num_query
        self.num_train = self.default_sizes["num_train"] if num_train is None else num_train
        self.num_val = self.default_sizes["num_val"] if num_val is None else num_val
        self.sampling = sampling
        self.train_in_database = train_in_database
        self.val_database = val_database
        self.seed = seed
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.split_dir = Path(split_dir) if split_dir is not None else None
        self.download = download
        if predict_split not in SPLITS:
            raise ValueError(f"predict_split must be one of {SPLITS}, got {predict_split!r}")
        self.predict_split = predict_split
        if database_order not in ("shuffled", "index"):
            raise ValueError(
                f"database_order must be 'shuffled' or 'index', got {database_order!r}"
            )
        self.database_order = database_order
        self.features = dict(features or {})
        self.feature_dir = feature_dir
        self._data: RetrievalData | None = None
        self._split: dict[str, np.ndarray] | None = None

    # ----------------------------------------------------------------- what subclasses provide
    def load(self) -> RetrievalData:
        """Load the dataset's items and labels. Raise a clear error for missing files."""
        raise NotImplementedError

    def transforms(self, stage: Literal["train", "eval"]) -> dict[str, Callable[[Any], Any]]:
        """Per-modality transforms for training or evaluation items (default: to float)."""
        return {}

    # ----------------------------------------------------------------- data and protocol
    @property
    def data(self) -> RetrievalData:
        """The loaded dataset (loaded on first access; downloaded first with ``download``)."""
        if self._data is None:
            key = self.cache_key() if self.cache_loads else None
            if key in _LOADED:
                self._data = _LOADED[key]
                return self._data
            if self.download:
                self.prepare_data()  # before anything reads the files (the CLI's links do)
            data = self.load()
            if self.features:  # the hook: modalities served as cached encoder features
                from hashrepro.data.features import encode_sources

                data = encode_sources(self, data)
            self._data = data
            if key is None:
                return data
            _LOADED[key] = data
            while len(_LOADED) > LOAD_CACHE_SIZE:
                _LOADED.pop(next(iter(_LOADED)))
        return self._data

    def cache_key(self) -> tuple:
        """What :meth:`load` depends on, for the in-process cache of ``cache_loads`` classes.

        The class and every plain setting that is not the protocol's, a loader's or a location
        of derived files; DataModules equal under it share one load.
        """
        skip = {
            "num_query", "num_train", "num_val", "sampling", "train_in_database", "val_database",
            "seed", "batch_size", "eval_batch_size", "num_workers", "split_dir", "download",
            "predict_split", "database_order", "feature_dir", "prepare_data_per_node",
        }  # fmt: skip
        plain = (str, int, float, bool, type(None), Path, dict, list, tuple)
        settings = sorted(
            (k, repr(v))
            for k, v in vars(self).items()
            if not k.startswith("_") and k not in skip and isinstance(v, plain)
        )
        return (type(self).__module__, type(self).__qualname__, tuple(settings))

    @property
    def num_classes(self) -> int:
        """Number of label classes (linked to the model's ``num_classes`` by the CLI)."""
        return int(self.data.labels.shape[1])

    @property
    def num_items(self) -> int:
        """Number of items of the whole dataset, the largest item index + 1 (linked likewise)."""
        return len(self.data.labels)

    @property
    def train_size(self) -> int:
        """Number of training items of the drawn split (linked to DPSH's ``num_train``)."""
        return len(self.split["train"])

    @property
    def multilabel(self) -> bool:
        """Whether some item carries other than exactly one label (linked likewise)."""
        return is_multilabel(self.data.labels)

    @property
    def directions(self) -> list[tuple[str, str, str]]:
        """Retrieval directions as (name, query modality, database modality).

        ``i2i`` for single-modal data; ``i2t`` and ``t2i`` between two modalities.
        """
        mods = self.modalities
        if len(mods) == 1:
            pairs = [(mods[0], mods[0])]
        else:
            pairs = [(q, d) for q in mods for d in mods if q != d]
        return [
            (MODALITY_ABBREV.get(q, q[0]) + "2" + MODALITY_ABBREV.get(d, d[0]), q, d)
            for q, d in pairs
        ]

    def split_settings(self) -> dict[str, Any]:
        """The settings that determine the split (saved with it, and part of its file name)."""
        return {
            "dataset": self.name,
            "protocol": self.protocol,
            "num_items": self.num_items,
            "num_query": self.num_query,
            "num_train": self.num_train,
            "num_val": self.num_val,
            "sampling": self.sampling,
            "train_in_database": self.train_in_database,
            "val_database": self.val_database,
            "seed": self.seed,
            "database_order": self.database_order,
        }

    def split_path(self) -> Path | None:
        """Path of the saved split, keyed by dataset, protocol and seed."""
        return None if self.split_dir is None else split_path(self.split_dir, self.split_settings())

    @property
    def split(self) -> dict[str, np.ndarray]:
        """Index sets ``query``, ``database``, ``train``, ``val_query``, ``val_database``."""
        if self._split is None:
            path = self.split_path()
            if path is not None and path.exists():
                self._split = read_split(path, self.split_settings(), self.num_items)
            else:
                self._split = self.make_split()
                if path is not None:
                    write_split(path, self._split, self.split_settings())
        return self._split

    def make_split(self) -> dict[str, np.ndarray]:
        """Draw the protocol's index sets from ``seed``."""
        return make_split(
            self.data.labels,
            self.data.partition,
            self.num_query,
            self.num_train,
            self.num_val,
            per_class=self.sampling == "per_class",
            train_in_database=self.train_in_database,
            val_database=self.val_database,
            seed=self.seed,
            dataset=self.name,
            shuffle_database=self.database_order == "shuffled",
        )

    # ----------------------------------------------------------------- Lightning hooks
    def prepare_data(self) -> None:
        """Download where allowed; subclasses with downloadable data override it."""

    def setup(self, stage: str | None = None) -> None:
        """Load the data and draw (or reuse) the split."""
        _ = self.split

    def item_transforms(self, stage: Literal["train", "eval"]) -> dict[str, Callable[[Any], Any]]:
        """:meth:`transforms` minus the modalities served as encoder ``features``."""
        return {m: t for m, t in self.transforms(stage).items() if m not in self.features}

    def arrays(self, split: str) -> dict[str, np.ndarray]:
        """Every item of ``split`` under the evaluation transforms, as flat arrays.

        Returns:
            ``{modality: (N, D) float32}`` (images flattened; encoder features as they are) and
            ``"label"``: (N, C) float32, in the split's order. What classic baselines fit on.
        """
        dataset = RetrievalDataset(self.data, self.split[split], self.item_transforms("eval"))
        parts: dict[str, list[np.ndarray]] = {}
        for batch in DataLoader(dataset, batch_size=512, shuffle=False):
            for m in (*self.modalities, "label"):
                parts.setdefault(m, []).append(batch[m].flatten(1).numpy())
        return {m: np.concatenate(v).astype(np.float32) for m, v in parts.items()}

    def dataset(self, split: str) -> RetrievalDataset:
        """The dataset of one split (``train`` uses the training transforms)."""
        stage = "train" if split == "train" else "eval"
        return RetrievalDataset(self.data, self.split[split], self.item_transforms(stage))

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        bs = self.batch_size if split == "train" else self.eval_batch_size
        return DataLoader(
            self.dataset(split),
            batch_size=bs,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> list[DataLoader]:
        """Validation queries (loader 0) and the set they search (loader 1)."""
        return [self._loader("val_query", False), self._loader("val_database", False)]

    def test_dataloader(self) -> list[DataLoader]:
        """Test queries (loader 0) and the database (loader 1)."""
        return [self._loader("query", False), self._loader("database", False)]

    def predict_dataloader(self) -> DataLoader:
        """The items of ``predict_split`` in split order (``hashrepro predict``)."""
        return self._loader(self.predict_split, False)

    def describe(self) -> str:
        """One line with the split sizes, for logs."""
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.split.items())
        return f"{self.name} ({self.protocol}, seed {self.seed}): {sizes}"


def from_spec(spec: dict[str, Any], **overrides: Any) -> RetrievalDataModule:
    """A DataModule from ``{"class_path", "init_args"}`` (short names: :mod:`hashrepro.data`)."""
    module, _, name = str(spec["class_path"]).rpartition(".")
    cls = getattr(importlib.import_module(module or "hashrepro.data"), name, None)
    if cls is None:
        raise ValueError(f"no DataModule {spec['class_path']!r} in {module or 'hashrepro.data'}")
    return cls(**{**(spec.get("init_args") or {}), **overrides})


def unreadable_datasets(specs: dict[str, dict[str, Any]]) -> list[str]:
    """Load each named dataset spec once; one line per dataset with missing or corrupt files."""
    from hashrepro.data.formats import DataFileError

    problems = []
    for name, spec in specs.items():
        try:
            _ = from_spec(spec, split_dir=None).data
        except FileNotFoundError as err:
            problems.append(f"- {name} (missing files): {err}")
        except DataFileError as err:
            problems.append(f"- {name} (corrupt or inconsistent file): {err}")
    return problems
