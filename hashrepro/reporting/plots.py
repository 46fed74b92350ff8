"""Figures of the table (matplotlib Agg, PNG), one question per figure, per dataset/direction.

- ``map_vs_bits_<dataset>_<dir>.png``: test mAP against code length, one line per method
  (mean ± std over seeds);
- ``pr_radius_<dataset>_<dir>_<bits>b.png``: precision against recall of Hamming-ball
  retrieval, one point per radius 0..K, at the largest code length (mean over seeds);
- ``precision_at_k_<dataset>_<dir>_<bits>b.png``: precision of the top K against K, at the
  largest code length (mean over seeds).

Deep methods are solid lines, classic baselines dashed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hashrepro.reporting.grid import Grid, slug  # noqa: E402

MARKERS = "osD^vP*Xhp<>"


def _styles(methods: list[Any]) -> dict[str, dict[str, Any]]:
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    return {
        m.name: {
            "color": cmap(i % cmap.N),
            "marker": MARKERS[i % len(MARKERS)],
            "linestyle": "-" if m.kind == "deep" else "--",
        }
        for i, m in enumerate(methods)
    }


def _finish(fig: Any, ax: Any, path: Path, title: str) -> Path:
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _mean_curve(records: list[dict[str, Any]], direction: str, key: str, field: str) -> Any:
    arrays = [np.asarray(r["metrics"][direction][key][field], dtype=float) for r in records]
    return np.mean(arrays, axis=0)


def make_plots(grid: Grid, records: list[dict[str, Any]], out: Path) -> dict[str, Path]:
    """Draw every figure; return ``{name: png path}``."""
    plots: dict[str, Path] = {}
    seeds = f"{grid.seeds} seed{'s' if grid.seeds > 1 else ''}"
    for paper in grid.papers:
        styles = _styles(paper.methods)
        for ds in paper.datasets:
            mine = [r for r in records if r["paper"] == paper.key and r["dataset"] == ds.name]
            directions = list(dict.fromkeys(d for r in mine for d in r["metrics"]))
            for direction in directions:
                tag = f"{slug(ds.name)}_{direction}"
                plots[f"map_vs_bits_{tag}"] = _map_vs_bits(
                    paper, ds.name, direction, mine, styles, seeds, out / "plots"
                )
                bits = max((r["bits"] for r in mine), default=None)
                at_bits = [r for r in mine if r["bits"] == bits]
                if not at_bits:
                    continue
                plots[f"pr_radius_{tag}_{bits}b"] = _pr_radius(
                    paper, ds.name, direction, bits, at_bits, styles, seeds, out / "plots"
                )
                plots[f"precision_at_k_{tag}_{bits}b"] = _precision_at_k(
                    paper, ds.name, direction, bits, at_bits, styles, seeds, out / "plots"
                )
    return plots


def _by_method(paper: Any, records: list[dict[str, Any]]) -> list[tuple[Any, list[dict]]]:
    out = []
    for m in paper.methods:
        rs = [r for r in records if r["method"] == m.name]
        if rs:
            out.append((m, rs))
    return out


def _map_vs_bits(
    paper: Any, dataset: str, direction: str, records: list[dict], styles: dict, seeds: str,
    folder: Path,
) -> Path:  # fmt: skip
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    methods = _by_method(paper, records)
    all_bits = sorted({r["bits"] for r in records})
    step = 0.012 * (max(all_bits) - min(all_bits) or 1)  # spread the error bars of a column
    for i, (m, rs) in enumerate(methods):
        bits = sorted({r["bits"] for r in rs})
        shift = (i - (len(methods) - 1) / 2) * step
        vals = [[r["metrics"][direction]["mAP"] for r in rs if r["bits"] == b] for b in bits]
        mean = [np.mean(v) for v in vals]
        std = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in vals]
        x = [b + shift for b in bits]
        ax.errorbar(x, mean, yerr=std, label=m.name, capsize=3, markersize=5, **styles[m.name])
    ax.set_xticks(all_bits)
    ax.set_xlabel("code length (bits)")
    ax.set_ylabel("test mAP")
    title = f"{dataset} {direction}: test mAP against code length (mean ± std, {seeds})"
    return _finish(fig, ax, folder / f"map_vs_bits_{slug(dataset)}_{direction}.png", title)


def _pr_radius(
    paper: Any, dataset: str, direction: str, bits: int, records: list[dict], styles: dict,
    seeds: str, folder: Path,
) -> Path:  # fmt: skip
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for m, rs in _by_method(paper, records):
        precision = _mean_curve(rs, direction, "pr_radius", "precision")
        recall = _mean_curve(rs, direction, "pr_radius", "recall")
        ax.plot(recall, precision, label=m.name, markersize=3, **styles[m.name])
    ax.set_xlabel("recall (Hamming radius 0 ... K)")
    ax.set_ylabel("precision")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(0, 1.02)
    title = f"{dataset} {direction}, {bits} bits: precision-recall by Hamming radius ({seeds})"
    name = f"pr_radius_{slug(dataset)}_{direction}_{bits}b.png"
    return _finish(fig, ax, folder / name, title)


def _precision_at_k(
    paper: Any, dataset: str, direction: str, bits: int, records: list[dict], styles: dict,
    seeds: str, folder: Path,
) -> Path:  # fmt: skip
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for m, rs in _by_method(paper, records):
        ks = rs[0]["metrics"][direction]["precision_at_k"]["k"]
        precision = _mean_curve(rs, direction, "precision_at_k", "precision")
        ax.plot(ks, precision, label=m.name, markersize=5, **styles[m.name])
    ax.set_xscale("log")
    all_ks = sorted({k for _, rs in _by_method(paper, records)
                     for k in rs[0]["metrics"][direction]["precision_at_k"]["k"]})  # fmt: skip
    ax.set_xticks(all_ks, [str(k) for k in all_ks])
    ax.minorticks_off()
    ax.set_xlabel("K (top-K retrieved items, log scale)")
    ax.set_ylabel("precision@K")
    ax.set_ylim(0, 1.02)
    title = f"{dataset} {direction}, {bits} bits: precision of the top K ({seeds})"
    name = f"precision_at_k_{slug(dataset)}_{direction}_{bits}b.png"
    return _finish(fig, ax, folder / name, title)
