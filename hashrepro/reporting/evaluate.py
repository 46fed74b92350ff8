"""Test codes of a cell and its retrieval figures: mAP, precision-recall by radius, P@K.

Deep cells gather the codes of the test run (the best checkpoint, tested by the CLI after fit)
with :class:`CodeCapture`; classic cells encode the query and database themselves. Both are
scored by :func:`retrieval_report` through ``hashrepro.retrieval`` (codes binarised by sign,
0 -> +1; an item is relevant when it shares a label with the query).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from hashrepro.retrieval import (
    ROLES,
    mean_average_precision,
    precision_at_k,
    precision_recall_curve,
)


class CodeCapture(Callback):
    """Keep the codes and labels of the last test run, per role and modality, as numpy.

    After ``trainer.test``, ``codes[role][modality]`` is (N, K) float32 and ``labels[role]`` is
    (N, C). It reads the codes the test step returns (as the evaluator does) or calls
    ``pl_module.encode``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.codes: dict[str, dict[str, np.ndarray]] = {}
        self.labels: dict[str, np.ndarray] = {}
        self._parts: dict[str, dict[str, list[torch.Tensor]]] = {}

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start a fresh collection."""
        self._parts = {role: {} for role in ROLES}

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Collect one batch of codes and labels."""
        if isinstance(outputs, dict) and "codes" in outputs:
            codes = outputs["codes"]
        else:
            with torch.no_grad():
                codes = pl_module.encode(batch)
        parts = self._parts[ROLES[min(dataloader_idx, 1)]]
        for mod, c in codes.items():
            parts.setdefault(mod, []).append(c.detach().float().cpu())
        parts.setdefault("_label", []).append(batch["label"].detach().float().cpu())

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Concatenate the batches."""
        self.codes, self.labels = {}, {}
        for role, parts in self._parts.items():
            labels = parts.pop("_label", [])
            if labels:
                self.labels[role] = torch.cat(labels).numpy()
            self.codes[role] = {m: torch.cat(v).numpy() for m, v in parts.items()}
        self._parts = {}


def retrieval_report(
    query_codes: Any,
    database_codes: Any,
    query_labels: Any,
    database_labels: Any,
    ks: list[int],
) -> dict[str, Any]:
    """Every figure the table and plots need, for one direction.

    Returns:
        ``mAP`` (whole ranking, ties in database order), ``precision_at_radius2`` (Hamming
        ball of radius 2), ``pr_radius`` (``precision`` and ``recall`` per radius 0..K) and
        ``precision_at_k`` (``k`` clamped to the database size, ``precision``).

    """
    n_db = len(database_labels)
    ks = sorted({min(int(k), n_db) for k in ks})
    args = (query_codes, database_codes, query_labels, database_labels)
    precision, recall = precision_recall_curve(*args)
    p_at_k = np.atleast_1d(precision_at_k(*args, k=ks))
    return {
        "mAP": float(mean_average_precision(*args)),
        "precision_at_radius2": float(precision[min(2, len(precision) - 1)]),
        "pr_radius": {"precision": precision.tolist(), "recall": recall.tolist()},
        "precision_at_k": {"k": ks, "precision": [float(p) for p in p_at_k]},
    }


def direction_reports(
    codes: dict[str, dict[str, np.ndarray]],
    labels: dict[str, np.ndarray],
    directions: list[tuple[str, str, str]],
    ks: list[int],
) -> dict[str, dict[str, Any]]:
    """:func:`retrieval_report` for every (name, query modality, database modality)."""
    out = {}
    for name, q_mod, d_mod in directions:
        if q_mod not in codes["query"] or d_mod not in codes["database"]:
            raise KeyError(
                f"direction {name} needs {q_mod} query codes and {d_mod} database codes; the "
                f"model gave {sorted(codes['query'])} and {sorted(codes['database'])}"
            )
        out[name] = retrieval_report(
            codes["query"][q_mod],
            codes["database"][d_mod],
            labels["query"],
            labels["database"],
            ks,
        )
    return out
