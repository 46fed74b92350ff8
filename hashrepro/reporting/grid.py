"""The Table 2 grid: cells with resolved configs and fingerprints, and tuning studies."""

from __future__ import annotations

import hashlib
import json
import pydoc
import re
from dataclasses import dataclass, field, fields
from itertools import product
from pathlib import Path
from typing import Any

import yaml

from hashrepro.cli import resolve_config

MODES = ("default", "quick", "paper")
#: run locations and switches that do not change a run's numbers (left out of fingerprints)
LOCATIONS = """trainer.default_root_dir trainer.logger trainer.enable_progress_bar codes_writer
checkpoint.dirpath data.init_args.split_dir data.init_args.feature_dir""".split()


def slug(text: str) -> str:
    """Lower-case, ``-`` separated file-name form of a name (``HashCNN no-both``)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass
class Dataset:
    """A dataset of a paper: its DataModule spec and, per model family, configs and arguments."""

    name: str
    data: dict[str, Any]  # {"class_path", "init_args"}
    configs: dict[str, list[str]] = field(default_factory=dict)
    args: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Method:
    """A row: a deep configuration (family, overrides, search space) or a classic baseline."""

    name: str
    kind: str  # "deep" or "classic"
    family: str = ""
    overrides: list[str] = field(default_factory=list)
    search: dict[str, Any] = field(default_factory=dict)  # CLI key -> [low, high, scale]
    baseline: str = ""  # a class of hashrepro.baselines
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Paper:
    """One paper's block: datasets, methods, code lengths and training settings."""

    key: str
    title: str
    proposed: str
    bits: list[int]
    tune_bits: int
    max_epochs: int
    datasets: list[Dataset]
    methods: list[Method]
    patience: int = 5


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    paper: Paper
    dataset: Dataset
    method: Method
    bits: int
    seed: int

    @property
    def id(self) -> str:
        """``<paper>__<dataset>__<method>__<bits>b__seed<seed>``."""
        names = f"{self.paper.key}__{slug(self.dataset.name)}__{slug(self.method.name)}"
        return f"{names}__{self.bits}b__seed{self.seed}"


@dataclass
class Grid:
    """The expanded grid and its run settings."""

    name: str
    path: Path
    root: Path
    mode: str
    seeds: int
    papers: list[Paper]
    trials: int = 0
    jobs: int = 1
    threads: int | None = None
    ks: list[int] = field(default_factory=lambda: [1, 10, 100, 1000])
    protocol: str = ""

    @property
    def cells(self) -> list[Cell]:
        """Every cell, by paper, dataset, seed, method and bits."""
        runs = product(self.papers, range(self.seeds))
        return [Cell(p, *dmb, s) for p, s in runs for dmb in product(p.datasets, p.methods, p.bits)]

    @property
    def studies(self) -> list[tuple[Paper, Dataset, Method]]:
        """The tuning studies: every deep method with a search space, per paper and dataset."""
        deep = [(p, d, m) for p in self.papers for d, m in product(p.datasets, p.methods)]
        return [(p, d, m) for p, d, m in deep if m.search and self.trials > 0]


def study_id(paper: Paper, dataset: Dataset, method: Method) -> str:
    """``<paper>__<dataset>__<method>``."""
    return f"{paper.key}__{slug(dataset.name)}__{slug(method.name)}"


def _make(cls: type, raw: dict[str, Any], **extra: Any) -> Any:
    """A dataclass from the YAML keys that name its fields."""
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{**{k: v for k, v in raw.items() if k in names}, **extra})
    except TypeError as e:  # a required key is missing
        reason = str(e).split(") ", 1)[-1]
        raise ValueError(f"a {cls.__name__.lower()} entry of the grid: {reason}") from None


