"""The one thing every hashing LightningModule shares: encode, and hand codes to the evaluator."""

from __future__ import annotations

import inspect
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable


def default_optimizer(params: Any) -> torch.optim.Optimizer:
    """Adam with lr 1e-3, the default when YAML names no optimizer."""
    return torch.optim.Adam(params, lr=1e-3)


class HashingModule(pl.LightningModule):
    """Base of the hashing models: ``encode`` gives real-valued codes per modality.

    The validation and test steps return ``{"codes": encode(batch), "label", "index"}`` so the
    :class:`~hashrepro.callbacks.RetrievalEvaluator` can gather them; the model never computes
    retrieval metrics itself.

    Args:
        num_bits: code length K.
        variant: a short tag naming the configuration (``proposed``, an ablation, ...), used to
            group runs in W&B and in tables.
        optimizer: optimizer factory, configurable from YAML (``class_path: torch.optim.Adam``).
        scheduler: optional LR scheduler factory.

    """

    def __init__(
        self,
        num_bits: int,
        variant: str = "proposed",
        optimizer: OptimizerCallable = default_optimizer,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        if num_bits < 1:
            raise ValueError(f"num_bits must be >= 1, got {num_bits}")
        self.num_bits = num_bits
        self.variant = variant
        self.optimizer = optimizer
        self.scheduler = scheduler

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only the hyperparameters ``__init__`` takes.

        LightningCLI records the value of every link (``num_train``, ``num_items``) among the
        hyperparameters, also where the model has no such argument; read back by ``validate``,
        ``test`` or ``predict --ckpt_path`` they would be unexpected arguments.
        """
        params = inspect.signature(type(self).__init__).parameters
        hparams = checkpoint.get("hyper_parameters")
        if hparams and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            for key in [k for k in hparams if not k.startswith("_") and k not in params]:
                del hparams[key]

    def encode(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Real-valued codes per modality present in ``batch``: ``{modality: (B, K)}``."""
        raise NotImplementedError

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Any]:
        """Encode a batch of queries (loader 0) or retrieval items (loader 1)."""
        return {"codes": self.encode(batch), "label": batch["label"], "index": batch["index"]}

    def test_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Any]:
        """Encode a batch of test queries (loader 0) or database items (loader 1)."""
        return self.validation_step(batch, batch_idx, dataloader_idx)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        """Codes for any batch, e.g. to export a database."""
        return self.validation_step(batch, batch_idx)

    def configure_optimizers(self) -> Any:
        """The YAML-configured optimizer and optional scheduler."""
        opt = self.optimizer(self.parameters())
        if self.scheduler is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": self.scheduler(opt)}
