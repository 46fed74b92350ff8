"""Table 2 (see README.md); exit status 0 done, 1 a task failed, 2 bad input, 130 interrupted."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from hashrepro.data.base import unreadable_datasets
from hashrepro.reporting import launch
from hashrepro.reporting.aggregate import REPO, provenance, write_outputs
from hashrepro.reporting.grid import (
    Grid,
    classic_config,
    deep_config,
    fingerprint,
    load_grid,
    study_id,
)
from hashrepro.reporting.plots import make_plots
from hashrepro.reporting.runner import run_cell
from hashrepro.reporting.tune import tune, tuned


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m hashrepro.reporting", description=__doc__)
    add = p.add_argument
    add("--grid", type=Path, default=REPO / "experiments/table2.yaml")
    add("--quick", action="store_true", help="MNIST-5k and Multiple Features, 1 seed, no tuning")
    add("--data", choices=("default", "paper"), default="default")
    add("--out", type=Path, help="output folder (default results/table2[-quick|-paper])")
    add("--seeds", type=int, help="seeds 0..N-1 (the grid's 3; 5 for more power)")
    add("--trials", type=int, help="tuning trials per study (the grid's default)")
    add("--jobs", type=int, help="tasks at a time on this machine")
    add("--threads", type=int, help="torch threads per task")
    add("--launcher", choices=("local", "slurm"), default="local")
    add("--partition", help="SLURM partition")
    add("--gpus", type=int, default=0, help="GPUs per SLURM job")
    add("--cpus", type=int, default=4, help="CPUs per SLURM job")
    add("--time", type=int, default=120, help="SLURM time limit per job (minutes)")
    add("--dry-run", action="store_true", help="list the studies and cells (SLURM: their jobs)")
    add("--report-only", action="store_true", help="only rebuild the outputs")
    add("--no-wandb", action="store_true", help="no W&B runs")
    add("--no-progress", action="store_true", help="no progress bar")
    return p


def cell_config(grid: Grid, cell: Any, out: Path) -> dict[str, Any] | None:
    """A cell's resolved configuration; ``None`` for a deep cell whose study is still to run."""
    if cell.method.kind == "classic":
        return classic_config(grid, cell)
    values = tuned(grid, out, cell.paper, cell.dataset, cell.method)
    return None if values is None else deep_config(grid, cell, values)


def record(out: Path, cell: Any, config: dict[str, Any] | None) -> dict[str, Any] | None:
    """The cell's record if it was run with this configuration."""
    try:
        found = json.loads((out / "cells" / f"{cell.id}.json").read_text())
    except (OSError, ValueError):
        return None
    return found if config is not None and found.get("fingerprint") == fingerprint(config) else None