def load_grid(path: str | Path, mode: str = "default", seeds: int | None = None) -> Grid:
    """Read a grid YAML; ``mode`` picks the datasets (and, for ``quick``, the quick settings)."""
    path, quick = Path(path), mode == "quick"
    if not path.is_file():
        raise ValueError(f"{path}: no such grid file (a YAML like experiments/table2.yaml)")
    raw = yaml.safe_load(path.read_text())
    if mode not in MODES or not isinstance(raw, dict) or "papers" not in raw:
        raise ValueError(f"{path}: need a grid with 'papers' and a mode in {MODES}, got {mode!r}")
    papers = []
    for p in raw["papers"]:
        p = {**p, **p.get("quick", {})} if quick else p
        datasets = [_make(Dataset, d) for d in p["datasets"].get(mode) or []]
        methods = [_make(Method, m, kind="deep") for m in p.get("deep", [])]
        methods += [_make(Method, m, kind="classic") for m in p.get("classic", [])]
        if not datasets or p["proposed"] not in [m.name for m in methods]:
            raise ValueError(f"{path}: paper {p['key']} needs {mode} datasets and its proposed")
        papers.append(_make(Paper, p, datasets=datasets, methods=methods))
    top = {**raw, **raw.get("quick", {}), "name": f"{raw['name']}-quick"} if quick else raw
    root = (path.parent / raw.get("root", "..")).resolve()
    return _make(
        Grid, top, path=path, root=root, mode=mode, seeds=seeds or top["seeds"], papers=papers
    )


def deep_config(grid: Grid, cell: Cell, tuned: dict[str, Any] | None = None) -> dict[str, Any]:
    """A deep cell's resolved ``hashrepro fit`` configuration (the tuned values applied)."""
    d, m = cell.dataset, cell.method
    if m.family not in d.configs:
        raise ValueError(f"dataset {d.name} has no configs for family {m.family!r} ({m.name})")
    argv = [a for f in d.configs[m.family] + m.overrides for a in ("--config", str(grid.root / f))]
    stop = {"monitor": "val/mAP", "mode": "max", "patience": cell.paper.patience}
    settings = {
        "data": d.data,
        "trainer.max_epochs": cell.paper.max_epochs,
        "evaluator.ks": grid.ks,
    }
    settings["trainer.callbacks+"] = {"class_path": "EarlyStopping", "init_args": stop}
    settings.update({"trainer.num_sanity_val_steps": 0, "trainer.enable_model_summary": False})
    settings.update({"evaluator.ties": "average", "model.init_args.num_bits": cell.bits})
    settings.update(
        {"seed_everything": cell.seed, "data.init_args.seed": cell.seed, **(tuned or {})}
    )
    argv += [str(a) for a in d.args.get(m.family, [])]
    for key, value in settings.items():
        argv += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return resolve_config(argv)


def classic_config(grid: Grid, cell: Cell) -> dict[str, Any]:
    """A classic cell: the baseline with every parameter, its DataModule and the report's K."""
    cls = import_object(cell.method.baseline, "hashrepro.baselines")
    params = cls(cell.bits, seed=cell.seed, **cell.method.kwargs).get_params()
    init_args = {**cell.dataset.data.get("init_args", {}), "seed": cell.seed}
    data = {**cell.dataset.data, "init_args": init_args}
    baseline = {"class_path": f"{cls.__module__}.{cls.__name__}", "init_args": params}
    return {"baseline": baseline, "data": data, "ks": grid.ks}


def fingerprint(config: dict[str, Any]) -> str:
    """A hash of a resolved configuration, without its run locations."""
    config = json.loads(json.dumps(config, default=str))
    for location in LOCATIONS:
        *parents, key = location.split(".")
        node = config
        for k in parents:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(key, None)
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def import_object(name: str, default_module: str) -> Any:
    """``Name`` from ``default_module``, or any ``package.module.Name``."""
    if (found := pydoc.locate(name if "." in name else f"{default_module}.{name}")) is None:
        raise ValueError(f"cannot import {name!r} (nor from {default_module})")
    return found
