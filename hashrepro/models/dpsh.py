"""DPSH (Li, Wang & Kang, IJCAI 2016): deep pairwise-supervised hashing, our single-modal reference.

Network: a backbone (the HashCNN one, e.g. ``SmallCNN``) then one linear layer to K real outputs,
the relaxed codes ``u`` (no activation, as in the paper); the hash is ``sign(u)``. Ours: with
``code_norm`` (default) a ``BatchNorm1d(K)`` follows the linear layer. The paper starts from an
ImageNet-pretrained CNN-F; trained from scratch, the small CNN's features are nearly constant
across images at initialisation, and the pairwise loss then drives every image to one and the
same code within the first epoch (on MNIST-5k, 12 bits, 3 epochs: validation mAP 0.21 = one
constant code without it, 0.78 with it). ``code_norm=False`` gives the paper's plain layer.

Loss (the paper's, with our normalisation):

- pairwise likelihood, ``Theta_ij = 1/2 u_i^T u_j``, ``p(S_ij = 1) = sigmoid(Theta_ij)``, with
  ``S_ij = 1`` when items i and j share a label:
  ``mean_ij [log(1 + exp(Theta_ij)) - S_ij Theta_ij]`` (:func:`~hashrepro.models.common.
  pairwise_likelihood`, shared with the cross-modal models);
- quantization ``eta * mean ||u - sign(u)||^2`` (:func:`~hashrepro.models.common.
  quantization_loss`, ``sign`` detached).

Pairs (``memory``): like the authors' code, a memory ``U`` holds the latest (detached) code of
every training item seen so far (:class:`~hashrepro.models.common.CodeMemory`, sized by
``num_items``); each batch is compared against all of ``U`` (with the batch's own rows refreshed
first), so every step sees every pair of the training set, and gradients flow through the batch
codes only. ``memory=False`` uses the pairs within the batch instead (both sides live, the
diagonal i = j left out). The memory is not saved in checkpoints: it is training state only,
and is refilled as batches are seen.

First epoch: the authors' ``U`` starts as N zero rows, so while it fills, the likelihood is
averaged over all N training items, the unseen ones contributing ``log 2`` and no gradient.
With ``num_train = N`` this model does the same; with ``num_train=None`` it averages over the
items seen so far, which makes the first epoch's likelihood gradient larger by N / seen. That
difference matters: on MNIST-5k (48 bits, the Table 2 budget of 4 epochs, seeds 0-2) the
authors' form reached a higher validation mAP on every seed (see ``docs/methods.md``), so
``experiments/dpsh_mnist5k.yaml`` sets ``num_train``. After the first epoch the two agree.

Normalisation: both terms are means (over pairs, and over code elements), so ``eta`` is not the
paper's value on summed terms. The default ``eta = 0.1`` is that of a public PyTorch
re-implementation using the same mean normalisation (TreezzZ/DPSH_PyTorch); it was not tuned
here.
"""

from __future__ import annotations

import math

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

import hashrepro.models.backbones  # noqa: F401  (backbones by short class name in YAML)
from hashrepro.models.base import HashingModule, default_optimizer
from hashrepro.models.common import (
    CodeMemory,
    label_similarity,
    pairwise_likelihood,
    quantization_loss,
)

__all__ = ["DPSH", "DPSHLoss", "DPSHNet"]


class DPSHNet(nn.Module):
    """Backbone -> ``Linear(out_features, K)`` (-> ``BatchNorm1d``): relaxed codes (B, K).

    Args:
        backbone: feature extractor with an int ``out_features`` attribute.
        num_bits: code length K.
        code_norm: follow the linear layer with ``BatchNorm1d(K)`` (see the module docstring).

    """

    def __init__(self, backbone: nn.Module, num_bits: int, code_norm: bool = True) -> None:
        super().__init__()
        in_features = getattr(backbone, "out_features", None)
        if not isinstance(in_features, int):
            raise TypeError(
                f"the backbone {type(backbone).__name__} needs an int 'out_features' attribute"
            )
        self.backbone = backbone
        self.hash = nn.Linear(in_features, num_bits)
        self.norm: nn.Module = nn.BatchNorm1d(num_bits) if code_norm else nn.Identity()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Codes (B, K) of (B, C, H, W) images."""
        return self.norm(self.hash(self.backbone(images)))


class DPSHLoss(nn.Module):
    """``likelihood + eta * quantization`` on relaxed codes; see the module docstring.

    Args:
        eta: weight of the quantization term (0 leaves it out of the total).
        scale: the inner-product factor of ``Theta`` (1/2 in DPSH).

    ``forward(codes, labels, other_codes=None, other_labels=None, num_rows=None)`` returns
    ``(total, terms)``; without ``other_*`` the pairs are those within the batch (diagonal
    excluded).
    """

    def __init__(self, eta: float = 0.1, scale: float = 0.5) -> None:
        super().__init__()
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        self.eta = float(eta)
        self.scale = scale

    def forward(
        self,
        codes: torch.Tensor,
        labels: torch.Tensor,
        other_codes: torch.Tensor | None = None,
        other_labels: torch.Tensor | None = None,
        num_rows: int | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and ``{"likelihood", "quantization"}`` (unweighted).

        Args:
            codes: (B, K) relaxed codes of the batch.
            labels: (B, C) multi-hot labels of the batch.
            other_codes: (M, K) codes to pair the batch with (e.g. the memory), or ``None``.
            other_labels: (M, C) their labels.
            num_rows: average the likelihood over this many rows (>= M), the ones beyond the
                M given being zero codes (``Theta = 0``: ``log 2`` each, no gradient), as the
                authors' memory of N rows before it is filled. ``None``: over the M rows.

        """
        if (other_codes is None) != (other_labels is None):
            raise ValueError("give both other_codes and other_labels, or neither")
        if other_codes is None:
            sim = label_similarity(labels, labels)  # (B, B)
            off_diagonal = ~torch.eye(len(codes), dtype=torch.bool, device=codes.device)
            like = pairwise_likelihood(codes, codes, sim, self.scale, off_diagonal)
        else:
            sim = label_similarity(labels, other_labels)  # (B, M)
            like = pairwise_likelihood(codes, other_codes, sim, self.scale)
            if num_rows is not None:
                seen = other_codes.shape[0]
                if num_rows < seen:
                    raise ValueError(
                        f"num_train={num_rows} but {seen} training items were seen; set it to "
                        "the size of the training set"
                    )
                like = (seen * like + (num_rows - seen) * math.log(2)) / num_rows
        quant = quantization_loss(codes)
        total = like + self.eta * quant if self.eta > 0 else like
        return total, {"likelihood": like, "quantization": quant.detach()}


