"""Entry point of ``make reproduce-table2``: run the grid, then write tables, plots and W&B.

    python -m hashrepro.reporting                      # the full default grid (embedded data)
    python -m hashrepro.reporting --quick              # 1 seed, fewer bits, 1-2 epochs
    python -m hashrepro.reporting --data paper         # CIFAR-10, SVHN, MIRFlickr-25K files
    python -m hashrepro.reporting --data benchmark     # Fashion-MNIST, Emoji (`make data`)
    python -m hashrepro.reporting --full-budget        # the configs' own epochs (much longer)

Outputs go to ``results/table2`` (``results/table2-quick`` with ``--quick``,
``results/table2-full`` with ``--full-budget``): ``cells/`` (one
JSON per finished run), ``table2.{md,csv,json}``, ``plots/*.png``, ``splits/``, ``logs/``,
``wandb/``. Rerunning skips finished cells; ``--report-only`` rebuilds the outputs only.
Exit status: 0 done, 1 a cell failed (the table shows what finished), 2 paper data missing,
130 interrupted (Ctrl-C: one line; the cells in progress have their W&B runs tagged
``interrupted``, finished cells are kept).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from hashrepro.reporting import tracking
from hashrepro.reporting.aggregate import REPO, load_records, write_outputs
from hashrepro.reporting.grid import (
    DATA_MODES,
    Grid,
    MissingDataError,
    check_paper_files,
    load_grid,
)
from hashrepro.reporting.plots import make_plots
from hashrepro.reporting.runner import RunOptions, run_grid

DEFAULT_GRID = "experiments/table2.yaml"


def default_grid() -> Path:
    """``experiments/table2.yaml`` of the working directory, else of the repository."""
    here = Path(DEFAULT_GRID)
    return here if here.exists() else REPO / DEFAULT_GRID


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m hashrepro.reporting",
        description="Run the Table 2 grid (resumable), then write tables, plots and W&B runs.",
    )
    p.add_argument("--grid", type=Path, default=None, help=f"grid YAML (default {DEFAULT_GRID})")
    p.add_argument("--quick", action="store_true", help="the grid's quick section")
    p.add_argument(
        "--full-budget",
        action="store_true",
        help="train every deep cell for its configs' own epochs, not the grid's short budget",
    )
    p.add_argument("--data", choices=DATA_MODES, default="embedded")
    p.add_argument("--out", type=Path, default=None, help="output folder")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (0..N-1)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per run")
    p.add_argument("--jobs", type=int, default=None, help="cells at a time (grid default)")
    p.add_argument("--no-wandb", action="store_true", help="no W&B runs at all")
    p.add_argument("--keep-going", action="store_true", help="record failing cells, go on")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep deep checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true", help="list the cells and exit")
    p.add_argument("--report-only", action="store_true", help="only rebuild the outputs")
    return p


def report(grid: Grid, out: Path, use_wandb: bool) -> str:
    """Tables and plots from the finished cells, and the summary W&B run; the markdown."""
    records, _ = load_records(grid, out)
    plots = make_plots(grid, records, out)
    md, rows = write_outputs(grid, out, plots)
    if tracking.wandb_enabled(use_wandb) and rows:
        columns = list(rows[0])
        table: list[list[Any]] = [[_cell_value(r[c]) for c in columns] for r in rows]
        tracking.summary_run(
            grid.wandb_project,
            out / "wandb",
            group=grid.name,
            name=f"{grid.name}-{budget_name(grid)}-{grid.data_mode}",
            config={"data": grid.data_mode, "quick": grid.quick, "seeds": grid.seeds,
                    "budget": {p.key: p.budget for p in grid.papers}},
            columns=columns,
            rows=table,
            images=plots,
        )  # fmt: skip
    return md


def budget_name(grid: Grid) -> str:
    """``quick``, ``short`` (the grid's table budget) or ``full`` (the configs' epochs)."""
    return "quick" if grid.quick else "full" if grid.full_budget else "short"


def _cell_value(value: Any) -> Any:
    return ", ".join(map(str, value)) if isinstance(value, list) else value


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = parser().parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    grid_path = args.grid or default_grid()
    if args.quick and args.full_budget:
        parser().error("--quick and --full-budget exclude each other")
    grid = load_grid(
        grid_path, quick=args.quick, data=args.data, seeds=args.seeds, full_budget=args.full_budget
    )
    if args.threads is not None:
        grid.torch_threads = args.threads
    suffix = "-quick" if args.quick else "-full" if args.full_budget else ""
    out = args.out or Path("results") / f"table2{suffix}"
    if args.data != "embedded" and not args.report_only:
        try:
            check_paper_files(grid)
        except MissingDataError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if args.dry_run:
        for cell in grid.cells:
            print(cell.cell_id)
        print(f"{len(grid.cells)} cells", file=sys.stderr)
        return 0
    status = 0
    if not args.report_only:
        opts = RunOptions(
            out=out,
            wandb=not args.no_wandb,
            keep_going=args.keep_going,
            keep_checkpoints=args.keep_checkpoints,
            progress=not args.no_progress,
        )
        try:
            summary = run_grid(grid, opts, jobs=args.jobs or grid.jobs)
        except KeyboardInterrupt:
            done = len(load_records(grid, out)[0])
            print(
                f"interrupted: {done} finished cells are kept in {out}/cells; rerun to resume",
                file=sys.stderr,
            )
            return 130
        except RuntimeError as err:
            print(f"error: {err}", file=sys.stderr)
            status = 1
        else:
            status = 1 if summary.failed else 0
            print(
                f"{grid.name}: ran {len(summary.ran)}, skipped {len(summary.skipped)}, failed "
                f"{len(summary.failed)} cells in {summary.wall_s / 60:.1f} min wall, "
                f"{summary.cpu_s / 60:.1f} min CPU",
                file=sys.stderr,
            )
    print(report(grid, out, not args.no_wandb))
    print(f"outputs: {out}/table2.md, table2.csv, table2.json, plots/", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
