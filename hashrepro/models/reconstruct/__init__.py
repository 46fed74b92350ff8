"""Cross-modal reconstruct hashing (Liu et al., S+SSPR 2018; our reconstruction) and DCMH.

``ReconstructHashing`` is the LightningModule; ``network`` holds the nn.Modules (hash nets,
projections, decoders, the two-tower network, the code memory) and ``loss`` the losses on plain
tensors.
"""

from hashrepro.models.reconstruct.loss import (
    BalanceLoss,
    PairwiseLikelihoodLoss,
    QuantizationLoss,
    ReconstructHashingLoss,
    ReconstructionLoss,
    label_similarity,
)
from hashrepro.models.reconstruct.module import ReconstructHashing
from hashrepro.models.reconstruct.network import (
    CodeDecoder,
    CodeMemory,
    FeatureProjection,
    HashHead,
    TwoTowerHashNet,
)

__all__ = [
    "BalanceLoss",
    "CodeDecoder",
    "CodeMemory",
    "FeatureProjection",
    "HashHead",
    "PairwiseLikelihoodLoss",
    "QuantizationLoss",
    "ReconstructHashing",
    "ReconstructHashingLoss",
    "ReconstructionLoss",
    "TwoTowerHashNet",
    "label_similarity",
]
