"""Run the cells of a grid, each saved atomically as ``<out>/cells/<id>.json`` when it finishes.

- Deep cells run in this process through :func:`hashrepro.cli.main` (``fit``, then the CLI
  tests the checkpoint chosen on ``val/mAP``); :class:`CodeCapture` keeps that test's codes.
- Classic cells fit a ``hashrepro.baselines`` class on the training split's raw features
  (flattened pixels; the text vector for the text modality), then encode query and database.
- A finished cell is skipped on the next run (unless its fingerprint changed: the grid, a
  config file or the budget), so an interrupted run loses at most the cells in progress.
- Every split comes from ``<out>/splits`` (seed = the cell's seed), shared by all methods.
- Each cell's console output (Lightning, W&B, warnings) goes to ``<out>/logs/<id>.log``; a
  progress bar with an ETA goes to stderr.
- ``jobs > 1`` runs that many cells at a time in worker processes (each still calls the CLI
  in-process); results are written by this process as cells complete, and workers exit if
  this process dies.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from hashrepro.reporting import tracking
from hashrepro.reporting.evaluate import CodeCapture, direction_reports
from hashrepro.reporting.grid import Cell, Grid, import_object, make_datamodule

CAPTURE = "hashrepro.reporting.evaluate.CodeCapture"
QUIET_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


@dataclass
class RunOptions:
    """How to run a grid.

    Attributes:
        out: output folder (cells, splits, runs, logs, W&B).
        wandb: log every cell (and the summary) to W&B, offline unless ``WANDB_MODE=online``.
        keep_going: record a failing cell and go on (default: stop at the first failure).
        keep_checkpoints: keep each deep cell's checkpoints (default: deleted once scored).
        progress: show the progress bar.

    """

    out: Path
    wandb: bool = True
    keep_going: bool = False
    keep_checkpoints: bool = False
    progress: bool = True


@dataclass
class RunSummary:
    """What one invocation did."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0


# --------------------------------------------------------------------------- cell files
def cell_path(out: Path, cell: Cell) -> Path:
    """Where a finished cell is stored."""
    return out / "cells" / f"{cell.cell_id}.json"


def finished(out: Path, cell: Cell, fingerprint: str) -> dict[str, Any] | None:
    """The stored record of a cell if it finished with this fingerprint, else ``None``."""
    path = cell_path(out, cell)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("fingerprint") == fingerprint else None


def write_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace`` (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True))
    os.replace(tmp, path)


# --------------------------------------------------------------------------- shared data cache
def _load_key(dm: Any) -> tuple:
    """What a DataModule's ``load()`` can depend on: its class, root and non-protocol options."""
    skip = {
        "num_query", "num_train", "num_val", "sampling", "train_in_database", "val_database",
        "seed", "batch_size", "eval_batch_size", "num_workers", "split_dir", "download",
    }  # fmt: skip
    simple = (str, int, float, bool, type(None), Path)
    extra = tuple(
        sorted(
            (k, str(v))
            for k, v in vars(dm).items()
            if not k.startswith("_") and k not in skip and isinstance(v, simple)
        )
    )
    features = json.dumps(getattr(dm, "features", None) or {}, sort_keys=True)
    return (type(dm).__module__, type(dm).__qualname__, extra, features)


@contextmanager
def shared_data(max_items: int = 4) -> Iterator[None]:
    """Load each dataset once per process while the grid runs.

    Every cell builds a new DataModule, and some datasets are slow to read (MNIST-5k parses a
    text file: ~5 s per cell). Inside this context :attr:`RetrievalDataModule.data` reuses the
    items already loaded by a DataModule of the same class, root and loading options (never the
    split, which each DataModule draws or reads itself). Results do not change.
    """
    from hashrepro.data.base import RetrievalDataModule

    original = RetrievalDataModule.__dict__["data"]
    cache: dict[tuple, Any] = {}

    def data(self: Any) -> Any:
        if self._data is None:
            key = _load_key(self)
            if key not in cache:
                cache[key] = original.fget(self)
                while len(cache) > max_items:
                    cache.pop(next(iter(cache)))
            self._data = cache[key]
        return self._data

    RetrievalDataModule.data = property(data, doc=original.__doc__)
    try:
        yield
    finally:
        RetrievalDataModule.data = original


