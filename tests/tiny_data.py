"""Tiny DataModules for tests (CLI tests name them in class_path, e.g. tiny_data.Toy)."""

from __future__ import annotations

import numpy as np
import torch

from hashrepro.data import Digits, RetrievalData, RetrievalDataModule, one_hot


class Toy(RetrievalDataModule):
    """120 items, 4 classes, optionally multi-label and with a fixed partition."""

    name = "toy"
    default_sizes = {"num_query": 20, "num_train": 40, "num_val": 8}

    def __init__(self, multilabel: bool = False, fixed: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.multi, self.fixed = multilabel, fixed

    def load(self) -> RetrievalData:
        y = np.arange(120) % 4
        labels = one_hot(y, 4)
        if self.multi:
            labels[::3, (y[::3] + 1) % 4] = 1.0
        part = {}
        if self.fixed:
            part = {
                "query": np.arange(100, 120),
                "database": np.arange(100),
                "train": np.arange(100),
            }
        x = torch.arange(120, dtype=torch.float32).view(120, 1, 1, 1).expand(120, 1, 2, 2)
        return RetrievalData({"image": x}, labels, part)


class MultiLabelDigits(Digits):
    """scikit-learn's digits where every third item also carries the next digit's label."""

    name = "digits_multilabel"

    def load(self) -> RetrievalData:
        data = super().load()
        labels = data.labels.copy()
        rows = range(0, len(labels), 3)
        labels[rows, (labels[rows].argmax(1) + 1) % labels.shape[1]] = 1.0
        return RetrievalData(data.sources, labels)
