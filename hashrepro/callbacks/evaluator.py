"""The retrieval evaluator: gathers codes during validation/test, scores them at epoch end."""

from __future__ import annotations

import logging
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from hashrepro.callbacks.guard import DivergenceError, learning_rates
from hashrepro.retrieval import (
    ROLES,
    average_precisions,
    hamming_distance,
    pack_codes,
    precision_at_k,
    precision_recall_curve,
)
from hashrepro.retrieval.metrics import TIES, check_ties
from hashrepro.retrieval.torchmetric import RetrievalCodes

log = logging.getLogger(__name__)
Direction = tuple[str, str, str]  # (name, query modality, database modality)


def bit_statistics(codes: Tensor) -> tuple[float, float]:
    """Imbalance (mean |E[b_k]|) and mean |correlation| of distinct bits of (N, K) ±1 codes."""
    b = codes.double()  # (N, K)
    mean = b.mean(0)  # (K,)
    cov = b.T @ b / len(b) - torch.outer(mean, mean)  # (K, K)
    std = cov.diagonal().clamp_min(1e-12).sqrt()
    corr = cov / torch.outer(std, std)
    k = len(mean)
    off = (corr.abs().sum() - corr.diagonal().abs().sum()) / max(k * (k - 1), 1)
    return float(mean.abs().mean()), float(off)


def direction_report(
    q_codes: Tensor,
    db_codes: Tensor,
    q_labels: Tensor,
    db_labels: Tensor,
    ks: list[int],
    ties: str,
    show: int = 0,
    ap: np.ndarray | None = None,
) -> dict[str, Any]:
    """Every figure of one retrieval direction, for tables and plots.

    Returns:
        ``ap`` (per-query AP over the whole database, for paired tests), ``pr_radius``
        (precision and recall of the Hamming ball of each radius 0..K), ``precision_at_k``
        (``k`` clamped to the database size, precision), ``precision_at_radius2`` and, with
        ``show``, ``shown`` (the positions of ``show`` queries spread over the query set) and
        ``top``: the database positions of their 10 nearest items (ties in database order).
        ``ap`` reuses per-query APs already computed.

    """
    args = (q_codes, db_codes, q_labels, db_labels)
    ap = average_precisions(*args, ties=ties) if ap is None else ap
    precision, recall = precision_recall_curve(*args)
    ks = sorted({min(int(k), len(db_codes)) for k in ks})
    p_at_k = np.atleast_1d(precision_at_k(*args, k=ks, ties=ties))
    out: dict[str, Any] = {
        "ap": [float(a) for a in ap],
        "pr_radius": {"precision": precision.tolist(), "recall": recall.tolist()},
        "precision_at_k": {"k": ks, "precision": [float(p) for p in p_at_k]},
        "precision_at_radius2": float(precision[min(2, len(precision) - 1)]),
    }
    if show:  # queries spread over the query set (it is often sorted by class)
        shown = np.unique(np.linspace(0, len(q_codes) - 1, show).round().astype(int))
        dist = hamming_distance(pack_codes(q_codes[shown]), pack_codes(db_codes))  # (S, N)
        out["shown"] = shown.tolist()
        out["top"] = torch.argsort(dist.long(), dim=1, stable=True)[:, :10].tolist()
    return out


