"""ReconstructHashing through the CLI: every MultipleFeatures config, and one full run (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hashrepro.cli import main
from hashrepro.models.reconstruct import ReconstructHashing

MAIN = "experiments/cmh_mfeat.yaml"
ABLATIONS = {
    "proposed": [],
    "no-recon": ["experiments/cmh_mfeat_no-recon.yaml"],
    "no-feature-relation": ["experiments/cmh_mfeat_no-feature-relation.yaml"],
    "dcmh": ["experiments/cmh_mfeat_dcmh.yaml"],
}


def config_args(repo: Path, variant: str) -> list[str]:
    args = ["--config", str(repo / MAIN)]
    for extra in ABLATIONS[variant]:
        args += ["--config", str(repo / extra)]
    return args


@pytest.mark.parametrize("variant", list(ABLATIONS))
def test_fast_dev_run(variant: str, repo: Path, in_tmp: Path) -> None:
    cli = main(
        [
            "fit",
            *config_args(repo, variant),
            "--trainer.fast_dev_run",
            "true",
            "--trainer.logger",
            "false",
            "--data.init_args.split_dir",
            str(in_tmp),
            "--test_after_fit",
            "false",
        ]
    )
    model = cli.model
    assert isinstance(model, ReconstructHashing)
    assert model.variant == variant
    metrics = dict(cli.trainer.callback_metrics)
    for key in ("train/loss", "train/likelihood", "val/mAP_i2t", "val/mAP_t2i"):
        assert key in metrics, key
    assert torch.isfinite(metrics["train/loss"])
    assert ("train/reconstruction" in metrics) == (variant in ("proposed", "no-feature-relation"))
    assert ("train/feature_relation" in metrics) == (variant in ("proposed", "no-recon"))
    assert int(model.memory.seen.sum()) == cli.datamodule.batch_size  # one training batch
    if variant == "dcmh":
        assert model.net.decoders is None and model.net.projections is None
    cli.trainer.test(model, datamodule=cli.datamodule, verbose=False)
    assert {"test/mAP_i2t", "test/mAP_t2i"} <= set(cli.trainer.callback_metrics)


@pytest.mark.slow
def test_full_run_beats_chance(repo: Path, in_tmp: Path) -> None:
    cli = main(
        [
            "fit",
            *config_args(repo, "proposed"),
            "--trainer.logger",
            "false",
            "--data.init_args.split_dir",
            str(in_tmp),
        ]
    )
    metrics = cli.trainer.callback_metrics
    # 10 balanced classes: random codes give mAP ~0.1
    assert float(metrics["test/mAP_i2t"]) > 0.5
    assert float(metrics["test/mAP_t2i"]) > 0.5
