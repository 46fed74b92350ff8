"""Optuna pruning for Lightning runs: stop a tuning trial whose validation mAP lags."""

from __future__ import annotations

import lightning.pytorch as pl
import optuna


class Pruning(pl.Callback):
    """Report ``val/mAP`` to an Optuna trial after each validation; stop the trial if pruned."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Report the epoch's score; raise ``TrialPruned`` when the pruner says so."""
        self.trial.report(float(trainer.callback_metrics["val/mAP"]), trainer.current_epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {trainer.current_epoch}")