# --------------------------------------------------------------------------- output capture
@contextmanager
def captured_output(path: Path) -> Iterator[None]:
    """Send stdout, stderr and Lightning's log records to ``path`` (appending)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f, redirect_stdout(f), redirect_stderr(f):
        handler = logging.StreamHandler(f)
        saved = {}
        for name in QUIET_LOGGERS:
            lg = logging.getLogger(name)
            saved[name] = (lg.handlers[:], lg.propagate)
            lg.handlers, lg.propagate = [handler], False
        try:
            yield
        finally:
            for name, (handlers, propagate) in saved.items():
                lg = logging.getLogger(name)
                lg.handlers, lg.propagate = handlers, propagate


# --------------------------------------------------------------------------- deep cells
def deep_argv(cell: Cell, grid: Grid, opts: RunOptions, rundir: Path) -> list[str]:
    """The ``hashrepro fit`` command line of a deep cell."""
    argv = ["fit"]
    for config in cell.config_files(grid.root):
        argv += ["--config", str(config)]
    argv += ["--data", json.dumps(cell.dataset.data)]  # same class: init_args merge
    argv += cell.dataset.args.get(cell.method.family, [])
    argv += [*cell.deep_args, *cell.method.args]
    argv += [
        "--seed_everything", str(cell.seed),
        "--model.init_args.num_bits", str(cell.bits),
        "--data.init_args.seed", str(cell.seed),
        "--data.init_args.split_dir", str(opts.out / "splits"),
        "--trainer.default_root_dir", str(rundir),
        "--checkpoint.dirpath", str(rundir / "checkpoints"),
        "--trainer.enable_progress_bar", "false",
        "--trainer.callbacks+", json.dumps({"class_path": CAPTURE}),
    ]  # fmt: skip
    if tracking.wandb_enabled(opts.wandb):
        tags = [cell.paper.key, cell.method.slug]  # the CLI adds dataset, model, variant, bits
        spec = tracking.logger_spec(
            grid.wandb_project, opts.out / "wandb", cell.group, cell.cell_id, tags
        )
        argv += ["--trainer.logger", json.dumps(spec)]
    else:
        argv += ["--trainer.logger", "false"]
    return argv


def _epoch_of(path: str | None) -> int | None:
    match = re.search(r"epoch=(\d+)", path or "")
    return int(match.group(1)) if match else None


def run_deep_cell(cell: Cell, grid: Grid, opts: RunOptions) -> dict[str, Any]:
    """Train, select on ``val/mAP``, test and score one deep cell."""
    from hashrepro.cli import main

    rundir = opts.out / "runs" / cell.cell_id
    shutil.rmtree(rundir, ignore_errors=True)  # leftovers of an interrupted attempt
    rundir.mkdir(parents=True)
    argv = deep_argv(cell, grid, opts, rundir)
    exit_code = 1
    try:
        cli = main(argv)
        trainer, dm = cli.trainer, cli.datamodule
        capture = next((cb for cb in trainer.callbacks if isinstance(cb, CodeCapture)), None)
        if capture is None or not capture.codes:
            raise RuntimeError("the run tested nothing: no test codes were captured")
        metrics = direction_reports(capture.codes, capture.labels, dm.directions, grid.ks)
        ckpt = trainer.checkpoint_callback
        score = getattr(ckpt, "best_model_score", None)
        best_path = getattr(ckpt, "best_model_path", None)
        split = dm.split_path()
        record = {
            "metrics": metrics,
            "val_mAP": None if score is None else float(score),
            "best_epoch": _epoch_of(best_path),
            "epochs_trained": int(trainer.current_epoch),
            "evaluator_test": {
                k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")
            },
            "split_file": None if split is None else split.name,
            "argv": argv,
        }
        logger = trainer.logger
        if logger is not None and type(logger).__name__ == "WandbLogger":
            tracking.log_cell_summary(logger.experiment, flat_summary(metrics))
        exit_code = 0
    finally:
        tracking.finish_active_run(exit_code)
        if not opts.keep_checkpoints:
            shutil.rmtree(rundir / "checkpoints", ignore_errors=True)
    return record


# --------------------------------------------------------------------------- classic cells
_FEATURES: dict[tuple, dict[str, Any]] = {}


def raw_features(dm: Any, key: tuple) -> dict[str, Any]:
    """Flattened evaluation-transform features and labels of train, query and database.

    Cached for the last (dataset, seed): every classic method and bit length of a dataset and
    seed reads the same arrays.
    """
    if key in _FEATURES:
        return _FEATURES[key]
    dm.setup("fit")
    out: dict[str, Any] = {}
    for role in ("train", "query", "database"):
        ds = dm.dataset(role)
        ds.transforms = dm.item_transforms("eval")  # no augmentation for the classic features
        parts: dict[str, list[np.ndarray]] = {}
        for batch in DataLoader(ds, batch_size=512, shuffle=False):
            for mod in dm.modalities:
                parts.setdefault(mod, []).append(batch[mod].flatten(1).numpy())
        out[role] = {m: np.concatenate(v).astype(np.float32) for m, v in parts.items()}
        out[f"{role}_labels"] = dm.data.labels[dm.split[role]]
    _FEATURES.clear()
    _FEATURES[key] = out
    return out


def run_classic_cell(cell: Cell, grid: Grid, opts: RunOptions) -> dict[str, Any]:
    """Fit one classic baseline on the training split and score it."""
    from hashrepro.baselines import CrossModalBaseline

    spec = cell.dataset
    dm = make_datamodule(spec, cell.seed, opts.out / "splits", **spec.classic_init_args)
    key = (spec.name, json.dumps(spec.data, sort_keys=True), cell.seed)
    feats = raw_features(dm, key)
    cls = import_object(cell.method.cls, "hashrepro.baselines")
    model = cls(cell.bits, seed=cell.seed, **cell.method.kwargs)
    labels = {"query": feats["query_labels"], "database": feats["database_labels"]}
    if isinstance(model, CrossModalBaseline):
        if set(dm.modalities) != {"image", "text"}:
            raise ValueError(f"{cell.method.name} is cross-modal but {spec.name} is not")
        train = feats["train"]
        model.fit(train["image"], train["text"], feats["train_labels"])
        codes = {r: {m: model.encode(feats[r][m], m) for m in dm.modalities} for r in labels}
    else:
        if len(dm.modalities) != 1:
            raise ValueError(f"{cell.method.name} is single-modal but {spec.name} is cross-modal")
        mod = dm.modalities[0]
        model.fit(feats["train"][mod], feats["train_labels"])
        codes = {r: {mod: model.encode(feats[r][mod])} for r in labels}
    metrics = direction_reports(codes, labels, dm.directions, grid.ks)
    split = dm.split_path()
    if tracking.wandb_enabled(opts.wandb):
        tracking.classic_cell_run(
            grid.wandb_project,
            opts.out / "wandb",
            group=cell.group,
            name=cell.cell_id,
            tags=[cell.paper.key, spec.name, cell.method.slug, "classic", f"{cell.bits}bits"],
            config={"method": cell.method.name, "class": cell.method.cls,
                    "kwargs": cell.method.kwargs, "bits": cell.bits, "seed": cell.seed,
                    "dataset": spec.name},
            summary=flat_summary(metrics),
        )  # fmt: skip
    return {
        "metrics": metrics,
        "val_mAP": None,
        "train_size": int(len(feats["train_labels"])),
        "feature_dims": {m: int(v.shape[1]) for m, v in feats["train"].items()},
        "split_file": None if split is None else split.name,
    }


def flat_summary(metrics: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Scalar figures of a cell for W&B: ``table/mAP_<dir>``, ``table/P@<k>_<dir>``."""
    out = {}
    for direction, m in metrics.items():
        out[f"table/mAP_{direction}"] = m["mAP"]
        out[f"table/P@r2_{direction}"] = m["precision_at_radius2"]
        for k, p in zip(m["precision_at_k"]["k"], m["precision_at_k"]["precision"], strict=True):
            out[f"table/P@{k}_{direction}"] = p
    return out


