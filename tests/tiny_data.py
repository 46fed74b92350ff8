"""A tiny multi-label DataModule for the CLI's label-kind link (tests name it in class_path)."""

from __future__ import annotations

from hashrepro.data import Digits, RetrievalData


class MultiLabelDigits(Digits):
    """scikit-learn's digits where every third item also carries the next digit's label."""

    name = "digits_multilabel"

    def load(self) -> RetrievalData:
        data = super().load()
        labels = data.labels.copy()
        rows = range(0, len(labels), 3)
        labels[rows, (labels[rows].argmax(1) + 1) % labels.shape[1]] = 1.0
        return RetrievalData(data.sources, labels)
