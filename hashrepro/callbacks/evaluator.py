"""The retrieval evaluator: gathers codes during validation/test, logs mAP at epoch end."""

from __future__ import annotations

import logging
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only

from hashrepro.callbacks.guard import DivergenceError, learning_rates
from hashrepro.retrieval import ROLES, RetrievalMAPMetric, binarize

log = logging.getLogger(__name__)


class RetrievalEvaluator(Callback):
    """Binarize codes and log retrieval mAP at the end of each validation and test epoch.

    The model's validation/test step returns ``{"codes": {modality: (B, K)}, "label", "index"}``
    (see :class:`~hashrepro.models.HashingModule`); if it returns nothing, the evaluator calls
    ``pl_module.encode(batch)`` itself. Loader 0 holds the queries, loader 1 the items they search.
    For every direction the datamodule declares (``i2i``; ``i2t`` and ``t2i``) it logs
    ``{stage}/mAP_{direction}``, their mean ``{stage}/mAP`` (what checkpoints monitor), and per
    modality the bit statistics of the retrieval set: ``{stage}/bit_imbalance_{m}``, the mean
    |E[b_k]| over bits (0 = balanced), and ``{stage}/bit_corr_{m}``, the mean |correlation| between
    distinct bits (0 = independent).

    Collapsed codes are flagged: ``{stage}/collapsed_{m}`` is 1 when the bit imbalance reaches
    ``collapse_threshold`` (every bit nearly constant, so all codes are nearly equal and mAP says
    little), else 0, and a one-line warning is printed. Non-finite codes stop the run with a
    :class:`~hashrepro.callbacks.guard.DivergenceError`.

    Args:
        topk: rank cut-off R of mAP@R; ``None`` ranks the whole retrieval set.
        ties: ``index`` (stable, database order) or ``average`` (expected AP over tie orders).
        directions: restrict to these direction names; ``None`` takes the datamodule's.
        collapse_threshold: bit imbalance from which the codes count as collapsed.

    """

    def __init__(
        self,
        topk: int | None = None,
        ties: Literal["index", "average"] = "index",
        directions: list[str] | None = None,
        collapse_threshold: float = 0.99,
    ) -> None:
        super().__init__()
        self.topk = topk
        self.collapse_threshold = collapse_threshold
        self.ties = ties
        self.only = directions
        self.directions: list[tuple[str, str, str]] = []
        self.metrics: dict[str, RetrievalMAPMetric] = {}
        self.moments: dict[str, list[torch.Tensor]] = {}

    # ----------------------------------------------------------------- state
    def reset(self, directions: list[tuple[str, str, str]], device: torch.device) -> None:
        """Start a new epoch's collection for the given (name, query mod, database mod)."""
        if self.only is not None:
            directions = [d for d in directions if d[0] in self.only]
        self.directions = directions
        self.metrics = {
            name: RetrievalMAPMetric(topk=self.topk, ties=self.ties).to(device)
            for name, _, _ in directions
        }
        self.moments = {}

    def update(self, codes: dict[str, torch.Tensor], batch: dict[str, Any], role: str) -> None:
        """Add one batch of codes for ``role`` (``query`` or ``database``)."""
        labels, index = batch["label"], torch.as_tensor(batch["index"])
        for name, q_mod, d_mod in self.directions:
            mod = q_mod if role == "query" else d_mod
            self.metrics[name].update(codes[mod].detach(), labels, role=role, index=index)
        if role == "database":
            for mod in {d for _, _, d in self.directions}:
                b = binarize(codes[mod].detach()).float()  # (B, K)
                stats = [b.new_tensor(float(len(b))), b.sum(0), b.T @ b]
                if mod in self.moments:
                    stats = [a + s for a, s in zip(self.moments[mod], stats, strict=True)]
                self.moments[mod] = stats

    def compute(self, reduce: Any = None) -> dict[str, float]:
        """MAP per direction, their mean and the bit statistics of this epoch."""
        out: dict[str, float] = {}
        for name, metric in self.metrics.items():
            out[f"mAP_{name}"] = float(metric.compute())
        if self.metrics:
            out["mAP"] = sum(out[f"mAP_{n}"] for n in self.metrics) / len(self.metrics)
        for mod, (n, s, ss) in self.moments.items():
            if reduce is not None:
                n, s, ss = reduce(n), reduce(s), reduce(ss)
            mean = s / n  # (K,)
            cov = ss / n - torch.outer(mean, mean)  # (K, K)
            std = cov.diagonal().clamp_min(1e-12).sqrt()
            corr = cov / torch.outer(std, std)
            k = len(mean)
            off = (corr.abs().sum() - corr.diagonal().abs().sum()) / max(k * (k - 1), 1)
            out[f"bit_imbalance_{mod}"] = float(mean.abs().mean())
            out[f"bit_corr_{mod}"] = float(off)
            out[f"collapsed_{mod}"] = float(out[f"bit_imbalance_{mod}"] >= self.collapse_threshold)
        return out

    # ----------------------------------------------------------------- Lightning hooks
    def _start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        dm = getattr(trainer, "datamodule", None)
        directions = getattr(dm, "directions", None) or [("i2i", "image", "image")]
        self.reset(list(directions), pl_module.device)

    def _batch(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        dataloader_idx: int,
    ) -> None:
        if isinstance(outputs, dict) and "codes" in outputs:
            codes = outputs["codes"]
        else:
            with torch.no_grad():
                codes = pl_module.encode(batch)
        for mod, c in codes.items():
            if c.is_floating_point() and not bool(torch.isfinite(c).all()):
                raise DivergenceError(
                    f"the model's {mod} codes contain NaN or infinite values after epoch "
                    f"{trainer.current_epoch} (global step {trainer.global_step}, learning rate "
                    f"{learning_rates(trainer)}): training diverged; lower the learning rate"
                )
        self.update(codes, batch, ROLES[min(dataloader_idx, 1)])

    def _end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not self.metrics:
            return
        values = self.compute(reduce=lambda t: trainer.strategy.reduce(t, reduce_op="sum"))
        for key, value in values.items():
            if key.startswith("collapsed_") and value and not trainer.sanity_checking:
                mod = key.removeprefix("collapsed_")
                when = f" at epoch {trainer.current_epoch}" if stage == "val" else ""
                rank_zero_only(log.warning)(
                    f"warning: {stage} {mod} codes collapsed{when}: bit imbalance "
                    f"{values[f'bit_imbalance_{mod}']:.3f} (every bit nearly constant), so "
                    "their mAP means little; check the learning rate"
                )
            pl_module.log(f"{stage}/{key}", value, prog_bar=key == "mAP", sync_dist=False)
        self.metrics, self.moments = {}, {}

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start collecting validation codes."""
        self._start(trainer, pl_module)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Collect one batch of validation queries or retrieval items."""
        self._batch(trainer, pl_module, outputs, batch, dataloader_idx)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Log ``val/mAP_*`` and the bit statistics."""
        self._end(trainer, pl_module, "val")

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start collecting test codes."""
        self._start(trainer, pl_module)

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Collect one batch of test queries or database items."""
        self._batch(trainer, pl_module, outputs, batch, dataloader_idx)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Log ``test/mAP_*`` and the bit statistics."""
        self._end(trainer, pl_module, "test")