class RetrievalEvaluator(Callback):
    """Binarize codes and score retrieval at the end of each validation and test epoch.

    The model's validation/test step returns ``{"codes": {modality: (B, K)}, "label", "index"}``
    (see :class:`~hashrepro.models.HashingModule`); if it returns nothing, the evaluator calls
    ``pl_module.encode(batch)`` itself. Loader 0 holds the queries, loader 1 the items they
    search. Codes are gathered across processes and deduplicated by item index
    (:class:`~hashrepro.retrieval.torchmetric.RetrievalCodes`), so one process and several give
    the same figures. For every direction the datamodule declares (``i2i``; ``i2t`` and
    ``t2i``) it logs ``{stage}/mAP_{direction}`` with the ``ties`` mode, the same under both
    tie modes as ``{stage}/mAP_{direction}_index`` and ``..._average``, their mean
    ``{stage}/mAP`` (what checkpoints monitor), and per modality the bit statistics of the
    retrieval set: ``{stage}/bit_imbalance_{m}``, the mean |E[b_k]| over bits (0 = balanced),
    and ``{stage}/bit_corr_{m}``, the mean |correlation| between distinct bits (0 =
    independent).

    Collapsed codes are flagged: ``{stage}/collapsed_{m}`` is 1 when the bit imbalance reaches
    ``collapse_threshold`` (every bit nearly constant, so all codes are nearly equal and mAP says
    little), else 0, and a one-line warning is printed. Non-finite codes stop the run with a
    :class:`~hashrepro.callbacks.guard.DivergenceError`.

    After each epoch ``results[stage]`` holds the logged values (``metrics``) and, for the test
    stage, a :func:`direction_report` per direction (``directions``): what Table 2 records.

    Args:
        topk: rank cut-off R of mAP@R; ``None`` ranks the whole retrieval set.
        ties: ``average`` (default: the expected AP over random orders of tied items, He et
            al. CVPR 2018) or ``index`` (stable, database order): the headline ``mAP`` and what
            checkpoints select on. Both are logged either way.
        directions: restrict to these direction names; ``None`` takes the datamodule's.
        collapse_threshold: bit imbalance from which the codes count as collapsed.
        ks: cut-offs of the test report's precision@K.
        show: queries whose top-10 the test report keeps (for retrieval pictures).

    """

    def __init__(
        self,
        topk: int | None = None,
        ties: Literal["index", "average"] = "average",
        directions: list[str] | None = None,
        collapse_threshold: float = 0.99,
        ks: list[int] | None = None,
        show: int = 8,
    ) -> None:
        super().__init__()
        check_ties(ties)
        self.topk = topk
        self.ties = ties
        self.only = directions
        self.collapse_threshold = collapse_threshold
        self.ks = list(ks) if ks is not None else [1, 10, 50, 100, 500, 1000]
        self.show = show
        self.directions: list[Direction] = []
        self.codes: RetrievalCodes | None = None
        self.results: dict[str, dict[str, Any]] = {}

    # ----------------------------------------------------------------- state
    def reset(self, directions: list[Direction], device: torch.device) -> None:
        """Start a new epoch's collection for the given (name, query mod, database mod)."""
        if self.only is not None:
            directions = [d for d in directions if d[0] in self.only]
        self.directions = directions
        modalities = tuple(dict.fromkeys(m for _, q, d in directions for m in (q, d)))
        self.codes = RetrievalCodes(modalities).to(device)

    def update(self, codes: dict[str, Tensor], batch: dict[str, Any], role: str) -> None:
        """Add one batch of codes for ``role`` (``query`` or ``database``)."""
        assert self.codes is not None, "call reset() first"
        detached = {m: c.detach() for m, c in codes.items()}
        index = torch.as_tensor(batch["index"])
        position = batch.get("position")  # the split's order (DataModules give it)
        self.codes.update(detached, batch["label"], index, role, position)

    def compute(self, report: bool = False) -> dict[str, Any]:
        """The epoch's figures: ``metrics`` (scalars) and, with ``report``, ``directions``."""
        assert self.codes is not None, "call reset() first"
        items = self.codes.compute()  # gathered across processes, deduplicated
        metrics: dict[str, float] = {}
        reports: dict[str, Any] = {}
        for name, q_mod, d_mod in self.directions:
            args = (
                items[f"query/{q_mod}"],
                items[f"database/{d_mod}"],
                items["query/label"],
                items["database/label"],
            )
            aps = {t: average_precisions(*args, topk=self.topk, ties=t) for t in TIES}
            for ties, ap in aps.items():
                metrics[f"mAP_{name}_{ties}"] = float(ap.mean())
            metrics[f"mAP_{name}"] = metrics[f"mAP_{name}_{self.ties}"]
            if report:
                whole = aps[self.ties] if self.topk is None else None
                reports[name] = direction_report(*args, self.ks, self.ties, self.show, whole)
                shown = reports[name].pop("shown", [])
                reports[name]["query_index"] = [int(items["query/index"][i]) for i in shown]
                reports[name]["database_index"] = [
                    [int(items["database/index"][j]) for j in row]
                    for row in reports[name].pop("top", [])
                ]
        if self.directions:
            maps = [metrics[f"mAP_{n}"] for n, _, _ in self.directions]
            metrics["mAP"] = sum(maps) / len(maps)
        for mod in dict.fromkeys(d for _, _, d in self.directions):
            imbalance, corr = bit_statistics(items[f"database/{mod}"])
            metrics[f"bit_imbalance_{mod}"] = imbalance
            metrics[f"bit_corr_{mod}"] = corr
            metrics[f"collapsed_{mod}"] = float(imbalance >= self.collapse_threshold)
        return {"metrics": metrics, "directions": reports}

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
        if self.codes is None:
            return
        result = self.compute(report=stage == "test")
        self.results[stage] = result
        values = result["metrics"]
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
        self.codes = None

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
        """Log ``test/mAP_*``, the bit statistics, and keep the test report."""
        self._end(trainer, pl_module, "test")
