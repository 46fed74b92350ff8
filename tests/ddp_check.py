"""Two-process CPU DDP checks, run by ``tests/test_ddp.py`` (``ddp_check.py OUT WEIGHTS``).

Lightning's DDP launcher starts this script again for rank 1; both ranks run the same steps and
rank 0 writes the results to OUT (JSON). The functions also run in one process, in the test,
for the reference figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from hashrepro.callbacks import RetrievalEvaluator
from hashrepro.data import Digits, MultipleFeatures
from hashrepro.models import DPSH, ReconstructHashing
from hashrepro.models.backbones import SmallCNN, TextMLP


def trainer(devices: int, root: Path, **kwargs: Any) -> pl.Trainer:
    """A CPU trainer: 2 processes with gloo DDP, or 1."""
    return pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
        **kwargs,
    )


def dpsh() -> DPSH:
    """DPSH on the digits."""
    return DPSH(SmallCNN(in_channels=1, out_features=64, batch_norm=True), 16, num_items=1797)


def digits(batch_size: int) -> Digits:
    # 31 validation queries and batches of 16: the sampler pads the last shard with a repeat
    return Digits(
        num_query=50, num_train=320, num_val=31, split_dir=None, sampling="random",
        batch_size=batch_size, eval_batch_size=16,
    )  # fmt: skip


def evaluation(devices: int, root: Path, weights: Path) -> dict[str, Any]:
    """Validate and test the DPSH ``weights`` with both tie modes: the logged figures."""
    out = {}
    for ties in ("index", "average"):
        pl.seed_everything(0)
        ev = RetrievalEvaluator(ties=ties)
        t = trainer(devices, root, callbacks=[ev])
        model, dm = dpsh(), digits(32)
        model.load_state_dict(torch.load(weights))
        t.validate(model, dm, verbose=False)
        t.test(model, dm, verbose=False)
        for stage in ("val", "test"):
            out[f"{ties}/{stage}"] = ev.results[stage]["metrics"]
    return out


def memory_sync(devices: int, root: Path) -> dict[str, Any]:
    """A few DDP steps of DPSH and ReconstructHashing: are the memories the same on every rank?"""
    out: dict[str, Any] = {}
    pl.seed_everything(0)
    t = trainer(devices, root, max_epochs=1, limit_train_batches=3, limit_val_batches=0)
    model = dpsh()
    t.fit(model, digits(16))
    out["dpsh"] = compare(t, model.memory, ("image", "labels", "seen"))
    pl.seed_everything(0)
    dm = MultipleFeatures(num_query=100, num_train=200, num_val=20, split_dir=None, batch_size=16)
    cmh = ReconstructHashing(
        SmallCNN(in_channels=1, out_features=32, batch_norm=True),
        TextMLP(409, hidden=64),
        num_items=2000,
        num_bits=16,
        hash_hidden=32,
        feature_dim=16,
    )
    t = trainer(devices, root, max_epochs=1, limit_train_batches=3, limit_val_batches=0)
    t.fit(cmh, dm)
    out["cmh"] = compare(t, cmh.memory, ("image", "text", "binary", "labels", "seen"))
    return out


def compare(t: pl.Trainer, memory: torch.nn.Module, names: tuple[str, ...]) -> dict[str, Any]:
    """Whether every rank holds the same buffers, and how many items they hold."""
    same = True
    for name in names:
        buf = getattr(memory, name).float()
        every = t.strategy.all_gather(buf)  # (world, ...) or buf itself in one process
        if every.dim() > buf.dim():
            same &= bool((every == every[0]).all())
    return {"same_on_every_rank": same, "seen": int(memory.seen.sum())}


def short_run(devices: int, root: Path, save: Path | None = None, epochs: int = 4) -> float:
    """Validation mAP of DPSH after a few epochs, with the same global batch (64); ``save``
    keeps the trained weights."""
    pl.seed_everything(0)
    ev = RetrievalEvaluator()
    t = trainer(devices, root, max_epochs=epochs, callbacks=[ev])
    dm = Digits(num_query=50, num_train=1000, num_val=100, split_dir=None, batch_size=64 // devices)
    model = dpsh()
    t.fit(model, dm)
    if save is not None:
        torch.save(model.state_dict(), save)
    return ev.results["val"]["metrics"]["mAP"]


if __name__ == "__main__":  # python ddp_check.py OUT.json (WEIGHTS.pt | --short-run)
    target, root = Path(sys.argv[1]), Path(sys.argv[1]).parent
    if sys.argv[2] == "--short-run":
        results: dict[str, Any] = {"short_run": short_run(2, root)}
    else:
        results = {
            "evaluation": evaluation(2, root, Path(sys.argv[2])),
            "memory": memory_sync(2, root),
        }
    if int(torch.distributed.get_rank()) == 0:
        target.write_text(json.dumps(results))
