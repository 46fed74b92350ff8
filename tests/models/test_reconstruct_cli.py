"""ReconstructHashing through the CLI: every MultipleFeatures config, the MIRFlickr-25K paper
config on DCMH-format files written by the test, and one full run (slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fake_formats import WIDTH, fake_vgg_f, write_mirflickr

from hashrepro.cli import main, make_cli
from hashrepro.models.backbones import CNNF
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


@pytest.mark.parametrize("variant", list(ABLATIONS))
def test_variants_share_one_wandb_group(variant: str, repo: Path, in_tmp: Path) -> None:
    """Each ablation and DCMH logs to the proposed model's W&B group, tagged by its variant."""
    cli = make_cli(config_args(repo, variant), run=False)  # builds the logger, opens no run
    init = cli.config.trainer.logger.init_args  # what the W&B logger was built with
    assert init.group == "MultipleFeatures-32bits"
    assert {"MultipleFeatures", "ReconstructHashing", variant, "32bits"} <= set(init.tags)
    assert init.name == f"ReconstructHashing-{variant}-MultipleFeatures-32b-seed0"


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


MIRFLICKR = "experiments/cmh_mirflickr.yaml"
# The paper config at toy scale: 48 pairs, a 1/32-width CNN-F, a narrow text net, CPU.
MIRFLICKR_SMALL = [
    "--data.init_args.num_query", "8", "--data.init_args.num_train", "24",
    "--data.init_args.num_val", "4", "--data.init_args.batch_size", "8",
    "--data.init_args.eval_batch_size", "16", "--data.init_args.num_workers", "0",
    "--model.init_args.image_net.init_args.width", str(WIDTH),
    "--model.init_args.text_net.init_args.hidden", "64", "--model.init_args.hash_hidden", "32",
    "--trainer.accelerator", "cpu", "--trainer.logger", "false",
    "--trainer.enable_progress_bar", "false",
]  # fmt: skip


def test_mirflickr_config_end_to_end(repo: Path, in_tmp: Path) -> None:
    """``fit --config experiments/cmh_mirflickr.yaml`` on DCMH files: train, select, test."""
    root = in_tmp / "mirflickr"
    root.mkdir()
    write_mirflickr(root, 48, np.random.default_rng(0))
    weights = in_tmp / "imagenet-vgg-f.mat"
    written = fake_vgg_f(weights, "meta", np.random.default_rng(1))
    cli = main(
        [
            "fit", "--config", str(repo / MIRFLICKR), "--data.init_args.root", str(root),
            "--model.init_args.image_net.init_args.weights", str(weights), *MIRFLICKR_SMALL,
            "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(in_tmp / "run"),
        ]
    )  # fmt: skip
    model, dm = cli.model, cli.datamodule
    cnnf = model.net.backbones["image"]
    assert isinstance(cnnf, CNNF) and dm.image_norm == "cnnf"
    mean = torch.from_numpy(written["mean"].ravel())
    assert torch.equal(cnnf.mean.flatten(), mean)  # read from the .mat file
    assert {len(v) for k, v in dm.split.items() if k in ("query", "train")} == {8, 24}
    assert cli.trainer.current_epoch == 2
    ckpt = cli.trainer.checkpoint_callback
    assert ckpt.monitor == "val/mAP" and Path(ckpt.best_model_path).is_file()  # selected ...
    assert 0.0 < float(ckpt.best_model_score) <= 1.0
    metrics = cli.trainer.callback_metrics
    for key in ("test/mAP_i2t", "test/mAP_t2i"):  # ... then tested
        assert 0.0 < float(metrics[key]) <= 1.0, key


@pytest.mark.parametrize(
    ("main_config", "override"),
    [(MAIN, "experiments/cmh_mfeat_dcmh.yaml"), (MIRFLICKR, "experiments/cmh_mirflickr_dcmh.yaml")],
)
def test_dcmh_configs_use_dcmh_weighting_and_optimiser(
    main_config: str, override: str, repo: Path, in_tmp: Path
) -> None:
    """DCMH's configs: the sum form with gamma = eta = 1, SGD at 10^-1.5, the authors' decay."""
    args = ["--config", str(repo / main_config), "--config", str(repo / override)]
    if main_config == MIRFLICKR:
        root = in_tmp / "mirflickr"
        root.mkdir()
        write_mirflickr(root, 48, np.random.default_rng(0))
        weights = in_tmp / "imagenet-vgg-f.mat"
        fake_vgg_f(weights, "meta", np.random.default_rng(1))
        args += ["--data.init_args.root", str(root)]
        args += ["--model.init_args.image_net.init_args.weights", str(weights), *MIRFLICKR_SMALL]
    cli = make_cli([*args, "--trainer.logger", "false"], run=False)
    criterion = cli.model.criterion
    assert criterion.normalization == "sum"
    assert (criterion.weights["quantization"], criterion.weights["balance"]) == (1.0, 1.0)
    optimizers, schedulers = cli.model.configure_optimizers()
    assert all(type(opt) is torch.optim.SGD for opt in optimizers)
    assert optimizers[0].defaults["lr"] == 0.0316 and optimizers[0].defaults["weight_decay"] == 5e-4
    assert all(type(s) is torch.optim.lr_scheduler.ExponentialLR for s in schedulers)
    assert schedulers[0].gamma == pytest.approx(10 ** (-1.5 / 499), abs=1e-4)


def test_mirflickr_config_without_files(in_tmp: Path, repo: Path) -> None:
    """Without the files the paper config stops at once, naming the data and weight files."""
    args = ["fit", "--config", str(repo / MIRFLICKR), "--data.init_args.root", "nowhere"]
    with pytest.raises(FileNotFoundError) as err:
        main(args)
    msg = str(err.value)
    assert "\n" not in msg
    assert "MIRFlickr25K: missing nowhere/mirflickr25k-iall.mat" in msg
    assert "mirflickr25k-{iall,yall,lall}.mat" in msg and "FLICKR-25K.mat" in msg
    assert "CNN-F weights not found: data/imagenet-vgg-f.mat" in msg
    assert not (in_tmp / "results").exists()  # nothing trained, no W&B run opened
