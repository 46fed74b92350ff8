"""Tables from the finished cells: mean ± std over seeds, the best of each column marked.

Writes ``table2.md`` (one table per paper and dataset: rows = methods, columns = direction x
bits, best in bold), ``table2.csv`` (long format, one row per method and column, with a
``best`` flag) and ``table2.json`` (the same rows plus protocol, seeds, budgets, package
versions, git commit and timing). Every number is read from ``<out>/cells/*.json``.
"""

from __future__ import annotations

import csv
import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from hashrepro.reporting.grid import Grid
from hashrepro.reporting.runner import cell_path

DIRECTION_ORDER = ("i2i", "i2t", "t2i")
REPO = Path(__file__).resolve().parents[2]  # the repository holding this package
TIE = 1e-12


def load_records(grid: Grid, out: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Finished records of the grid's cells (current fingerprint only) and the missing ids."""
    records, missing = [], []
    for cell in grid.cells:
        try:
            record = json.loads(cell_path(out, cell).read_text())
        except (OSError, ValueError):
            record = None
        if record is None or record.get("fingerprint") != cell.fingerprint(grid.root):
            missing.append(cell.cell_id)
        else:
            records.append(record)
    return records, missing


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def summarize(grid: Grid, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (paper, dataset, direction, method, bits) with mean/std over seeds.

    ``best`` marks the highest mean mAP of each column (paper, dataset, direction, bits); ties
    are all marked. Rows follow the grid's order.
    """
    by_key: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        for direction in r["metrics"]:
            key = (r["paper"], r["dataset"], direction, r["method"], r["bits"])
            by_key.setdefault(key, []).append(r)
    rows = []
    for paper in grid.papers:
        for ds in paper.datasets:
            directions = sorted(
                {k[2] for k in by_key if k[:2] == (paper.key, ds.name)},
                key=lambda d: (DIRECTION_ORDER.index(d) if d in DIRECTION_ORDER else 99, d),
            )
            for direction in directions:
                for method in paper.methods:
                    for bits in paper.bits:
                        group = by_key.get((paper.key, ds.name, direction, method.name, bits))
                        if not group:
                            continue
                        group = sorted(group, key=lambda r: r["seed"])
                        maps = [r["metrics"][direction]["mAP"] for r in group]
                        mean, std = _mean_std(maps)
                        vals = [r["val_mAP"] for r in group if r.get("val_mAP") is not None]
                        p_r2 = [r["metrics"][direction]["precision_at_radius2"] for r in group]
                        collapsed = sum(map(collapsed_codes, group))
                        rows.append(
                            {
                                "paper": paper.key,
                                "dataset": ds.name,
                                "direction": direction,
                                "method": method.name,
                                "kind": method.kind,
                                "bits": bits,
                                "mAP_mean": mean,
                                "mAP_std": std,
                                "n_seeds": len(group),
                                "seeds": [r["seed"] for r in group],
                                "mAP_per_seed": maps,
                                "val_mAP_mean": float(np.mean(vals)) if vals else None,
                                "precision_at_radius2_mean": float(np.mean(p_r2)),
                                "wall_s_mean": float(np.mean([r["wall_s"] for r in group])),
                                "collapsed_seeds": collapsed,
                                "best": False,
                            }
                        )
    columns: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        columns.setdefault(_column(row), []).append(row)
    for col in columns.values():
        top = max(r["mAP_mean"] for r in col)
        for r in col:
            r["best"] = r["mAP_mean"] >= top - TIE
    return rows


def collapsed_codes(record: dict[str, Any]) -> bool:
    """Whether the evaluator flagged a deep cell's test codes as collapsed (any modality)."""
    test = record.get("evaluator_test") or {}
    return any(v >= 1 for k, v in test.items() if k.startswith("test/collapsed_"))


def _column(row: dict[str, Any]) -> tuple:
    return (row["paper"], row["dataset"], row["direction"], row["bits"])


def format_cell(row: dict[str, Any]) -> str:
    """``mean ± std`` of a table cell, bold when best, ``†`` when some seed's codes collapsed."""
    text = f"{row['mAP_mean']:.3f}"
    if row["n_seeds"] > 1:
        text += f" ± {row['mAP_std']:.3f}"
    text = f"**{text}**" if row["best"] else text
    return f"{text} †" if row.get("collapsed_seeds") else text


def markdown_tables(grid: Grid, rows: list[dict[str, Any]]) -> str:
    """One markdown table per paper and dataset (rows = methods, columns = direction x bits)."""
    parts = []
    for paper in grid.papers:
        for ds in paper.datasets:
            mine = [r for r in rows if r["paper"] == paper.key and r["dataset"] == ds.name]
            if not mine:
                continue
            cols = list(dict.fromkeys((r["direction"], r["bits"]) for r in mine))
            cells = {(r["method"], r["direction"], r["bits"]): r for r in mine}
            head = ["Method", "Type"] + [f"{d} {b} bits" for d, b in cols]
            lines = [
                f"### {paper.title}: {ds.name}",
                "",
                "| " + " | ".join(head) + " |",
                "|" + "|".join(["---", "---"] + ["---:"] * len(cols)) + "|",
            ]
            for method in paper.methods:
                row = [
                    format_cell(cells[(method.name, d, b)]) if (method.name, d, b) in cells else "—"
                    for d, b in cols
                ]
                lines.append(f"| {method.name} | {method.kind} | " + " | ".join(row) + " |")
            parts.append("\n".join(lines))
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- provenance
def versions() -> dict[str, str]:
    """Versions of the packages the numbers depend on."""
    out = {"python": platform.python_version()}
    for name in ("torch", "lightning", "numpy", "scipy", "scikit-learn", "hashrepro"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_state(root: Path) -> dict[str, Any]:
    """``git rev-parse HEAD`` of ``root`` ("unknown" outside a repository) and a dirty flag.

    ``root`` is the repository of the ``hashrepro`` package (the code that made the numbers).
    """
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit or "unknown", "dirty": bool(status.strip())}


def cell_commits(records: list[dict[str, Any]]) -> dict[str, int]:
    """Cells per commit that computed them (``+dirty`` with uncommitted changes)."""
    counts: dict[str, int] = {}
    for r in records:
        key = str(r.get("commit", "unknown")) + ("+dirty" if r.get("commit_dirty") else "")
        counts[key] = counts.get(key, 0) + 1
    return counts


def split_check(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Split files used per (dataset, seed); more than one means methods saw different splits."""
    seen: dict[str, set[str]] = {}
    for r in records:
        seen.setdefault(f"{r['dataset']}/seed{r['seed']}", set()).add(str(r.get("split_file")))
    return {k: sorted(v) for k, v in sorted(seen.items())}


def timing(records: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """Summed cell times and the invocations' wall/CPU times."""
    invocations = []
    log = out / "invocations.jsonl"
    if log.exists():
        invocations = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    by_kind: dict[str, dict[str, float]] = {}
    for r in records:
        t = by_kind.setdefault(r["kind"], {"cells": 0, "wall_s": 0.0, "cpu_s": 0.0})
        t["cells"] += 1
        t["wall_s"] += r.get("wall_s", 0.0)
        t["cpu_s"] += r.get("cpu_s", 0.0)
    return {"cells_by_kind": by_kind, "invocations": invocations}


# --------------------------------------------------------------------------- outputs
def write_outputs(
    grid: Grid, out: Path, plots: dict[str, Path] | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Write ``table2.{md,csv,json}`` under ``out``; return the markdown and the rows."""
    records, missing = load_records(grid, out)
    rows = summarize(grid, records)
    git = git_state(REPO)
    info = {
        "grid": grid.name,
        "grid_file": str(grid.path),
        "data": grid.data_mode,
        "quick": grid.quick,
        "full_budget": grid.full_budget,
        "seeds": grid.seeds,
        "protocol": grid.protocol,
        "budget": {p.key: p.budget for p in grid.papers},
        "deep_args": [str(a) for a in grid.raw.get("deep_args") or []],
        "ks": grid.ks,
        "versions": versions(),
        "git_commit": git["commit"],
        "cell_commits": cell_commits(records),
        "git_dirty": git["dirty"],
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cells_total": len(grid.cells),
        "cells_finished": len(records),
        "missing_cells": missing,
        "split_files": split_check(records),
        "timing": timing(records, out),
        "plots": {k: str(p.relative_to(out)) for k, p in (plots or {}).items()},
    }
    (out / "table2.json").write_text(json.dumps({**info, "rows": rows}, indent=1))
    fields = [
        "paper", "dataset", "direction", "method", "kind", "bits", "mAP_mean", "mAP_std",
        "n_seeds", "best", "val_mAP_mean", "precision_at_radius2_mean", "wall_s_mean",
        "collapsed_seeds",
    ]  # fmt: skip
    with (out / "table2.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    md = render_markdown(grid, rows, info)
    (out / "table2.md").write_text(md)
    return md, rows


def render_markdown(grid: Grid, rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    """The full ``table2.md``: tables, protocol, budget, provenance, timing and checks."""
    v = info["versions"]
    kinds = info["timing"]["cells_by_kind"]
    seeds = "seed" if grid.seeds == 1 else "seeds"
    lines = [
        f"# {grid.name}: {'QUICK variant, ' if grid.quick else ''}"
        f"{'FULL budget, ' if grid.full_budget else ''}data={grid.data_mode}",
        "",
        f"Test mAP of Hamming ranking over the whole database, mean ± sample std over "
        f"{grid.seeds} {seeds} (0..{grid.seeds - 1}: model seed = split seed). **Bold**: best "
        "mean of the column. †: the test codes of at least one seed collapsed (every bit "
        "nearly constant; the evaluator's `collapsed` flag), so that mAP means little. Every "
        "number comes from a run in `cells/`.",
        "",
        markdown_tables(grid, rows),
        "",
        "## Protocol",
        "",
        grid.protocol or "(see the grid file)",
        "",
        "Training budget of the deep cells (appended to each method's own configs):",
        "",
    ]
    for paper in grid.papers:
        args = " ".join(paper.budget) or "(the configs' own)"
        lines.append(f"- {paper.title}: `{args}`")
    if info["deep_args"]:
        lines.append(f"- every deep cell: `{' '.join(info['deep_args'])}`")
    lines += [
        "",
        "## Provenance",
        "",
        f"- grid `{info['grid_file']}`, generated {info['generated_at']}",
        f"- report written at git commit `{info['git_commit']}`"
        + (" (uncommitted changes)" if info["git_dirty"] else ""),
        "- cells computed at: " + ", ".join(
            f"`{c[:12]}{'` (uncommitted changes)' if c.endswith('+dirty') else '`'}: {n} cells"
            for c, n in info["cell_commits"].items()
        ),
        "- " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- cells finished: {info['cells_finished']}/{info['cells_total']}",
    ]  # fmt: skip
    for kind, t in kinds.items():
        lines.append(
            f"- {kind} cells: {t['cells']}, summed wall {t['wall_s'] / 60:.1f} min, "
            f"CPU {t['cpu_s'] / 60:.1f} min"
        )
    invocations = info["timing"]["invocations"]
    working = [inv for inv in invocations if inv["ran"] or inv["failed"]][-5:]
    if invocations and invocations[-1] not in working:
        working.append(invocations[-1])  # e.g. a rerun that skipped every cell
    for inv in working:
        lines.append(
            f"- invocation {inv.get('finished_at', '?')}: ran {inv['ran']}, skipped "
            f"{inv['skipped']}, failed {inv['failed']} cells in {inv['wall_s'] / 60:.1f} min wall, "
            f"{inv['cpu_s'] / 60:.1f} min CPU ({inv.get('jobs', 1)} job(s) of "
            f"{inv['torch_threads']} torch thread(s) on {inv.get('cpu_count')} CPUs; load "
            f"average at the end {inv.get('loadavg_end')})"
        )
    splits = info["split_files"]
    shared = all(len(v) == 1 for v in splits.values())
    lines.append(
        "- splits: every method of a dataset and seed used the same split file"
        if shared
        else f"- WARNING: methods used different splits: {splits}"
    )
    if info["missing_cells"]:
        lines += ["", f"Missing cells ({len(info['missing_cells'])}):", ""]
        lines += [f"- {c}" for c in info["missing_cells"]]
    if info["plots"]:
        lines += ["", "## Plots", ""]
        lines += [f"- [{k}]({p})" for k, p in info["plots"].items()]
    return "\n".join(lines) + "\n"
