"""A tiny hashing model for end-to-end tests of the data, CLI and evaluator layers."""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from hashrepro.models.base import HashingModule


class TinyHasher(HashingModule):
    """Linear codes per modality with a classifier on them; trains in seconds."""

    def __init__(
        self,
        num_bits: int = 16,
        num_classes: int = 10,
        image_dim: int = 64,
        text_dim: int = 0,
        variant: str = "proposed",
    ) -> None:
        super().__init__(num_bits=num_bits, variant=variant)
        self.image = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_bits))
        self.text = nn.LazyLinear(num_bits) if text_dim else None
        self.head = nn.Linear(num_bits, num_classes)

    def encode(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        codes = {"image": torch.tanh(self.image(batch["image"]))}
        if self.text is not None and "text" in batch:
            codes["text"] = torch.tanh(self.text(batch["text"]))
        return codes

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        codes = self.encode(batch)
        target = batch["label"].argmax(1)
        loss = sum(nn.functional.cross_entropy(self.head(c), target) for c in codes.values())
        self.log("train/loss", loss)
        return loss


class InterruptAt(Callback):
    """Raises KeyboardInterrupt (as Ctrl-C does) at a given training batch."""

    def __init__(self, batch: int = 1) -> None:
        self.batch = batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.batch:
            raise KeyboardInterrupt


class TinyEncoder(nn.Module):
    """A frozen-encoder stand-in for the feature cache tests: a seeded random projection."""

    def __init__(self, in_features: int = 64, out_features: int = 5, frozen: bool = True) -> None:
        super().__init__()
        self.out_features = out_features
        self.proj = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.flatten(1))