def run_cell(cell: Cell, grid: Grid, opts: RunOptions) -> dict[str, Any]:
    """Run one cell (deep or classic) and return its record (without the bookkeeping)."""
    if cell.method.kind == "deep":
        return run_deep_cell(cell, grid, opts)
    return run_classic_cell(cell, grid, opts)


# --------------------------------------------------------------------------- the grid
class CellFailed(Exception):
    """A cell raised; the message names the error (the traceback is in the cell's log)."""


def execute_cell(cell: Cell, grid: Grid, opts: RunOptions) -> tuple[dict[str, Any], float, float]:
    """Run one cell with its output in its log; return (record, wall s, CPU s of this process).

    Raises:
        CellFailed: the cell raised (the traceback is appended to its log).

    """
    t0, c0 = time.perf_counter(), time.process_time()
    log = opts.out / "logs" / f"{cell.cell_id}.log"
    if _STOPPING:  # a worker told to stop: run nothing more
        raise CellFailed("not run: the grid was interrupted")
    try:
        with captured_output(log):
            record = run_cell(cell, grid, opts)
    except Exception as err:  # noqa: BLE001  (reported as CellFailed, picklable)
        with log.open("a") as f:
            traceback.print_exc(file=f)
        raise CellFailed(f"{type(err).__name__}: {err} (log: {log})") from None
    return record, time.perf_counter() - t0, time.process_time() - c0


