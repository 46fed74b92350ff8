"""Figures of the table: mAP against bits, PR by Hamming radius, P@K, retrieval grids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hashrepro.data.base import from_spec  # noqa: E402
from hashrepro.reporting.grid import Grid, slug  # noqa: E402
from hashrepro.search.grid import draw_rows  # noqa: E402

MARKERS = "osD^vP*Xhp<>"


def make_plots(grid: Grid, records: list[dict[str, Any]], out: Path) -> dict[str, Path]:
    """Draw every figure under ``out/plots``; return ``{name: png path}``."""
    plots: dict[str, Path] = {}
    for paper in grid.papers:
        cmap = plt.get_cmap("tab10")
        styles = {}
        for i, m in enumerate(paper.methods):
            line = "-" if m.kind == "deep" else "--"
            styles[m.name] = {"color": cmap(i % 10), "marker": MARKERS[i], "linestyle": line}
        for ds in paper.datasets:
            mine = [r for r in records if (r["paper"], r["dataset"]) == (paper.key, ds.name)]
            for d in sorted({d for r in mine for d in r["metrics"]}):
                tag, bits = f"{slug(ds.name)}_{d}", max(r["bits"] for r in mine)
                top = [r for r in mine if r["bits"] == bits]
                plots[f"map_vs_bits_{tag}"] = _figure(paper, mine, d, styles, "mAP", tag, out)
                for what in ("pr_radius", "precision_at_k"):
                    plots[f"{what}_{tag}_{bits}b"] = _figure(paper, top, d, styles, what, tag, out)
                shown = sorted(top, key=lambda r: -r["metrics"][d]["mAP"])
                shown = [r for r in shown if r["seed"] == 0]
                pick = [r for r in shown if r["method"] == paper.proposed][:1]
                pick += [r for r in shown if r["kind"] == "classic"][:1]
                if pick and pick[0]["metrics"][d].get("query_index"):
                    plots[f"retrieval_{tag}"] = retrieval_grid(ds, d, pick, out / "plots")
    return plots


def _figure(
    paper: Any, records: list, direction: str, styles: dict, what: str, tag: str, out: Path
) -> Path:
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for m in paper.methods:
        rs = [r["metrics"][direction] for r in records if r["method"] == m.name]
        if not rs:
            continue
        if what == "mAP":
            runs = [r for r in records if r["method"] == m.name]
            bits = sorted({r["bits"] for r in runs})
            vals = [[r["metrics"][direction]["mAP"] for r in runs if r["bits"] == b] for b in bits]
            std = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in vals]
            mean = [np.mean(v) for v in vals]
            ax.errorbar(bits, mean, yerr=std, capsize=3, label=m.name, **styles[m.name])
        else:
            x, y = ("recall", "precision") if what == "pr_radius" else ("k", "precision")
            xs, ys = (np.mean([r[what][c] for r in rs], axis=0) for c in (x, y))
            ax.plot(xs, ys, label=m.name, **styles[m.name])
    bits = max(r["bits"] for r in records)
    labels = {
        "mAP": ("code length (bits)", "tie-aware test mAP", "against code length"),
        "pr_radius": ("recall (radius 0...K)", "precision", f"{bits} bits, PR by Hamming radius"),
        "precision_at_k": ("K (log scale)", "precision@K", f"{bits} bits, precision of the top K"),
    }
    xlabel, ylabel, title = labels[what]
    ax.set_xscale("log" if what == "precision_at_k" else "linear")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=f"{tag.replace('_', ' ')}: {title}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    fig.tight_layout()
    name = f"map_vs_bits_{tag}" if what == "mAP" else f"{what}_{tag}_{bits}b"
    (path := out / "plots" / f"{name}.png").parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def retrieval_grid(dataset: Any, direction: str, records: list[dict], folder: Path) -> Path:
    """Three test queries and their top-10 items for each record (one method each)."""
    init = {k: v for k, v in dataset.data.get("init_args", {}).items() if k != "features"}
    dm = from_spec({**dataset.data, "init_args": init}, split_dir=None)
    data, mods = dm.data, {"i": "image", "t": "text"}

    def item(i: int, modality: str) -> Any:
        x = data.sources[modality][i]
        texts = getattr(dm, "texts", None)  # the words of a text, when the dataset keeps them
        if modality == "text" and texts:
            return texts[i]
        return f"text of class {int(np.argmax(data.labels[i]))}" if np.ndim(x) == 1 else x

    rows = []
    for record in records:
        figures = record["metrics"][direction]
        for q, top in list(zip(figures["query_index"], figures["database_index"], strict=True))[:3]:
            relevant = [bool((data.labels[q] * data.labels[j]).sum() > 0) for j in top]
            query, items = item(q, mods[direction[0]]), [item(j, mods[direction[-1]]) for j in top]
            rows.append((query, f"{record['method']}\nquery", items, relevant))
    title = f"{dataset.name} {direction}: top-10 of test queries ({records[0]['bits']} bits)"
    return draw_rows(rows, title, folder / f"retrieval_{slug(dataset.name)}_{direction}.png")
