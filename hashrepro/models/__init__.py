"""Hashing models: nn.Module networks and losses, wired by thin LightningModules."""

from hashrepro.models.base import HashingModule
from hashrepro.models.dpsh import DPSH
from hashrepro.models.hashcnn import HashCNN
from hashrepro.models.reconstruct import ReconstructHashing

__all__ = ["DPSH", "HashCNN", "HashingModule", "ReconstructHashing"]
