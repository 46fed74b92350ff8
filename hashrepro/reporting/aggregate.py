"""Tables from the cell records: mean ± std over seeds, best marks, paired significance."""

from __future__ import annotations

import csv
import json
import platform
import subprocess
from importlib import metadata
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from hashrepro.reporting.grid import Grid
from hashrepro.retrieval.significance import holm, paired_bootstrap

REPO = Path(__file__).resolve().parents[2]  # the repository holding this package
ALPHA = 0.05
FIELDS = """paper dataset direction method kind bits n_seeds mAP_mean mAP_std mAP_index_mean
mAP_index_std val_mAP_mean epochs collapsed_seeds diff_vs_proposed p_vs_proposed significant
best""".split()


LEGEND = (
    "Test mAP of Hamming ranking over the whole database, **tie-aware** (the expected AP over "
    "random orders of items at equal distance), mean ± sample std over seeds (seed = split seed "
    "= model seed). **Bold**: best mean of the column. ▲ / ▼: significantly above / below the "
    "paper's proposed model (paired bootstrap of per-query AP, Holm-adjusted p < 0.05 within the "
    "table); no mark: no significant difference. †: the codes of some seed collapsed (every bit "
    "nearly constant). Epochs used: mean (min–max), with early stopping on validation mAP."
)


