"""Image feature extractors: the small CIFAR CNN and torchvision ImageNet networks."""

from __future__ import annotations

import os
from collections.abc import Mapping
from http.client import HTTPException
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn
from torchvision.models import AlexNet_Weights, ResNet50_Weights, VGG16_Weights, WeightsEnum

__all__ = ["SmallCNN", "TorchvisionBackbone", "load_state_dict_file"]


class SmallCNN(nn.Module):
    """The 3-conv CIFAR network of the CNNH / DNNH / DSH line, as a feature extractor.

    Caffe's ``cifar10_quick`` body: conv 32@5x5 -> max-pool -> ReLU, conv 32@5x5 -> ReLU ->
    avg-pool, conv 64@5x5 -> ReLU -> avg-pool (all convs pad 2, all pools 3x3 stride 2 pad 1,
    which halves the size like Caffe's ceil-mode pooling), then one fully connected layer with
    ReLU (500 units in DSH). An adaptive average pool to 4x4 before the fc layer makes any input
    size work (8x8, 16x15, ...); for 32x32 inputs it is the identity, as in the original.

    The original has no BatchNorm, so ``batch_norm=False`` is the default; ``batch_norm=True``
    adds one after each conv (before the ReLU), which tolerates larger learning rates. Either
    way the network has ~0.6M parameters and trains on a CPU in minutes.

    Args:
        in_channels: input channels (3 for RGB, 1 for MNIST-like data).
        out_features: size of the fc layer, i.e. of the output features.
        batch_norm: add BatchNorm2d after each convolution.
        dropout: dropout probability applied to the output features (0 disables it).

    """

    def __init__(
        self,
        in_channels: int = 3,
        out_features: int = 500,
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.out_features = out_features

        def conv(c_in: int, c_out: int) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 5, padding=2)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            return layers

        self.features = nn.Sequential(
            *conv(in_channels, 32),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            *conv(32, 32),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(3, stride=2, padding=1),
            *conv(32, 64),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(3, stride=2, padding=1),
            nn.AdaptiveAvgPool2d(4),
        )
        self.fc = nn.Sequential(
            nn.Linear(64 * 4 * 4, out_features), nn.ReLU(inplace=True), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of a batch of images.

        Args:
            x: images, (B, in_channels, H, W), e.g. (B, 3, 32, 32).

        Returns:
            (B, out_features) non-negative features.

        """
        x = self.features(x)  # (B, 64, 4, 4)
        return self.fc(torch.flatten(x, 1))  # (B, out_features)


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state_dict saved with ``torch.save(module.state_dict(), path)``.

    Args:
        path: the ``.pth`` / ``.pt`` file.

    Raises:
        FileNotFoundError: the file does not exist.
        TypeError: the file does not hold a dict of tensors.

    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"Weights file not found: {file}")
    state = torch.load(file, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise TypeError(f"{file} holds a {type(state).__name__}, expected a state_dict")
    return dict(state)


Arch = Literal["alexnet", "vgg16", "resnet50"]

# torchvision weights used for ``weights="imagenet"``: the original (V1) ImageNet weights, which
# are what the deep hashing papers fine-tune.
_IMAGENET_WEIGHTS: dict[str, WeightsEnum] = {
    "alexnet": AlexNet_Weights.IMAGENET1K_V1,
    "vgg16": VGG16_Weights.IMAGENET1K_V1,
    "resnet50": ResNet50_Weights.IMAGENET1K_V1,
}
# Prefix of the ImageNet classifier's keys in torchvision's state_dict (dropped when loading).
_HEAD_PREFIX = {"alexnet": "classifier.6.", "vgg16": "classifier.6.", "resnet50": "fc."}
_OUT_FEATURES = {"alexnet": 4096, "vgg16": 4096, "resnet50": 2048}


def load_imagenet_state_dict(arch: str, progress: bool = True) -> dict[str, torch.Tensor]:
    """Torchvision's ImageNet weights for ``arch``, from the torch hub cache or downloaded.

    The file is looked up at ``torch.hub.get_dir()/checkpoints/<filename>`` and downloaded there
    when missing, exactly as torchvision does. Only a failed download is turned into a one-line
    error saying where to put the file by hand.

    Raises:
        FileNotFoundError: the file is not cached and could not be downloaded (e.g. offline).

    """
    weights = _IMAGENET_WEIGHTS[arch]
    cached = (
        Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)
    )
    try:
        return weights.get_state_dict(progress=progress, check_hash=True)
    except (OSError, HTTPException) as err:  # URLError and socket errors are OSErrors
        if cached.exists():  # the download worked; reading the file failed
            raise
        raise FileNotFoundError(
            f"ImageNet weights for {arch} are not cached and could not be downloaded ({err}); "
            f"download {weights.url} and put it at {cached}"
        ) from err


class TorchvisionBackbone(nn.Module):
    """A torchvision ImageNet network without its classifier head.

    Outputs the penultimate features: the 4096-d fc7 activations (after ReLU) for AlexNet and
    VGG-16, the 2048-d globally average-pooled features for ResNet-50. Inputs are RGB images
    scaled to [0, 1] and normalised with the ImageNet mean (0.485, 0.456, 0.406) and std
    (0.229, 0.224, 0.225), usually (B, 3, 224, 224).

    The module's state_dict keys are torchvision's (``features.0.weight``, ``layer1.0.conv1...``)
    minus the head, so torchvision checkpoints load directly.

    Args:
        arch: ``"alexnet"``, ``"vgg16"`` or ``"resnet50"``.
        weights: ``None`` for random init; ``"imagenet"`` for torchvision's ImageNet weights
            (``IMAGENET1K_V1``), read from the torch hub cache or downloaded into it; otherwise
            the path of a local state_dict file, either of the full torchvision model (its head
            is ignored) or of this module.
        progress: show a progress bar while downloading.

    """

    def __init__(self, arch: Arch, weights: str | None = None, progress: bool = True) -> None:
        super().__init__()
        if arch not in _OUT_FEATURES:
            raise ValueError(f"arch must be one of {sorted(_OUT_FEATURES)}, got {arch!r}")
        self.arch = arch
        self.out_features = _OUT_FEATURES[arch]
        net = getattr(torchvision.models, arch)(weights=None)
        if arch == "resnet50":
            for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
                setattr(self, name, getattr(net, name))  # every module but the fc head
            self.avgpool = net.avgpool
        else:
            self.features = net.features
            self.avgpool = net.avgpool
            self.classifier = nn.Sequential(*list(net.classifier)[:-1])  # drop the 1000-way fc8

        if weights == "imagenet":
            self.load_backbone_state_dict(load_imagenet_state_dict(arch, progress=progress))
        elif weights is not None:
            self.load_backbone_state_dict(load_state_dict_file(weights))

    def load_backbone_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load a state_dict of this module or of the full torchvision model (head ignored)."""
        head = _HEAD_PREFIX[self.arch]
        self.load_state_dict({k: v for k, v in state_dict.items() if not k.startswith(head)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features of a batch of normalised images.

        Args:
            x: (B, 3, H, W) images, typically (B, 3, 224, 224).

        Returns:
            (B, out_features) features.

        """
        if self.arch == "resnet50":
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 2048, H/32, W/32)
            return torch.flatten(self.avgpool(x), 1)  # (B, 2048)
        x = self.avgpool(self.features(x))  # (B, 256, 6, 6) AlexNet / (B, 512, 7, 7) VGG-16
        return self.classifier(torch.flatten(x, 1))  # (B, 4096)
