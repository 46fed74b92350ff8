"""A picture of a search: the query, then its top-k items with distance and labels."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def displayable(item: Any) -> np.ndarray | None:
    """An image item as (H, W) or (H, W, 3) floats in [0, 1]; None when it is not an image."""
    if isinstance(item, str):
        return None
    a = np.asarray(item.numpy() if isinstance(item, torch.Tensor) else item, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] != 3):
        return None
    lo, hi = float(a.min()), float(a.max())
    if hi > 1.0:  # 0..255 values
        a = a / 255.0
    elif lo < 0.0:  # normalised values: stretch for display
        a = (a - lo) / max(hi - lo, 1e-8)
    return np.clip(a, 0.0, 1.0)


def draw_grid(
    query: Any,
    query_title: str,
    items: list[Any],
    titles: list[str],
    path: str | Path,
    columns: int = 6,
) -> Path:
    """Draw ``query`` and ``items`` (raw data items) with titles into a PNG; return its path."""
    path = Path(path)
    panels = [(query, query_title)] + list(zip(items, titles, strict=True))
    cols = min(columns, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (item, title) in zip(axes.ravel(), panels, strict=False):
        image = displayable(item)
        if image is None:  # a text or feature item: show its text or a short summary
            text = item if isinstance(item, str) else f"{np.asarray(item).size}-d features"
            ax.text(0.5, 0.5, "\n".join(textwrap.wrap(text, 18)[:6]), ha="center", va="center")
        else:
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0)
        ax.set_title(title, fontsize=8)
    axes.ravel()[0].set_title(query_title, fontsize=8, fontweight="bold", color="tab:blue")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _panel(ax: Any, item: Any, title: str = "", frame: str | None = None) -> None:
    """One item: a picture, or the words of a text (a vector's size)."""
    image = displayable(item)
    if image is None:
        text = item if isinstance(item, str) else f"{np.asarray(item).size}-d features"
        ax.text(0.5, 0.5, "\n".join(textwrap.wrap(text, 16)[:6]), ha="center", va="center",
                fontsize=6, transform=ax.transAxes)  # fmt: skip
    else:
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)
    for spine in ax.spines.values():
        spine.set(edgecolor=frame or "white", linewidth=2.5 if frame else 0)


def draw_rows(
    rows: list[tuple[Any, str, list[Any], list[bool]]], title: str, path: str | Path
) -> Path:
    """Draw one row per query, ``(query, its title, items, relevant flags)``, into a PNG.

    Items are framed green (relevant) or red.
    """
    path = Path(path)
    cols = 1 + max(len(items) for _, _, items, _ in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.25 * cols, 1.4 * len(rows)), squeeze=False)
    for ax_row, (query, name, items, relevant) in zip(axes, rows, strict=True):
        for ax in ax_row:
            ax.axis("off")
        _panel(ax_row[0], query, name)
        ax_row[0].axis("on")
        for ax, item, ok in zip(ax_row[1:], items, relevant, strict=False):
            _panel(ax, item, frame="green" if ok else "red")
            ax.axis("on")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