def _stats(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarize(grid: Grid, records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (paper, dataset, direction, method, bits), in the grid's order."""
    rows = []
    for paper in grid.papers:
        for ds in paper.datasets:
            mine = [
                r for r in records.values() if (r["paper"], r["dataset"]) == (paper.key, ds.name)
            ]
            block = []
            directions = sorted({d for r in mine for d in r["metrics"]})
            for direction, method, bits in product(directions, paper.methods, paper.bits):
                runs = [r for r in mine if r["bits"] == bits]
                group = sorted(
                    (r for r in runs if r["method"] == method.name), key=lambda r: r["seed"]
                )
                proposed = {r["seed"]: r for r in runs if r["method"] == paper.proposed}
                if group:
                    block.append(_row(paper, ds.name, direction, method, group, proposed))
            tested = [r for r in block if r["p_vs_proposed"] is not None]
            for r, p in zip(tested, holm([r["p_vs_proposed"] for r in tested]), strict=True):
                r["p_vs_proposed"], r["significant"] = p, p < ALPHA
            for r in block:
                r["best"] = r["mAP_mean"] >= max(c["mAP_mean"] for c in block if _col(c) == _col(r))
            rows += block
    return rows


def _col(row: dict[str, Any]) -> tuple:
    return row["direction"], row["bits"]


def _row(paper: Any, dataset: str, direction: str, method: Any, group: list, proposed: dict):
    figures = [r["metrics"][direction] for r in group]
    mean, std = _stats([f["mAP"] for f in figures])
    index_mean, index_std = _stats([f["mAP_index"] for f in figures])
    vals = [r["val_mAP"] for r in group if r.get("val_mAP") is not None]
    # fmt: off
    row = {
        "paper": paper.key, "dataset": dataset, "direction": direction, "method": method.name,
        "kind": method.kind, "bits": group[0]["bits"], "n_seeds": len(group),
        "seeds": [r["seed"] for r in group], "mAP_mean": mean, "mAP_std": std,
        "mAP_per_seed": [f["mAP"] for f in figures], "mAP_index_mean": index_mean,
        "mAP_index_std": index_std, "val_mAP_mean": float(np.mean(vals)) if vals else None,
        "epochs": [r["epochs"] for r in group if r.get("epochs") is not None],
        "collapsed_seeds": sum(bool(r.get("collapsed")) for r in group),
        "diff_vs_proposed": None, "p_vs_proposed": None, "significant": False,
    }
    # fmt: on
    pairs = [(r, proposed[r["seed"]]) for r in group if r["seed"] in proposed]
    if method.name != paper.proposed and pairs:
        row["diff_vs_proposed"], row["p_vs_proposed"] = paired_bootstrap(
            [np.asarray(r["metrics"][direction]["ap"]) for r, _ in pairs],
            [np.asarray(q["metrics"][direction]["ap"]) for _, q in pairs],
        )
    return row


def format_cell(row: dict[str, Any]) -> str:
    """``mean ± std``; bold when best; ▲/▼ significantly above/below the proposed model; †."""
    text = f"{row['mAP_mean']:.3f}" + (f" ± {row['mAP_std']:.3f}" if row["n_seeds"] > 1 else "")
    text = f"**{text}**" if row["best"] else text
    if row["significant"]:
        text += " ▲" if row["diff_vs_proposed"] > 0 else " ▼"
    return f"{text} †" if row.get("collapsed_seeds") else text


def markdown_tables(grid: Grid, rows: list[dict[str, Any]]) -> str:
    """Per paper and dataset: mAP (methods x direction and bits) and the epochs used."""
    parts = []
    for paper in grid.papers:
        for ds in paper.datasets:
            mine = [r for r in rows if (r["paper"], r["dataset"]) == (paper.key, ds.name)]
            cols = list(dict.fromkeys(_col(r) for r in mine))
            cells = {(r["method"], *_col(r)): r for r in mine}
            head = ["Method"] + [f"{d} {b} bits" for d, b in cols] + ["epochs used"]
            lines = [f"### {paper.title}: {ds.name}\n", "| " + " | ".join(head) + " |"]
            lines.append("|---|" + "---:|" * (len(cols) + 1))
            for m in paper.methods:
                found = [cells.get((m.name, *c)) for c in cols]
                epochs = [e for r in found if r for e in r["epochs"]]
                used = f"{np.mean(epochs):.0f} ({min(epochs)}–{max(epochs)})" if epochs else "—"
                text = " | ".join(format_cell(r) if r else "—" for r in found)
                lines.append(f"| {m.name} | {text} | {used} |")
            parts.append("\n".join(lines) if mine else "")
    return "\n\n".join(p for p in parts if p)


def provenance() -> dict[str, Any]:
    """Package versions and the git state of the code."""
    packages = ("torch", "lightning", "numpy", "scikit-learn", "optuna", "hashrepro")
    versions = {"python": platform.python_version(), **{p: metadata.version(p) for p in packages}}
    git = ["git", "-C", str(REPO), "describe", "--always", "--dirty", "--abbrev=40"]
    described = subprocess.run(git, capture_output=True, text=True).stdout.strip() or "unknown"
    commit, dirty = described.removesuffix("-dirty"), described.endswith("-dirty")
    return {"versions": versions, "commit": commit, "dirty": dirty}


def write_outputs(grid: Grid, out: Path, records: dict, info: dict) -> tuple[str, list[dict]]:
    """Write ``table2.md``, ``.csv`` and ``.json`` under ``out``; return the markdown and rows."""
    rows = summarize(grid, records)
    (out / "table2.json").write_text(json.dumps({**info, "rows": rows}, indent=1, default=str))
    with (out / "table2.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# {grid.name} (data: {grid.mode}, {grid.seeds} seed(s))\n", LEGEND, ""]
    lines += [markdown_tables(grid, rows), "\n## Protocol\n", grid.protocol]
    lines += ["\n## Tuning (validation only)\n"] + ["none (trials: 0)"] * (not info["tuning"])
    for t in info["tuning"]:
        best = t.get("best") or {"params": {}, "value": float("nan")}
        values = ", ".join(f"`{k.split('.')[-1]}` = {v:.3g}" for k, v in best["params"].items())
        space = ", ".join(f"`{k.split('.')[-1]}` {v}" for k, v in t["search"].items())
        trials = f"{len(t['trials'])} trials at {t['tune_bits']} bits"
        lines.append(f"- {t['study']}: {trials}, best validation mAP {best['value']:.3f} with ")
        lines[-1] += f"{values}; searched {space}"
    lines += ["\n## Provenance\n"]
    lines += [f"- {k}: {v}" for k, v in info.items() if k not in ("tuning", "protocol")]
    md = "\n".join(lines) + "\n"
    (out / "table2.md").write_text(md)
    return md, rows
