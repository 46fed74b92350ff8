"""The label forms every metric (and baseline) takes, checked once.

* ``(N,)`` integer class ids (integral floats too, as MATLAB files store them);
* ``(N, 1)``: a column of class ids, read as ``(N,)`` (never as one multi-hot column, which
  would drop class 0's label);
* ``(N, C)`` multi-hot rows: a value > 0 marks a label; NaN and negative values are refused.

Complex labels, non-integral class ids and negative ids are refused with one line.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_labels(labels: Tensor, rows: int, name: str = "labels") -> Tensor:
    """Validate labels of ``rows`` items: ``(rows,)`` int64 class ids or ``(rows, C)`` multi-hot.

    Args:
        labels: class ids ``(N,)`` / ``(N, 1)`` or multi-hot ``(N, C)``, any real dtype.
        rows: the number of items N they must describe.
        name: the argument's name, for messages.

    Returns:
        ``(N,)`` int64 class ids, or the ``(N, C)`` multi-hot tensor unchanged.

    Raises:
        ValueError: a shape, dtype or value that no label form allows (one line).

    """
    if labels.is_complex():
        raise ValueError(f"{name} are complex; pass class ids or real multi-hot rows")
    if labels.ndim not in (1, 2) or labels.shape[0] != rows:
        raise ValueError(
            f"{name} must have shape ({rows},) or ({rows}, C), got {tuple(labels.shape)}"
        )
    if labels.ndim == 2 and labels.shape[1] == 0:
        raise ValueError(f"{name} has zero label columns")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]  # a column of class ids
    if labels.ndim == 2:
        if labels.is_floating_point() and bool(torch.isnan(labels).any()):
            raise ValueError(f"{name} (multi-hot) contain NaN values")
        if labels.dtype != torch.bool and labels.numel() and bool((labels < 0).any()):
            raise ValueError(f"{name} (multi-hot) contain negative values; use 0/1 rows")
        return labels
    if labels.dtype == torch.bool:
        raise ValueError(f"1-D {name} are boolean; pass integer class ids")
    if labels.is_floating_point():
        if not bool(torch.isfinite(labels).all()) or not bool((labels == labels.round()).all()):
            raise ValueError(f"{name} must be integer class ids, got non-integral {labels.dtype}")
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"{name} contains a negative class id")
    return labels.long()
