from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from hashrepro.callbacks import DivergenceError, RetrievalEvaluator, RunGuard


class NaNAt(pl.LightningModule):
    """A linear model whose loss becomes NaN at one training batch."""

    def __init__(self, bad_batch: int) -> None:
        super().__init__()
        self.bad_batch = bad_batch
        self.layer = torch.nn.Linear(3, 1)
        self.seen: list[int] = []

    def training_step(self, batch, batch_idx):
        self.seen.append(batch_idx)
        loss = self.layer(batch[0]).pow(2).mean()
        return loss * float("nan") if batch_idx == self.bad_batch else loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.25)


def test_non_finite_loss_stops_training_at_that_step(tmp_path) -> None:
    data = DataLoader(TensorDataset(torch.randn(40, 3)), batch_size=4)
    model = NaNAt(bad_batch=2)
    trainer = pl.Trainer(
        max_epochs=3,
        callbacks=[RunGuard()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    with pytest.raises(DivergenceError) as err:
        trainer.fit(model, data)
    assert model.seen == [0, 1, 2]  # nothing after the bad step
    message = str(err.value)
    assert "\n" not in message
    assert "epoch 0, batch 2" in message and "loss nan" in message
    assert "learning rate 0.25" in message


def test_evaluator_flags_collapsed_codes() -> None:
    labels = torch.eye(4).repeat(10, 1)  # (40, 4)
    ev = RetrievalEvaluator()
    batch = {"label": labels, "index": torch.arange(40)}
    protos = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    for codes, flag in ((torch.ones(40, 8), 1.0), (labels @ protos, 0.0)):
        ev.reset([("i2i", "image", "image")], torch.device("cpu"))
        ev.update({"image": codes}, batch, "query")
        ev.update({"image": codes}, batch, "database")
        assert ev.compute()["metrics"]["collapsed_image"] == flag
