"""Networks of the reconstruct-hashing model: hash nets, feature projections, decoders, memory.

:class:`TwoTowerHashNet` holds one tower per modality (backbone -> hash net -> code, backbone ->
projection for the feature-relation term, decoders from the code back to both modalities'
features). DCMH's per-item memory of ``F``, ``G`` and ``B`` is the shared
:class:`~hashrepro.models.common.CodeMemory`.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from hashrepro.models.common import MODALITIES

__all__ = ["CodeDecoder", "FeatureProjection", "HashHead", "TwoTowerHashNet"]

Activation = Literal["tanh", "identity"]


def _mlp(in_features: int, out_features: int, hidden: int | None, dropout: float) -> nn.Sequential:
    """Linear, or Linear-ReLU-Dropout-Linear when ``hidden`` is set."""
    if hidden is None:
        return nn.Sequential(nn.Linear(in_features, out_features))
    if hidden < 1:
        raise ValueError(f"hidden must be >= 1 or None, got {hidden}")
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, out_features),
    )


class HashHead(nn.Module):
    """The hash net of one modality: feature (B, D) -> real-valued code (B, K).

    ``Linear(D, hidden) - ReLU - Dropout - Linear(hidden, K)`` (``hidden`` set) or DCMH's single
    ``Linear(D, K)`` (``hidden=None``), then ``tanh`` (codes in (-1, 1)) or nothing (DCMH's
    unbounded fc8 output). The sign of the code is the hash either way.

    Args:
        in_features: feature size D.
        num_bits: code length K.
        hidden: hidden width of the MLP, ``None`` for a single linear layer.
        activation: ``"tanh"`` or ``"identity"``.
        dropout: dropout after the hidden ReLU.

    """

    def __init__(
        self,
        in_features: int,
        num_bits: int,
        hidden: int | None = None,
        activation: Activation = "tanh",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in ("tanh", "identity"):
            raise ValueError(f"activation must be 'tanh' or 'identity', got {activation!r}")
        self.net = _mlp(in_features, num_bits, hidden, dropout)
        self.act: nn.Module = nn.Tanh() if activation == "tanh" else nn.Identity()
        self.out_features = num_bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Codes (B, K) of features (B, D)."""
        return self.act(self.net(x))


class FeatureProjection(nn.Module):
    """Linear projection of one modality's feature into the common space, then tanh.

    Used by the feature-relation term: the image and text features generally differ in size
    (e.g. 4096 vs 8192), and backbone features are non-negative ReLU outputs whose inner products
    cannot express dissimilarity, so both are always projected (``tanh(W f)``, in (-1, 1)^d_f).
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Projected features (B, d_f) of (B, D) features."""
        return torch.tanh(self.linear(x))


class CodeDecoder(nn.Module):
    """Decoder of a code (B, K) back into a feature (B, D): Linear or Linear-ReLU-Linear."""

    def __init__(
        self, num_bits: int, out_features: int, hidden: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.net = _mlp(num_bits, out_features, hidden, dropout)
        self.out_features = out_features

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Reconstructed features (B, D)."""
        return self.net(codes)


class TwoTowerHashNet(nn.Module):
    """Image and text towers: backbone, hash net, optional projection and decoders.

    Args:
        image_net: image backbone, ``forward(x) -> (B, out_features)`` with ``out_features``.
        text_net: text backbone, same interface.
        num_bits: code length K.
        hash_hidden: hidden width of the hash nets (``None``: one linear layer, as DCMH).
        activation: code activation, ``"tanh"`` or ``"identity"`` (DCMH).
        feature_dim: size d_f of the common feature space; ``None`` builds no projections
            (no feature-relation term).
        reconstruct: build the four decoders (image/text code -> image/text feature).
        decoder_hidden: hidden width of the decoders (``None``: linear decoders).
        dropout: dropout inside the hash nets and decoders.

    """

    def __init__(
        self,
        image_net: nn.Module,
        text_net: nn.Module,
        num_bits: int,
        hash_hidden: int | None = None,
        activation: Activation = "tanh",
        feature_dim: int | None = None,
        reconstruct: bool = False,
        decoder_hidden: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        dims = {}
        for name, net in (("image", image_net), ("text", text_net)):
            dim = getattr(net, "out_features", None)
            if not isinstance(dim, int):
                raise TypeError(f"{name}_net must have an int attribute out_features")
            dims[name] = dim
        self.feature_sizes = dims
        self.num_bits = num_bits
        self.backbones = nn.ModuleDict({"image": image_net, "text": text_net})
        self.hash_nets = nn.ModuleDict(
            {m: HashHead(dims[m], num_bits, hash_hidden, activation, dropout) for m in MODALITIES}
        )
        self.projections: nn.ModuleDict | None = None
        if feature_dim is not None:
            self.projections = nn.ModuleDict(
                {m: FeatureProjection(dims[m], feature_dim) for m in MODALITIES}
            )
        self.decoders: nn.ModuleDict | None = None
        if reconstruct:
            self.decoders = nn.ModuleDict(
                {
                    f"{src}_to_{dst}": CodeDecoder(num_bits, dims[dst], decoder_hidden, dropout)
                    for src in MODALITIES
                    for dst in MODALITIES
                }
            )

    def side_parameters(self, modality: str) -> list[nn.Parameter]:
        """Parameters updated on the ``modality`` side of the alternation.

        The backbone, hash net and projection of that modality, and the decoders that read its
        codes (``<modality>_to_image``, ``<modality>_to_text``).
        """
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        modules: list[nn.Module] = [self.backbones[modality], self.hash_nets[modality]]
        if self.projections is not None:
            modules.append(self.projections[modality])
        if self.decoders is not None:
            modules += [self.decoders[f"{modality}_to_{dst}"] for dst in MODALITIES]
        return [p for m in modules for p in m.parameters()]

    def features(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Backbone features (B, D) of one modality's inputs."""
        return self.backbones[modality](x)

    def codes(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Real-valued codes (B, K) of one modality's inputs."""
        return self.hash_nets[modality](self.features(modality, x))

    def forward_side(self, modality: str, x: torch.Tensor) -> dict[str, Any]:
        """Everything the training loss needs from one tower.

        Returns:
            ``feature`` (B, D), ``code`` (B, K), ``projection`` (B, d_f) if built, and
            ``reconstruction``: ``{target modality: (B, D_target)}`` if decoders are built.

        """
        feature = self.features(modality, x)
        code = self.hash_nets[modality](feature)
        out: dict[str, Any] = {"feature": feature, "code": code}
        if self.projections is not None:
            out["projection"] = self.projections[modality](feature)
        if self.decoders is not None:
            out["reconstruction"] = {
                dst: self.decoders[f"{modality}_to_{dst}"](code) for dst in MODALITIES
            }
        return out

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, dict[str, Any]]:
        """:meth:`forward_side` of both towers: ``{"image": {...}, "text": {...}}``."""
        return {"image": self.forward_side("image", image), "text": self.forward_side("text", text)}
