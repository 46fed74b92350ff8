"""The HashCNN network: backbone -> hash layer (K units) -> codes -> linear classifier.

Two hash layers (Guo, Zhang and Li, PAKDD 2016, as reconstructed here):

- ``proposed``: binary-valued in the forward pass, in training as well as at test time, so the
  classifier is trained on exactly the codes that are used for retrieval. The forward pass is
  ``sign(a)`` (with ``sign(0) = +1``); the backward pass is a straight-through estimator that
  uses the derivative of a saturating surrogate, ``tanh`` (default) or ``hardtanh``.
- ``relaxed`` (the baseline): a plain ``tanh`` (or ``sigmoid``) layer, thresholded only at test
  time, so training and test codes differ.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from hashrepro.models.common import sign

HashLayerMode = Literal["proposed", "relaxed"]
Activation = Literal["tanh", "sigmoid"]
Surrogate = Literal["tanh", "hardtanh"]


class _SignSTE(torch.autograd.Function):
    """Forward ``sign``, backward the derivative of a saturating surrogate (straight-through)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, surrogate: str) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(a)
        ctx.surrogate = surrogate
        return sign(a)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        (a,) = ctx.saved_tensors
        if ctx.surrogate == "tanh":
            local = 1.0 - torch.tanh(a) ** 2  # d tanh(a) / da
        else:
            local = (a.abs() <= 1).to(grad.dtype)  # d hardtanh(a) / da
        return grad * local, None


def sign_ste(a: torch.Tensor, surrogate: Surrogate = "tanh") -> torch.Tensor:
    """Exactly ±1 in the forward pass; gradient of ``surrogate(a)`` in the backward pass.

    Args:
        a: pre-activations, any shape.
        surrogate: ``"tanh"`` (smooth, never exactly zero) or ``"hardtanh"`` (1 on [-1, 1], 0
            outside: the classic straight-through estimator).

    Returns:
        Tensor of the shape of ``a`` with values in {-1, +1}.
    """
    if surrogate not in ("tanh", "hardtanh"):
        raise ValueError(f"surrogate must be 'tanh' or 'hardtanh', got {surrogate!r}")
    return _SignSTE.apply(a, surrogate)


class HashLayer(nn.Module):
    """Fully connected hash layer with K units, binary (``proposed``) or relaxed.

    Args:
        in_features: size of the backbone features.
        num_bits: code length K.
        mode: ``"proposed"`` (forward ``sign``, straight-through gradient) or ``"relaxed"``
            (``tanh`` / ``sigmoid``, thresholded only at test time).
        activation: relaxed layer's activation. ``"sigmoid"`` outputs are rescaled to ±1 scale,
            ``2 sigmoid(a) - 1 = tanh(a / 2)``, so the loss terms and the classifier see the same
            scale for both (for the linear classifier the rescaling is only a change of bias); its
            0.5 threshold is ``a > 0`` as for ``tanh``.
        surrogate: proposed layer's backward surrogate, ``"tanh"`` or ``"hardtanh"``.

    ``forward`` returns ``(codes, a)``: the codes the rest of the network trains on, (B, K), and
    the pre-activations ``a``, (B, K), whose sign is the binary code at test time in both modes.
    """

    def __init__(
        self,
        in_features: int,
        num_bits: int,
        mode: HashLayerMode = "proposed",
        activation: Activation = "tanh",
        surrogate: Surrogate = "tanh",
    ) -> None:
        super().__init__()
        if mode not in ("proposed", "relaxed"):
            raise ValueError(f"hash layer mode must be 'proposed' or 'relaxed', got {mode!r}")
        if activation not in ("tanh", "sigmoid"):
            raise ValueError(f"activation must be 'tanh' or 'sigmoid', got {activation!r}")
        if surrogate not in ("tanh", "hardtanh"):
            raise ValueError(f"surrogate must be 'tanh' or 'hardtanh', got {surrogate!r}")
        self.mode = mode
        self.activation = activation
        self.surrogate = surrogate
        self.fc = nn.Linear(in_features, num_bits)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes and pre-activations of a batch of features.

        Args:
            x: (B, in_features) backbone features.

        Returns:
            ``(codes, a)``, both (B, K): ``codes`` in {-1, +1} (proposed) or (-1, 1) (relaxed).
        """
        a = self.fc(x)  # (B, K)
        if self.mode == "proposed":
            return sign_ste(a, self.surrogate), a
        if self.activation == "sigmoid":
            return 2.0 * torch.sigmoid(a) - 1.0, a
        return torch.tanh(a), a

    def extra_repr(self) -> str:  # noqa: D102
        return f"mode={self.mode}, activation={self.activation}, surrogate={self.surrogate}"


class HashCNNNet(nn.Module):
    """Backbone CNN -> :class:`HashLayer` -> linear classifier on the codes.

    Args:
        backbone: feature extractor with an ``out_features`` attribute; ``forward(x)`` gives
            (B, out_features).
        num_bits: code length K.
        num_classes: number of label classes C (size of the classifier on the codes).
        hash_layer: ``"proposed"`` or ``"relaxed"`` (see :class:`HashLayer`).
        activation: relaxed layer's activation.
        surrogate: proposed layer's backward surrogate.

    ``forward(images)`` returns ``(codes, a, logits)``: the codes used for training (B, K), the
    hash layer's pre-activations (B, K) whose sign is the retrieval code, and the classifier's
    logits (B, C).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_bits: int,
        num_classes: int,
        hash_layer: HashLayerMode = "proposed",
        activation: Activation = "tanh",
        surrogate: Surrogate = "tanh",
    ) -> None:
        super().__init__()
        in_features = getattr(backbone, "out_features", None)
        if not isinstance(in_features, int):
            raise TypeError(
                f"the backbone {type(backbone).__name__} needs an int 'out_features' attribute"
            )
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.backbone = backbone
        self.hash = HashLayer(in_features, num_bits, hash_layer, activation, surrogate)
        self.classifier = nn.Linear(num_bits, num_classes)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Codes, pre-activations and logits of a batch of images.

        Args:
            images: (B, C_in, H, W).

        Returns:
            ``(codes, a, logits)`` of shapes (B, K), (B, K), (B, num_classes).
        """
        features = self.backbone(images)  # (B, F)
        codes, a = self.hash(features)  # (B, K), (B, K)
        return codes, a, self.classifier(codes)  # logits: (B, C)
