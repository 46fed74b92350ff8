"""HashCNN as a LightningModule: wires :class:`HashCNNNet` and :class:`HashCNNLoss`."""

from __future__ import annotations

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

import hashrepro.models.backbones  # noqa: F401  (backbones by short class name in YAML)
from hashrepro.models.base import HashingModule, default_optimizer
from hashrepro.models.hashcnn.loss import HashCNNLoss
from hashrepro.models.hashcnn.network import Activation, HashCNNNet, HashLayerMode, Surrogate


class HashCNN(HashingModule):
    """Hash learning with CNNs for semantic retrieval (Guo, Zhang and Li, PAKDD 2016).

    **This is a reconstruction.** The paper's full text was not available; the model follows its
    abstract (a CNN with a new *hash layer* and a new *loss layer* that "learn hash functions
    that preserve the semantic information and at the same time satisfy the desirable
    independent properties of hashing", compared with baseline models without those layers)
    and its arXiv precursor (Guo and Li, "CNN Based Hashing for Image Retrieval", 1509.01354:
    codes are the signs of a fully connected layer trained jointly with the CNN, no pairwise
    similarity matrix). Our choices:

    - network: backbone -> hash layer (fully connected, K units) -> codes -> linear classifier
      (K -> C), so the codes carry the label information;
    - the new hash layer (``hash_layer="proposed"``) is binary in the forward pass during
      training too (``sign``, straight-through gradient of ``tanh`` or ``hardtanh``), so training
      and test codes agree; the baseline (``"relaxed"``) is a ``tanh`` / ``sigmoid`` layer
      thresholded only at test time;
    - the new loss layer adds to the semantic term (softmax cross-entropy, or sigmoid BCE for
      multi-label data) a bit-independence term ``||H^T H / B - I||_F^2 / K^2``, a bit-balance
      term ``||mean_b H||^2 / K`` and, for the relaxed layer, a quantization term
      ``mean_b ||H - sign H||^2 / K``, all on the codes ``H`` the classifier sees (after the
      activation); the baseline loss is the semantic term alone.

    The ablations are configurations, named by ``variant``: ``proposed`` (proposed layer, full
    loss), ``no-hash-layer`` (relaxed layer, full loss), ``no-loss-layer`` (proposed layer,
    semantic term only) and ``no-both`` (relaxed layer, semantic term only).

    Args:
        backbone: feature extractor with an ``out_features`` attribute (``SmallCNN``,
            ``TorchvisionBackbone``, ...), configured from YAML by ``class_path``.
        num_bits: code length K.
        num_classes: number of label classes C (the CLI links it from the DataModule).
        hash_layer: ``"proposed"`` (binary forward) or ``"relaxed"`` (the baseline).
        semantic_weight: weight of the classification term.
        decorrelation_weight: weight of the bit-independence term (0 turns it off).
        balance_weight: weight of the bit-balance term (0 turns it off).
        quantization_weight: weight of the quantization term (0 turns it off; moot for the
            proposed layer, whose codes are binary).
        multilabel: ``False`` softmax cross-entropy, ``True`` sigmoid BCE, ``None`` decides per
            batch (softmax when every label row sums to 1). The CLI links it from the
            DataModule's label kind.
        activation: the relaxed layer's activation, ``"tanh"`` or ``"sigmoid"``.
        surrogate: the proposed layer's backward surrogate, ``"tanh"`` or ``"hardtanh"``.
        variant: configuration tag (``proposed``, ``no-hash-layer``, ``no-loss-layer``,
            ``no-both``).
        optimizer: optimizer factory (YAML ``class_path``).
        scheduler: optional LR scheduler factory.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_bits: int,
        num_classes: int,
        hash_layer: HashLayerMode = "proposed",
        semantic_weight: float = 1.0,
        decorrelation_weight: float = 0.1,
        balance_weight: float = 0.1,
        quantization_weight: float = 0.0,
        multilabel: bool | None = None,
        activation: Activation = "tanh",
        surrogate: Surrogate = "tanh",
        variant: str = "proposed",
        optimizer: OptimizerCallable = default_optimizer,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(num_bits, variant=variant, optimizer=optimizer, scheduler=scheduler)
        self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler"])
        self.net = HashCNNNet(backbone, num_bits, num_classes, hash_layer, activation, surrogate)
        self.loss = HashCNNLoss(
            semantic_weight, decorrelation_weight, balance_weight, quantization_weight, multilabel
        )

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(codes, pre-activations, logits)`` of (B, C, H, W) images; see HashCNNNet."""
        return self.net(images)

    def encode(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"image": a}``: the (B, K) hash-layer pre-activations, whose sign is the code."""
        _, a, _ = self.net(batch["image"])
        return {"image": a}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Loss of a batch; logs ``train/loss`` and every term as ``train/<term>``."""
        codes, _, logits = self.net(batch["image"])  # (B, K), (B, K), (B, C)
        total, terms = self.loss(codes, logits, batch["label"])
        bs = batch["image"].shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=bs)
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, batch_size=bs)
        return total