_STOPPING = False  # set in a worker by Ctrl-C (SIGINT): finish the cell in progress, start none


def _stop_on_sigint(signum: int, frame: Any) -> None:
    global _STOPPING
    _STOPPING = True
    raise KeyboardInterrupt


def _init_worker(threads: int | None) -> None:
    """Worker process of ``jobs > 1``: torch threads and a data cache for its lifetime.

    Ctrl-C (SIGINT, from the terminal or sent by the grid process) interrupts the cell in
    progress, whose W&B run is then tagged ``interrupted`` and finished, and no further cell
    starts in this worker.
    """
    signal.signal(signal.SIGINT, _stop_on_sigint)
    if threads:
        torch.set_num_threads(int(threads))
    global _WORKER_CACHE
    _WORKER_CACHE = shared_data()
    _WORKER_CACHE.__enter__()
    parent = os.getppid()

    def watch_parent() -> None:  # exit when the grid process is gone (killed, not stopped)
        while os.getppid() == parent:
            time.sleep(2.0)
        os._exit(1)

    threading.Thread(target=watch_parent, daemon=True).start()


_WORKER_CACHE: Any = None


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (worker processes, W&B services)."""
    try:
        import resource
    except ImportError:  # pragma: no cover  (not on Windows)
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_grid(grid: Grid, opts: RunOptions, jobs: int = 1) -> RunSummary:
    """Run every unfinished cell of ``grid``; see the module docstring.

    Args:
        grid: the expanded grid.
        opts: output folder and switches.
        jobs: cells run at a time. ``1`` runs them in this process; more starts that many
            worker processes (each runs its cells in-process through the CLI, with
            ``grid.torch_threads`` threads); a stop then loses the cells in progress only.

    Raises:
        RuntimeError: a cell failed (unless ``keep_going``); finished cells are kept.

    """
    from hashrepro.reporting.aggregate import REPO, git_state  # (aggregate imports this module)

    opts.out.mkdir(parents=True, exist_ok=True)
    code = git_state(REPO)  # the code that computes this run's cells
    if grid.torch_threads:
        torch.set_num_threads(int(grid.torch_threads))
    summary = RunSummary()
    todo = []
    for cell in grid.cells:
        fingerprint = cell.fingerprint(grid.root)
        if finished(opts.out, cell, fingerprint) is not None:
            summary.skipped.append(cell.cell_id)
        else:
            todo.append((cell, fingerprint))
    stderr = sys.stderr
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    start_children = _children_cpu()
    if opts.progress and summary.skipped:
        print(f"{grid.name}: {len(summary.skipped)} of {len(grid.cells)} cells already done, "
              f"{len(todo)} to run", file=stderr)  # fmt: skip
    # The bar advances by each cell's expected cost (deep cells take far longer than classic
    # ones), so its ETA holds whatever the order.
    cost = expected_costs(opts.out)
    bar = tqdm(
        total=sum(cost[c.method.kind] for c, _ in todo),
        desc=f"{grid.name} ({jobs} job{'s' if jobs > 1 else ''})",
        file=stderr,
        disable=not opts.progress,
        dynamic_ncols=True,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}] {postfix}",
    )
    done = 0

    def finish(cell: Cell, fingerprint: str, result: Any) -> None:
        nonlocal done
        done += 1
        if isinstance(result, CellFailed):
            summary.failed[cell.cell_id] = str(result)
            bar.write(f"cell {cell.cell_id} failed: {result}", file=stderr)
            if not opts.keep_going:
                raise RuntimeError(
                    f"cell {cell.cell_id} failed: {result}; the {len(summary.ran)} cells "
                    "finished in this run are kept"
                )
        else:
            record, wall, cpu = result
            record.update(
                cell_id=cell.cell_id,
                fingerprint=fingerprint,
                paper=cell.paper.key,
                paper_title=cell.paper.title,
                dataset=cell.dataset.name,
                method=cell.method.name,
                kind=cell.method.kind,
                bits=cell.bits,
                seed=cell.seed,
                wall_s=round(wall, 3),
                cpu_s=round(cpu, 3),
                torch_threads=int(grid.torch_threads or torch.get_num_threads()),
                jobs=jobs,
                commit=code["commit"],
                commit_dirty=code["dirty"],
                finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            )
            write_atomic(cell_path(opts.out, cell), record)
            summary.ran.append(cell.cell_id)
        bar.set_postfix_str(f"{done}/{len(todo)} cells, last {cell.cell_id}", refresh=False)
        bar.update(cost[cell.method.kind])

    try:
        with shared_data():
            if jobs <= 1:
                for cell, fingerprint in todo:
                    bar.set_postfix_str(f"{done}/{len(todo)} cells, running {cell.cell_id}")
                    try:
                        result: Any = execute_cell(cell, grid, opts)
                    except CellFailed as err:
                        result = err
                    finish(cell, fingerprint, result)
            elif todo:
                _run_parallel(todo, grid, opts, jobs, finish)
    finally:
        bar.close()
        summary.wall_s = time.perf_counter() - start_wall
        summary.cpu_s = time.process_time() - start_cpu + _children_cpu() - start_children
        _log_invocation(grid, opts, summary, jobs)
    return summary


def _run_parallel(todo: list, grid: Grid, opts: RunOptions, jobs: int, finish: Any) -> None:
    """Run ``todo`` in ``jobs`` worker processes, calling ``finish`` as cells complete."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed, wait

    # Draw every split here first: two workers must never write the same split file.
    firsts: dict[tuple[str, int], Cell] = {}
    for cell, _ in todo:
        firsts.setdefault((cell.dataset.name, cell.seed), cell)
    for cell in firsts.values():
        _ = make_datamodule(cell.dataset, cell.seed, opts.out / "splits").split
    pool = ProcessPoolExecutor(
        jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(grid.torch_threads,),
    )
    futures: dict[Any, tuple[Cell, str]] = {}
    try:
        futures = {pool.submit(execute_cell, c, grid, opts): (c, fp) for c, fp in todo}
        for future in as_completed(futures):
            cell, fingerprint = futures[future]
            try:
                result: Any = future.result()
            except CellFailed as err:
                result = err
            finish(cell, fingerprint, result)
    except BaseException as err:
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        if isinstance(err, KeyboardInterrupt):  # let the workers close their cells' W&B runs
            for process in processes:
                if process.is_alive() and process.pid is not None:
                    os.kill(process.pid, signal.SIGINT)
            running = [f for f in futures if f.running()]
            wait(running, timeout=60)
        for process in processes:
            process.terminate()  # stop what is left (cells in progress are not recorded)
        raise
    pool.shutdown(wait=True)


