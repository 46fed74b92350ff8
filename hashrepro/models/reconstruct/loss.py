"""Losses of the reconstruct-hashing model and of DCMH, on plain tensors (no Lightning).

Notation (DCMH, Jiang & Li, CVPR 2017): ``F`` image codes, ``G`` text codes, both real-valued
(N, K); ``S`` the inter-modal similarity, ``S_ij = 1`` when image i and text j share a label;
``B = sign(F + G)`` the shared binary codes.

The likelihood, quantization and balance terms are the shared ones of
:mod:`hashrepro.models.common`. Normalisation: by default (``normalization="mean"``, ours) the
likelihood is a mean over pairs, the quantization a mean over code elements, and the balance
term is DCMH's ``||F^T 1||^2`` divided by ``N * B * K`` (all rows, live rows, bits) so that it
gives each live code element a gradient of the same order as the quantization term does. With
weights 1 and 1 this is DCMH's loss with ``gamma = N / K`` and ``eta = 1 / K``.
``normalization="sum"`` is DCMH's own form (Jiang & Li's code): every term summed and the
side's total divided by ``N * B``, where ``gamma = eta = 1`` are the authors' weights. The
weights of the terms live in :class:`ReconstructHashingLoss`; a weight of 0 switches a term off
(it is not even computed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from hashrepro.models.common import (
    balance_loss,
    label_similarity,
    pairwise_likelihood,
    quantization_loss,
)

__all__ = ["ReconstructHashingLoss", "ReconstructionLoss", "SideInputs"]


class ReconstructionLoss(nn.Module):
    """Mean squared error between reconstructed and target features.

    Args:
        normalize_targets: rescale each target vector to unit RMS (``x / ||x|| * sqrt(D)``) and
            compare with the prediction, so the loss does not depend on the scale of a
            backbone's features (ReLU features of different networks differ by orders of
            magnitude). ``False`` compares raw features.

    """

    def __init__(self, normalize_targets: bool = True) -> None:
        super().__init__()
        self.normalize_targets = normalize_targets

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """MSE of (N, D) predictions against (N, D) targets (the targets are not detached)."""
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ"
            )
        if self.normalize_targets:
            target = F.normalize(target, dim=1) * target.shape[1] ** 0.5
        return F.mse_loss(prediction, target)


@dataclass
class SideInputs:
    """What one side's (one modality's) loss needs; the other modality is fixed (detached).

    Attributes:
        codes: (B, K) live codes of this modality for the batch.
        binary: (B, K) shared binary targets ``B`` of the batch items.
        labels: (B, C) labels of the batch.
        other_codes: (M, K) code memory of the other modality (fixed).
        other_labels: (M, C) labels of the memory rows.
        memory_codes: (M', K) this modality's memory with the live batch rows substituted (for
            the balance term); ``None`` uses the batch only.
        features: (B, d_f) live projected features of this modality (feature-relation term).
        other_features: (B, d_f) projected features of the other modality, same items (fixed).
        reconstructions: name -> (prediction, target) pairs of feature reconstructions.

    """

    codes: torch.Tensor
    binary: torch.Tensor
    labels: torch.Tensor
    other_codes: torch.Tensor
    other_labels: torch.Tensor
    memory_codes: torch.Tensor | None = None
    features: torch.Tensor | None = None
    other_features: torch.Tensor | None = None
    reconstructions: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


class ReconstructHashingLoss(nn.Module):
    """The weighted sum of the five terms for one side (image or text) of the alternation.

    ``L = w_feat * L_feature_relation + w_code * L_likelihood + w_quant * L_quantization
    + w_bal * L_balance + w_rec * sum(L_reconstruction)``; a weight of 0 switches its term off.
    DCMH is ``feature_weight = reconstruction_weight = 0``.

    Args:
        feature_weight: inter-modal likelihood on the projected features.
        code_weight: inter-modal likelihood on the codes (DCMH's first term).
        quantization_weight: DCMH's gamma.
        balance_weight: DCMH's eta.
        reconstruction_weight: feature reconstruction from the codes (summed over targets).
        feature_scale: inner-product factor of the feature likelihood.
        code_scale: inner-product factor of the code likelihood (1/2 in DCMH).
        normalize_targets: see :class:`ReconstructionLoss`.
        normalization: ``"mean"`` (ours, see the module docstring) or ``"sum"``: DCMH's form,
            ``(sum_ij nll_ij + gamma sum ||B - F||^2 + eta ||F^T 1||^2) / (N B)`` for N rows of
            the other modality's memory and B live rows, i.e. the mean-form likelihood, the
            quantization times ``K / N`` and the balance times ``K * rows / N``. The terms
            returned (and logged) are then these scaled values. The feature-relation and
            reconstruction terms are not DCMH's and stay means.

    """

    TERMS = ("feature_relation", "likelihood", "quantization", "balance", "reconstruction")
    NORMALIZATIONS = ("mean", "sum")

    def __init__(
        self,
        feature_weight: float = 1.0,
        code_weight: float = 1.0,
        quantization_weight: float = 1.0,
        balance_weight: float = 1.0,
        reconstruction_weight: float = 1.0,
        feature_scale: float = 0.5,
        code_scale: float = 0.5,
        normalize_targets: bool = True,
        normalization: str = "mean",
    ) -> None:
        super().__init__()
        if normalization not in self.NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {self.NORMALIZATIONS}, got {normalization!r}"
            )
        self.normalization = normalization
        weights = {
            "feature_relation": feature_weight,
            "likelihood": code_weight,
            "quantization": quantization_weight,
            "balance": balance_weight,
            "reconstruction": reconstruction_weight,
        }
        for name, w in weights.items():
            if w < 0:
                raise ValueError(f"the weight of the {name} term must be >= 0, got {w}")
        self.weights = weights
        self.feature_scale = feature_scale
        self.code_scale = code_scale
        self.reconstruction = ReconstructionLoss(normalize_targets)

    def active(self, term: str) -> bool:
        """Whether ``term`` has a positive weight."""
        return self.weights[term] > 0

    def forward(self, side: SideInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss of one side and its unweighted terms (only the active ones).

        Returns:
            ``(loss, terms)``: the weighted scalar and ``{term: unweighted scalar}``.

        """
        terms: dict[str, torch.Tensor] = {}
        if self.active("feature_relation"):
            if side.features is None or side.other_features is None:
                raise ValueError("the feature-relation term needs features and other_features")
            sim = label_similarity(side.labels, side.labels)
            terms["feature_relation"] = pairwise_likelihood(
                side.features, side.other_features, sim, self.feature_scale
            )
        if self.active("likelihood"):
            sim = label_similarity(side.labels, side.other_labels)
            terms["likelihood"] = pairwise_likelihood(
                side.codes, side.other_codes, sim, self.code_scale
            )
        if self.active("quantization"):
            terms["quantization"] = quantization_loss(side.codes, side.binary)
        if self.active("balance"):
            rows = side.codes if side.memory_codes is None else side.memory_codes
            terms["balance"] = balance_loss(rows, num_live=side.codes.shape[0])
        if self.active("reconstruction"):
            if not side.reconstructions:
                raise ValueError("the reconstruction term needs (prediction, target) pairs")
            terms["reconstruction"] = sum(
                (self.reconstruction(p, t) for p, t in side.reconstructions.values()),
                start=side.codes.new_zeros(()),
            )
        if self.normalization == "sum":
            n_other, bits = side.other_codes.shape[0], side.codes.shape[1]
            rows = side.codes.shape[0] if side.memory_codes is None else len(side.memory_codes)
            if "quantization" in terms:
                terms["quantization"] = terms["quantization"] * (bits / n_other)
            if "balance" in terms:
                terms["balance"] = terms["balance"] * (bits * rows / n_other)
        total = side.codes.new_zeros(())
        for name, value in terms.items():
            total = total + self.weights[name] * value
        return total, terms
