"""HashCNN through the command line: the MNIST-5k config and its ablations on tiny data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from hashrepro.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "experiments" / "hashcnn_mnist5k.yaml"
ABLATIONS = {
    "no-hash-layer": ("relaxed", 1),
    "no-loss-layer": ("proposed", 0),
    "no-both": ("relaxed", 0),
}


def fast_args(tmp_path: Path) -> list[str]:
    """Overrides that run the config on the 8x8 Digits for one batch, without logging."""
    return [
        "--data.class_path",
        "Digits",
        "--data.init_args.split_dir",
        str(tmp_path / "splits"),
        "--trainer.fast_dev_run",
        "true",
        "--trainer.logger",
        "false",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.enable_progress_bar",
        "false",
    ]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["hashrepro"])  # main() gets its args explicitly


def test_mnist5k_config_runs_fit_and_test(tmp_path):
    cli = main(["fit", "--config", str(CONFIG), *fast_args(tmp_path)])
    model = cli.model
    assert type(model).__name__ == "HashCNN"
    assert model.variant == "proposed" and model.num_bits == 48
    assert model.net.hash.mode == "proposed"
    assert model.loss.multilabel is False  # resolved from the one-hot training labels
    metrics = cli.trainer.callback_metrics
    assert "test/mAP" in metrics and 0.0 <= float(metrics["test/mAP"]) <= 1.0


@pytest.mark.parametrize("variant", list(ABLATIONS))
def test_ablation_configs_compose(tmp_path, variant):
    ablation = CONFIG.with_name(f"hashcnn_mnist5k_{variant}.yaml")
    args = ["fit", "--config", str(CONFIG), "--config", str(ablation), *fast_args(tmp_path)]
    args += ["--model.init_args.num_bits", "12"]
    cli = main(args)
    model = cli.model
    mode, full_loss = ABLATIONS[variant]
    assert model.variant == variant and model.num_bits == 12
    assert model.net.hash.mode == mode
    extra = [model.loss.weights[k] for k in ("decorrelation", "balance", "quantization")]
    assert (sum(extra) > 0) == bool(full_loss)
    assert "test/mAP" in cli.trainer.callback_metrics


@pytest.mark.slow
def test_mnist5k_full_run_reaches_high_map(tmp_path):
    """The full CPU config (several minutes): test mAP of the checkpoint picked on val mAP."""
    cli = main(
        [
            "fit",
            "--config",
            str(CONFIG),
            "--data.init_args.split_dir",
            str(tmp_path / "splits"),
            "--trainer.default_root_dir",
            str(tmp_path),
            "--trainer.logger",
            "false",
            "--trainer.enable_progress_bar",
            "false",
            "--checkpoint.dirpath",
            str(tmp_path / "checkpoints"),
        ]
    )
    metrics = cli.trainer.callback_metrics
    assert os.path.exists(cli.trainer.checkpoint_callback.best_model_path)
    assert float(metrics["test/mAP"]) > 0.9
