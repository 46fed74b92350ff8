"""Networks of the reconstruct-hashing model: hash nets, feature projections, decoders, memory.

:class:`TwoTowerHashNet` holds one tower per modality (backbone -> hash net -> code, backbone ->
projection for the feature-relation term, decoders from the code back to both modalities'
features). :class:`CodeMemory` keeps DCMH's per-item buffers of image codes ``F``, text codes
``G`` and binary codes ``B`` for every training item.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

__all__ = ["CodeDecoder", "CodeMemory", "FeatureProjection", "HashHead", "TwoTowerHashNet"]

MODALITIES = ("image", "text")
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


class CodeMemory(nn.Module):
    """DCMH's memory of the latest codes of every training item, indexed by dataset index.

    Buffers (all saved in checkpoints): ``image`` (N, K) image codes F, ``text`` (N, K) text
    codes G, ``binary`` (N, K) shared codes B = sign(F + G) (0 where not set yet), ``seen`` (N,)
    bool, and ``labels`` (N, C), sized on the first update since C is not known before. N is
    ``num_items``: the size of the whole dataset (largest item index + 1), not of the training
    split, so any item index of the dataset can be stored.

    Args:
        num_items: number of items of the dataset (indices 0..num_items-1).
        num_bits: code length K.

    """

    def __init__(self, num_items: int, num_bits: int) -> None:
        super().__init__()
        if num_items < 1:
            raise ValueError(f"num_items must be >= 1, got {num_items}")
        self.num_items = num_items
        self.register_buffer("image", torch.zeros(num_items, num_bits))
        self.register_buffer("text", torch.zeros(num_items, num_bits))
        self.register_buffer("binary", torch.zeros(num_items, num_bits))
        self.register_buffer("seen", torch.zeros(num_items, dtype=torch.bool))
        self.register_buffer("labels", torch.zeros(num_items, 0))

    def check_index(self, index: torch.Tensor) -> None:
        """Raise a clear error for item indices the memory cannot hold."""
        if index.numel() and (int(index.max()) >= self.num_items or int(index.min()) < 0):
            raise IndexError(
                f"item index {int(index.max())} does not fit a memory of num_items="
                f"{self.num_items}; set model.init_args.num_items to the dataset size"
            )

    @torch.no_grad()
    def update(
        self,
        index: torch.Tensor,
        image: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> None:
        """Store detached codes (and labels) of the items ``index`` and mark them seen."""
        self.check_index(index)
        if image is not None:
            self.image[index] = image.detach().to(self.image.dtype)
        if text is not None:
            self.text[index] = text.detach().to(self.text.dtype)
        if labels is not None:
            if self.labels.shape[1] != labels.shape[1]:
                if self.seen.any():
                    raise ValueError(
                        f"labels have {labels.shape[1]} classes, the memory {self.labels.shape[1]}"
                    )
                self.labels = labels.new_zeros(self.num_items, labels.shape[1], dtype=torch.float)
            self.labels[index] = labels.detach().float()
        self.seen[index] = True

    @torch.no_grad()
    def init_binary(self, index: torch.Tensor) -> None:
        """Set B = sign(F + G) (0 -> +1) for the items of ``index`` whose B is not set yet."""
        fresh = index[self.binary[index].abs().sum(dim=1) == 0]
        if fresh.numel():
            self.binary[fresh] = _sign(self.image[fresh] + self.text[fresh])

    @torch.no_grad()
    def refresh_binary(self) -> None:
        """DCMH's B-step: B = sign(F + G) for every seen item."""
        idx = self.seen.nonzero().squeeze(1)
        self.binary[idx] = _sign(self.image[idx] + self.text[idx])

    def seen_index(self) -> torch.Tensor:
        """(M,) indices of the items stored so far."""
        return self.seen.nonzero().squeeze(1)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        # ``labels`` is sized on the first update: resize it to the checkpoint's shape first.
        saved = state_dict.get(prefix + "labels")
        if saved is not None and saved.shape != self.labels.shape:
            self.labels = self.labels.new_zeros(saved.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _sign(x: torch.Tensor) -> torch.Tensor:
    """Sign with 0 -> +1 (the shared binarisation convention)."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)