def expected_costs(out: Path) -> dict[str, float]:
    """Mean wall seconds per cell kind of the cells already in ``out`` (else a guess)."""
    walls: dict[str, list[float]] = {}
    for path in (out / "cells").glob("*.json"):
        try:
            record = json.loads(path.read_text())
            walls.setdefault(record["kind"], []).append(float(record["wall_s"]))
        except (OSError, ValueError, KeyError):
            continue
    guess = {"deep": 15.0, "classic": 1.0}
    return {k: float(np.mean(walls[k])) if walls.get(k) else v for k, v in guess.items()}


def _log_invocation(grid: Grid, opts: RunOptions, summary: RunSummary, jobs: int) -> None:
    """Append this invocation's timing to ``<out>/invocations.jsonl``."""
    line = {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "grid": str(grid.path),
        "data": grid.data_mode,
        "quick": grid.quick,
        "cells": len(grid.cells),
        "ran": len(summary.ran),
        "skipped": len(summary.skipped),
        "failed": len(summary.failed),
        "wall_s": round(summary.wall_s, 1),
        "cpu_s": round(summary.cpu_s, 1),
        "torch_threads": int(grid.torch_threads or torch.get_num_threads()),
        "jobs": jobs,
        "cpu_count": os.cpu_count(),
        "loadavg_end": [round(x, 2) for x in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
    }
    opts.out.mkdir(parents=True, exist_ok=True)
    with (opts.out / "invocations.jsonl").open("a") as f:
        f.write(json.dumps(line) + "\n")
