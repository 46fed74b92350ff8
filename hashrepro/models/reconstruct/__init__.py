"""Cross-modal reconstruct hashing (Liu et al., S+SSPR 2018; our reconstruction) and DCMH.

``ReconstructHashing`` is the LightningModule; ``network`` holds the nn.Modules (hash nets,
projections, decoders, the two-tower network) and ``loss`` the losses on plain tensors. The code
memory and the likelihood, quantization and balance terms are in :mod:`hashrepro.models.common`.
"""

from hashrepro.models.reconstruct.loss import ReconstructHashingLoss, ReconstructionLoss
from hashrepro.models.reconstruct.module import ReconstructHashing
from hashrepro.models.reconstruct.network import (
    CodeDecoder,
    FeatureProjection,
    HashHead,
    TwoTowerHashNet,
)

__all__ = [
    "CodeDecoder",
    "FeatureProjection",
    "HashHead",
    "ReconstructHashing",
    "ReconstructHashingLoss",
    "ReconstructionLoss",
    "TwoTowerHashNet",
]
