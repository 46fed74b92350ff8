"""Run one cell (a deep ``hashrepro fit`` or a classic baseline) and write its record."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import torch
import yaml

from hashrepro.callbacks import RetrievalEvaluator
from hashrepro.data.base import from_spec
from hashrepro.reporting.grid import Cell, import_object, slug


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON through a temporary file and ``os.replace`` (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


def place(config: dict, out: Path, rundir: Path, file: Path, logger: Any = False) -> Path:
    """Save a resolved ``fit`` config with its run locations (splits, run folder, logger)."""
    config["trainer"].update(default_root_dir=str(rundir), logger=logger, enable_progress_bar=False)
    config["checkpoint"]["dirpath"] = str(rundir)
    config["data"]["init_args"]["split_dir"] = str(out / "splits")
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(yaml.safe_dump(config, sort_keys=False))
    return file


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """The evaluator's test result as per-direction figures (tie-aware mAP as the headline)."""
    m = result["metrics"]
    return {
        d: {**rep, "mAP": m[f"mAP_{d}_average"], "mAP_index": m[f"mAP_{d}_index"]}
        for d, rep in result["directions"].items()
    }


def run_deep(cell: Cell, config: dict, out: Path, group: str, wandb: bool) -> dict[str, Any]:
    """Fit, select on validation, test; the record's figures from the evaluator."""
    import wandb as wandb_lib

    from hashrepro.cli import main

    rundir = out / "runs" / cell.id
    shutil.rmtree(rundir, ignore_errors=True)  # leftovers of an interrupted attempt
    tags = [cell.paper.key, slug(cell.method.name)]
    log = {"project": "hashrepro", "save_dir": str(out / "wandb"), "group": group, "tags": tags,
           "name": cell.id, "job_type": "cell"}  # fmt: skip
    logger = wandb and {"class_path": "lightning.pytorch.loggers.WandbLogger", "init_args": log}
    (out / "wandb").mkdir(parents=True, exist_ok=True)
    config_file = place(config, out, rundir, out / "cells" / f"{cell.id}.yaml", logger)
    try:
        cli = main(["fit", "--config", str(config_file)])
        test = next(c for c in cli.trainer.callbacks if isinstance(c, RetrievalEvaluator))
        test, ckpt = test.results["test"], cli.trainer.checkpoint_callback
        collapsed = any(v >= 1 for k, v in test["metrics"].items() if "collapsed" in k)
        best = int(re.search(r"epoch=(\d+)", ckpt.best_model_path).group(1))
        figs, val, epochs = figures(test), float(ckpt.best_model_score), cli.trainer.current_epoch
        return {"metrics": figs, "collapsed": collapsed, "best_epoch": best, "val_mAP": val,
                "epochs": epochs}  # fmt: skip
    finally:
        if wandb_lib.run is not None:
            wandb_lib.finish()
        shutil.rmtree(rundir, ignore_errors=True)  # checkpoints are not kept


def run_classic(cell: Cell, config: dict, out: Path, group: str, wandb: bool) -> dict[str, Any]:
    """Fit a baseline on the training split; score query and database codes."""
    dm = from_spec(config["data"], split_dir=str(out / "splits"))
    spec, mods = config["baseline"], dm.modalities
    model = import_object(spec["class_path"], "hashrepro.baselines")(**spec["init_args"])
    train = dm.arrays("train")
    model.fit(*(train[m] for m in mods), train["label"])
    evaluator = RetrievalEvaluator(ks=config["ks"])
    evaluator.reset(dm.directions, torch.device("cpu"))
    for role in ("query", "database"):
        items = dm.arrays(role)
        codes = {m: model.encode(items[m], *([m] if len(mods) == 2 else [])) for m in mods}
        index, position = torch.from_numpy(dm.split[role]), torch.arange(len(items["label"]))
        batch = {"label": torch.from_numpy(items["label"]), "index": index, "position": position}
        evaluator.update({m: torch.from_numpy(c) for m, c in codes.items()}, batch, role)
    return {"metrics": figures(evaluator.compute(report=True)), "collapsed": False}


@contextmanager
def logged(path: Path) -> Iterator[None]:
    """Send stdout, stderr and the log records (Lightning's too) of a task to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f, redirect_stdout(f), redirect_stderr(f):
        loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "")]
        saved = [lg.handlers for lg in loggers]
        for lg in loggers:
            lg.handlers = [logging.StreamHandler(f)]
        try:
            yield
        finally:
            for lg, handlers in zip(loggers, saved, strict=True):
                lg.handlers = handlers


def run_cell(cell: Cell, config: dict, fp: str, out: Path, group: str, wandb: bool, extra: dict):
    """Run a cell (console output in ``<out>/logs/<id>.log``), write its record; return it."""
    t0 = time.perf_counter()
    run = run_deep if cell.method.kind == "deep" else run_classic
    with logged(out / "logs" / f"{cell.id}.log"):
        record = run(cell, config, out, f"{group}-{cell.dataset.name}", wandb)
    # fmt: off
    record.update(
        id=cell.id, paper=cell.paper.key, dataset=cell.dataset.name, method=cell.method.name,
        kind=cell.method.kind, bits=cell.bits, seed=cell.seed, fingerprint=fp, **extra,
        wall_s=round(time.perf_counter() - t0, 2), finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    # fmt: on
    write_json(out / "cells" / f"{cell.id}.json", record)
    return record
