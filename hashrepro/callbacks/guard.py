"""The run guard: stop a diverged run at once, and tag a run stopped by Ctrl-C.

A run whose loss becomes NaN or infinite used to go on for its whole budget (or die much later,
deep inside the evaluator) and still report a test mAP. :class:`RunGuard` checks the loss of
every training step and raises :class:`DivergenceError`, whose one-line message names the
epoch, the step, the loss and the learning rate. Codes that collapse without a non-finite loss
(every bit nearly constant) are flagged by the evaluator (``{stage}/collapsed_<modality>``).
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback


class DivergenceError(RuntimeError):
    """Training diverged: the loss (or the codes) became NaN or infinite."""


def learning_rates(trainer: pl.Trainer) -> str:
    """The current learning rate(s) of the trainer's optimizers, e.g. ``"0.001"``.

    A scheduled rate also names the initial one (``"0 (initial 1e+06)"``).
    """
    groups = [g for opt in trainer.optimizers for g in opt.param_groups if "lr" in g]
    rates = [
        f"{g['lr']:g}"
        + (f" (initial {g['initial_lr']:g})" if g.get("initial_lr", g["lr"]) != g["lr"] else "")
        for g in groups
    ]
    return ", ".join(dict.fromkeys(rates)) or "unknown"


def step_loss(outputs: Any) -> torch.Tensor | None:
    """The loss a ``training_step`` returned: a tensor or ``{"loss": tensor}``."""
    if isinstance(outputs, dict):
        outputs = outputs.get("loss")
    return outputs if isinstance(outputs, torch.Tensor) else None


class RunGuard(Callback):
    """Raise :class:`DivergenceError` on a non-finite training loss; tag interrupted W&B runs.

    Args:
        check_finite: check every training step's loss (one host sync per step).

    """

    def __init__(self, check_finite: bool = True) -> None:
        super().__init__()
        self.check_finite = check_finite

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Stop at once when the step's loss is NaN or infinite."""
        loss = step_loss(outputs)
        if not self.check_finite or loss is None:
            return
        value = float(loss.detach().float().sum())
        if not math.isfinite(value):
            raise DivergenceError(
                f"training diverged at epoch {trainer.current_epoch}, batch {batch_idx} "
                f"(global step {trainer.global_step}): loss {value}, learning rate "
                f"{learning_rates(trainer)}; lower the learning rate"
            )

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Tag the run's W&B run ``interrupted`` (Ctrl-C) or ``diverged``."""
        if isinstance(exception, KeyboardInterrupt):
            tag = "interrupted"
        elif isinstance(exception, DivergenceError):
            tag = "diverged"
        else:
            return
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                run = logger.experiment
                run.tags = (*run.tags, tag)
                run.summary["stopped"] = tag
