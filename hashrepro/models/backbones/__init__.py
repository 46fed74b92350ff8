"""Feature extractors (``nn.Module``, ``forward(x) -> (B, out_features)``) used by the models.

Each has an int ``out_features`` and simple-typed ``__init__`` arguments, so it can be named in
YAML, e.g. ``class_path: hashrepro.models.backbones.SmallCNN``.
"""

from hashrepro.models.backbones.cnnf import CNNF
from hashrepro.models.backbones.efficientnet import EfficientNetLite0
from hashrepro.models.backbones.image import SmallCNN, TorchvisionBackbone
from hashrepro.models.backbones.sentence import MiniLM
from hashrepro.models.backbones.text import TextMLP, TransformerTextEncoder

__all__ = [
    "CNNF",
    "EfficientNetLite0",
    "MiniLM",
    "SmallCNN",
    "TextMLP",
    "TorchvisionBackbone",
    "TransformerTextEncoder",
]
