"""The HashCNN loss layer: semantic term plus independence, balance and quantization terms.

All terms act on ``H``, the (B, K) codes the classifier is trained on, i.e. the hash layer's
output *after* its activation: exactly ±1 for the proposed (binary) layer, ``tanh`` values in
(-1, 1) for the relaxed layer. For the proposed layer the gradients of the independence and
balance terms reach the pre-activations through the straight-through estimator.

- ``semantic``: softmax cross-entropy of the classifier's logits (single-label data) or sigmoid
  binary cross-entropy (multi-label data).
- ``decorrelation`` (independence): ``||H^T H / B - I||_F^2 / K^2`` on the batch; zero when the
  bits are pairwise uncorrelated (orthogonal columns) with unit second moment.
- ``balance``: ``||mean_b(H)||^2 / K``; zero when each bit is +1 on half the batch.
- ``quantization``: ``mean_b ||H - sign(H)||^2 / K``; zero for binary codes, so it is moot (and
  off by default) for the proposed layer.

The balance and quantization terms are the shared ones of :mod:`hashrepro.models.common`.

Each term has a weight; a weight of 0 leaves the term out of the total (it is still reported).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hashrepro.models.common import balance_loss, is_multilabel, quantization_loss

TERMS = ("semantic", "decorrelation", "balance", "quantization")


def decorrelation_loss(codes: torch.Tensor) -> torch.Tensor:
    """``||H^T H / B - I||_F^2 / K^2`` for (B, K) codes ``H``: the bits' independence term."""
    b, k = codes.shape
    gram = codes.T @ codes / b  # (K, K)
    eye = torch.eye(k, dtype=codes.dtype, device=codes.device)
    return (gram - eye).pow(2).sum() / k**2


def semantic_loss(logits: torch.Tensor, labels: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """Softmax cross-entropy (single-label) or sigmoid BCE (multi-label) of (B, C) logits."""
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    return F.cross_entropy(logits, labels.argmax(dim=1))


class HashCNNLoss(nn.Module):
    """Weighted sum of the semantic, decorrelation, balance and quantization terms.

    The baseline loss layer is the semantic term alone (all other weights 0).

    Args:
        semantic_weight: weight of the classification term.
        decorrelation_weight: weight of the bit-independence term.
        balance_weight: weight of the bit-balance term.
        quantization_weight: weight of the quantization term (meant for the relaxed layer).
        multilabel: ``False`` for softmax cross-entropy, ``True`` for sigmoid BCE, ``None`` to
            decide from each batch's labels: softmax when every label row sums to 1. Through
            the CLI it is the DataModule's label kind (a link).

    ``forward(codes, logits, labels)`` returns ``(total, terms)``: the scalar loss and a dict of
    every term's (unweighted) value.
    """

    def __init__(
        self,
        semantic_weight: float = 1.0,
        decorrelation_weight: float = 0.0,
        balance_weight: float = 0.0,
        quantization_weight: float = 0.0,
        multilabel: bool | None = None,
    ) -> None:
        super().__init__()
        self.weights = {
            "semantic": float(semantic_weight),
            "decorrelation": float(decorrelation_weight),
            "balance": float(balance_weight),
            "quantization": float(quantization_weight),
        }
        for name, w in self.weights.items():
            if w < 0:
                raise ValueError(f"{name}_weight must be >= 0, got {w}")
        self.multilabel = multilabel

    def forward(
        self, codes: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and the terms.

        Args:
            codes: (B, K) codes the classifier sees (±1 or relaxed in (-1, 1)).
            logits: (B, C) classifier logits.
            labels: (B, C) multi-hot labels.

        Returns:
            ``(total, {"semantic", "decorrelation", "balance", "quantization"})``; terms with
            weight 0 are computed without gradient and do not enter ``total``.
        """
        multilabel = is_multilabel(labels) if self.multilabel is None else self.multilabel
        fns = {
            "semantic": lambda: semantic_loss(logits, labels, multilabel),
            "decorrelation": lambda: decorrelation_loss(codes),
            "balance": lambda: balance_loss(codes),
            "quantization": lambda: quantization_loss(codes),
        }
        terms: dict[str, torch.Tensor] = {}
        total = codes.new_zeros(())
        for name in TERMS:
            w = self.weights[name]
            if w == 0:
                with torch.no_grad():
                    terms[name] = fns[name]()
            else:
                terms[name] = fns[name]()
                total = total + w * terms[name]
        return total, terms

    def extra_repr(self) -> str:  # noqa: D102
        ws = ", ".join(f"{k}={v:g}" for k, v in self.weights.items())
        return f"{ws}, multilabel={self.multilabel}"
