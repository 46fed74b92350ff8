"""The prediction writer of ``hashrepro predict``: packed codes of a split to one ``.npz``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from hashrepro.retrieval import pack_codes
from hashrepro.retrieval.codes_file import CodesFile, write_codes


class CodesWriter(BasePredictionWriter):
    """Binarise and pack the codes of every predicted batch, then write one codes file.

    The model's ``predict_step`` returns ``{"codes": {modality: (B, K)}, "label", "index"}``
    (:class:`~hashrepro.models.HashingModule`); codes are packed batch by batch (K / 8 bytes per
    item and modality), and at the end of the epoch the file described in
    :mod:`hashrepro.retrieval.codes_file` is written, with the rows in loader order (the split's
    order). Nothing is written outside ``predict``.

    Args:
        output: path of the ``.npz`` to write.
    """

    def __init__(self, output: str = "codes.npz") -> None:
        super().__init__(write_interval="batch")
        self.output = output
        self._parts: dict[str, list[Any]] = {}

    def on_predict_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start a new collection; predicting from several processes is not supported."""
        if trainer.world_size > 1:
            raise RuntimeError("hashrepro predict writes codes from one process: use devices=1")
        self._parts = {"index": [], "label": []}

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Pack one batch of codes and keep its item indices and labels."""
        codes = prediction["codes"]
        for modality, values in codes.items():
            self._parts.setdefault(f"codes_{modality}", []).append(
                pack_codes(values.detach().float().cpu()).numpy()
            )
        self._parts["index"].append(torch.as_tensor(prediction["index"]).cpu().numpy())
        self._parts["label"].append(prediction["label"].detach().float().cpu().numpy())

    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the codes file."""
        if not self._parts.get("index"):
            return
        codes = {
            key.removeprefix("codes_"): np.concatenate(parts)
            for key, parts in self._parts.items()
            if key.startswith("codes_")
        }
        dm = getattr(trainer, "datamodule", None)
        meta = {
            "model": type(pl_module).__name__,
            "variant": getattr(pl_module, "variant", None),
            "dataset": type(dm).__name__ if dm is not None else None,
            "ckpt_path": trainer.ckpt_path,
        }
        path = write_codes(
            self.output,
            CodesFile(
                n_bits=int(getattr(pl_module, "num_bits", next(iter(codes.values())).shape[1] * 8)),
                codes=codes,
                index=np.concatenate(self._parts["index"]),
                labels=np.concatenate(self._parts["label"]),
                split=getattr(dm, "predict_split", "predict"),
                meta=meta,
            ),
        )
        self._parts = {}
        n = len(next(iter(codes.values())))
        print(f"wrote {n} codes ({', '.join(codes)}) to {Path(path)}")