def run(grid: Grid, out: Path, runner: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Studies and classic cells, then deep cells; ``{ran, skipped, failed}``."""
    summary: dict[str, Any] = {"ran": 0, "skipped": 0, "failed": {}}
    extra = {k: v for k, v in provenance().items() if k in ("commit", "dirty")}
    bar_format = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}] {postfix}"
    bar = tqdm(desc=grid.name, disable=args.no_progress, file=sys.stderr, bar_format=bar_format)
    units = {}  # a study costs about `trials` deep cells

    def done(name: str, result: Any) -> None:  # a failure is reported, the grid goes on
        bar.update(units[name])
        if isinstance(result, BaseException):
            summary["failed"][name] = f"{type(result).__name__}: {result}"
            bar.write(f"{name} failed: {summary['failed'][name]} (see its log)", file=sys.stderr)
        summary["ran"] += not isinstance(result, BaseException)
        bar.set_postfix_str(f"{summary['ran']} done, last {name}", refresh=False)

    def cells(kind: str) -> list[launch.Task]:
        tasks = []
        for cell in (c for c in grid.cells if c.method.kind == kind):
            config = cell_config(grid, cell, out)
            if config is None:
                summary["failed"][cell.id] = "not run: its tuning study has no result"
            if config is None or record(out, cell, config) is not None:
                summary["skipped"] += config is not None
                continue
            units[cell.id] = 1
            args_ = (cell, config, fingerprint(config), out, grid.name, not args.no_wandb, extra)
            tasks.append((cell.id, run_cell, args_))
        return tasks

    studies = [s for s in grid.studies if tuned(grid, out, *s) is None]
    first = [(f"tune {study_id(*s)}", tune, (grid, *s, out)) for s in studies]
    units.update({name: grid.trials for name, _, _ in first})
    first += cells("classic")
    deep = sum(c.method.kind == "deep" for c in grid.cells)
    bar.total = sum(units.values()) + deep
    try:
        runner.run(first, done)
        second = cells("deep")  # with their tuned values
        bar.total -= deep - len(second)
        runner.run(second, done)
    finally:
        bar.close()
    return summary


def report(grid: Grid, out: Path, use_wandb: bool) -> str:
    """Tables, plots and the W&B summary run from the finished records; the markdown."""
    found = {c.id: record(out, c, cell_config(grid, c, out)) for c in grid.cells}
    records = {k: v for k, v in found.items() if v is not None}
    log = out / "invocations.jsonl"
    commits = sorted({r["commit"][:12] + "+dirty" * bool(r["dirty"]) for r in records.values()})
    info = dict(grid=str(grid.path), mode=grid.mode, seeds=grid.seeds, trials=grid.trials)
    info.update(protocol=grid.protocol, **provenance(), cell_commits=commits)
    info.update(cells_finished=f"{len(records)}/{len(found)}")
    info.update(missing_cells=[k for k, v in found.items() if v is None])
    info.update(tuning=[json.loads(p.read_text()) for p in sorted(out.glob("tuning/*.json"))])
    info.update(invocations=log.read_text().splitlines() if log.exists() else [])
    plots = make_plots(grid, list(records.values()), out) if records else {}
    md, rows = write_outputs(grid, out, records, info)
    if use_wandb and os.environ.get("WANDB_MODE") != "disabled" and rows:
        import wandb

        mode = "online" if os.environ.get("WANDB_MODE") == "online" else "offline"
        name, folder = f"{grid.name}-summary", str(out / "wandb")
        run = wandb.init(project="hashrepro", dir=folder, mode=mode, name=name, job_type="table")
        columns = [c for c in rows[0] if not isinstance(rows[0][c], list)]
        table = wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])
        run.log({"table2": table, **{f"plots/{k}": wandb.Image(str(p)) for k, p in plots.items()}})
        run.finish()
    return md


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status."""
    args = parser().parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    mode = "quick" if args.quick else args.data
    try:
        grid = load_grid(args.grid, mode, seeds=args.seeds)
    except (OSError, ValueError, yaml.YAMLError) as e:
        parser().error(str(e))  # one line, exit status 2
    grid.trials = grid.trials if args.trials is None else args.trials
    grid.jobs, grid.threads = args.jobs or grid.jobs, args.threads or grid.threads
    out = args.out or Path("results") / ("table2" if mode == "default" else f"table2-{mode}")
    runner: Any = launch.Local(grid.jobs, grid.threads, args.dry_run)
    if args.launcher == "slurm":
        slurm = (args.partition, args.gpus, args.cpus, args.time, args.dry_run)
        runner = launch.Slurm(out / "slurm", *slurm)
    if args.dry_run:
        tasks = [(f"tune {study_id(*s)}", tune, ()) for s in grid.studies]
        runner.run(tasks + [(c.id, run_cell, ()) for c in grid.cells], print)
        print(f"{len(grid.studies)} tuning studies, {len(grid.cells)} cells", file=sys.stderr)
        return 0
    status, t0 = 0, time.time()  # 1 when a task failed
    if not args.report_only:
        problems = unreadable_datasets({d.name: d.data for p in grid.papers for d in p.datasets})
        if problems:
            problems.insert(0, f"error: {len(problems)} dataset(s) cannot be read; nothing was run")
            print("\n".join(problems), file=sys.stderr)
            return 2
        out.mkdir(parents=True, exist_ok=True)
        try:
            summary = run(grid, out, runner, args)
        except KeyboardInterrupt:
            kept = f"{len(list(out.glob('cells/*.json')))} finished cells are kept in {out}/cells"
            print(f"interrupted: {kept}; rerun to resume", file=sys.stderr)
            return 130
        line = {"finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "jobs": grid.jobs, **summary}
        line.update(wall_min=round((time.time() - t0) / 60, 1), threads=grid.threads)
        with (out / "invocations.jsonl").open("a") as f:
            f.write(json.dumps(line) + "\n")
        status = int(bool(summary["failed"]))
    print(report(grid, out, not args.no_wandb))
    print(f"outputs: {out}/table2.md, table2.csv, table2.json, plots/", file=sys.stderr)
    return status