class DPSH(HashingModule):
    """Deep pairwise-supervised hashing (Li, Wang & Kang, IJCAI 2016) on any backbone.

    Args:
        backbone: feature extractor with an ``out_features`` attribute (``SmallCNN``, ...).
        num_bits: code length K.
        num_items: number of items of the whole dataset (largest ``index`` + 1), the size of
            the memory; the CLI links it from the DataModule. Needed when ``memory`` is set.
        eta: weight of the quantization term (mean-normalised; see the module docstring).
        memory: pair each batch with the memory of all training codes (DPSH's code, default)
            or only with the batch itself.
        num_train: number N of training items: while the memory fills, the likelihood is
            averaged over N rows as in the authors' code (see the module docstring); ``None``
            averages over the items seen so far.
        code_norm: ``BatchNorm1d`` on the K outputs (ours, for training from scratch).
        scale: inner-product factor of ``Theta`` (1/2 in DPSH).
        variant: configuration tag.
        optimizer: optimizer factory (YAML ``class_path``).
        scheduler: optional LR scheduler factory.

    """

    def __init__(
        self,
        backbone: nn.Module,
        num_bits: int,
        num_items: int | None = None,
        eta: float = 0.1,
        memory: bool = True,
        num_train: int | None = None,
        scale: float = 0.5,
        code_norm: bool = True,
        variant: str = "dpsh",
        optimizer: OptimizerCallable = default_optimizer,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(num_bits, variant=variant, optimizer=optimizer, scheduler=scheduler)
        self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler"])
        self.net = DPSHNet(backbone, num_bits, code_norm)
        self.loss = DPSHLoss(eta, scale)
        self.memory: CodeMemory | None = None
        if memory:
            if num_items is None:
                raise ValueError(
                    "DPSH's memory needs num_items, the dataset size (the CLI links it from "
                    "the data); pass it, or memory=False"
                )
            self.memory = CodeMemory(num_items, num_bits, persistent=False)
        if num_train is not None and num_train < 1:
            raise ValueError(f"num_train must be a positive int or None, got {num_train}")
        self.num_train = num_train
        self._num_train_checked = False

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Relaxed codes (B, K) of (B, C, H, W) images."""
        return self.net(images)

    def encode(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"image": u}``: the (B, K) relaxed codes, whose sign is the hash."""
        return {"image": self.net(batch["image"])}

    def compute_loss(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of a batch (updates the memory first when there is one)."""
        codes = self.net(batch["image"])  # (B, K)
        labels = batch["label"].float()  # (B, C)
        if self.memory is None:
            return self.loss(codes, labels)
        index = torch.as_tensor(batch["index"], device=codes.device)
        self.memory.update(index, labels=labels, image=codes)
        other_codes, other_labels = self.memory.stored("image")
        return self.loss(codes, labels, other_codes, other_labels, num_rows=self.num_train)

    def on_train_epoch_end(self) -> None:
        """After the first epoch, warn if ``num_train`` is not the number of items it saw."""
        if self.memory is None or self.num_train is None or self._num_train_checked:
            return
        self._num_train_checked = True
        seen = int(self.memory.seen.sum())
        if seen != self.num_train:
            rank_zero_warn(
                f"DPSH: num_train={self.num_train} but the first epoch saw {seen} training items; "
                f"the likelihood stays scaled by {seen}/{self.num_train}: set num_train to the "
                "size of the training set"
            )

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Loss of a batch; logs ``train/loss``, ``train/likelihood``, ``train/quantization``."""
        total, terms = self.compute_loss(batch)
        bs = batch["image"].shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=bs)
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, batch_size=bs)
        return total
