"""Retrieval for binary hash codes: Hamming ranking metrics and the ``HammingIndex``.

``RetrievalMAPMetric`` is imported lazily so that the functional metrics do not pull in
torchmetrics.
"""

from __future__ import annotations

from typing import Any

from hashrepro.retrieval.codes import binarize, hamming_distance, pack_codes
from hashrepro.retrieval.index import HammingIndex
from hashrepro.retrieval.metrics import (
    ROLES,
    average_precisions,
    mean_average_precision,
    precision_at_hamming_radius,
    precision_at_k,
    precision_recall_curve,
)

__all__ = [
    "HammingIndex",
    "ROLES",
    "RetrievalMAPMetric",
    "average_precisions",
    "binarize",
    "hamming_distance",
    "mean_average_precision",
    "pack_codes",
    "precision_at_hamming_radius",
    "precision_at_k",
    "precision_recall_curve",
]


def __getattr__(name: str) -> Any:
    if name == "RetrievalMAPMetric":
        from hashrepro.retrieval.torchmetric import RetrievalMAPMetric

        return RetrievalMAPMetric
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
