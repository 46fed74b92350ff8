"""Retrieval data: one DataModule layer for single-modal and cross-modal datasets."""

from hashrepro.data.base import RetrievalData, RetrievalDataModule, RetrievalDataset, one_hot
from hashrepro.data.crossmodal import (
    IAPRTC12,
    CrossModalFeatures,
    DCMHFormat,
    MIRFlickr25K,
    NUSWIDECrossModal,
)
from hashrepro.data.embedded import Digits, MNIST5k, MultipleFeatures
from hashrepro.data.emoji import Emoji
from hashrepro.data.fashion_mnist import FashionMNIST
from hashrepro.data.images import CIFAR10, NUSWIDE, SVHN

__all__ = [
    "CIFAR10",
    "CrossModalFeatures",
    "DCMHFormat",
    "Digits",
    "Emoji",
    "FashionMNIST",
    "IAPRTC12",
    "MIRFlickr25K",
    "MNIST5k",
    "MultipleFeatures",
    "NUSWIDE",
    "NUSWIDECrossModal",
    "RetrievalData",
    "RetrievalDataModule",
    "RetrievalDataset",
    "SVHN",
    "one_hot",
]
