from __future__ import annotations

import runpy
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch
from fake_formats import write_cifar

from hashrepro.cli import main, make_cli

FAST = ["--trainer.logger", "false", "--data.init_args.split_dir", "splits"]


def test_fit_validates_tests_and_logs_map(repo: Path, in_tmp: Path) -> None:
    config = str(repo / "tests/configs/tiny_digits.yaml")
    cli = main(["fit", "--config", config, *FAST])
    metrics = cli.trainer.callback_metrics  # after fit, the test of the best checkpoint
    for key in ("test/mAP_i2i", "test/mAP", "test/bit_imbalance_image", "test/bit_corr_image"):
        assert key in metrics, key
    assert 0.0 < float(metrics["test/mAP_i2i"]) <= 1.0
    ckpt = cli.trainer.checkpoint_callback
    assert ckpt.monitor == "val/mAP" and ckpt.best_model_score is not None
    assert ckpt.best_model_path and Path(ckpt.best_model_path).exists()
    assert list((in_tmp / "splits").glob("digits_default_seed0_*.npz"))
    # validating the best checkpoint gives back the score it was selected on
    val = main(["validate", "--config", config, *FAST, "--ckpt_path", ckpt.best_model_path])
    val_metrics = val.trainer.callback_metrics
    assert "val/mAP_i2i" in val_metrics
    assert float(val_metrics["val/mAP"]) == pytest.approx(float(ckpt.best_model_score))
    # `test` from the checkpoint reproduces the figure reported after fit
    again = main(["test", "--config", config, *FAST, "--ckpt_path", ckpt.best_model_path])
    assert float(again.trainer.callback_metrics["test/mAP_i2i"]) == pytest.approx(
        float(metrics["test/mAP_i2i"])
    )


def test_fast_dev_run_cross_modal(repo: Path, in_tmp: Path) -> None:
    cli = main(
        [
            "fit",
            "--config",
            str(repo / "tests/configs/tiny_mfeat.yaml"),
            *FAST,
            "--trainer.fast_dev_run",
            "true",
        ]
    )
    metrics = cli.trainer.callback_metrics
    assert {"test/mAP_i2t", "test/mAP_t2i"} <= set(metrics)


def test_wandb_offline_run_is_grouped_and_tagged(repo: Path, in_tmp: Path) -> None:
    import wandb

    wandb.finish()  # close any run an earlier test in this process left open
    cli = main(
        [
            "fit",
            "--config",
            str(repo / "tests/configs/tiny_digits.yaml"),
            "--data.init_args.split_dir",
            "splits",
            "--trainer.max_epochs",
            "1",
            "--trainer.logger.init_args.save_dir",
            str(in_tmp),
        ]
    )
    run = cli.trainer.logger.experiment
    assert run.offline and run.settings.mode == "offline"
    assert run.group == "Digits-16bits"
    assert {"Digits", "TinyHasher", "proposed", "16bits"} <= set(run.tags)
    assert run.name == "TinyHasher-proposed-Digits-16b-seed0"
    summary = dict(run.summary)
    assert "val/mAP_i2i" in summary and "test/mAP_i2i" in summary
    wandb.finish()
    assert len(list((in_tmp / "wandb").glob("offline-run-*/run-*.wandb"))) == 1


@pytest.mark.parametrize("argv", [["--help"], ["fit", "--help"]])
def test_help(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    assert "--config" in capsys.readouterr().out


def printed_config(config: Path, capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(config), "--print_config"])
    return capsys.readouterr().out


def test_print_config_resolves_short_names(repo: Path, capsys: pytest.CaptureFixture) -> None:
    out = printed_config(repo / "tests/configs/tiny_digits.yaml", capsys)
    assert "class_path: hashrepro.data.Digits" in out
    assert "evaluator:" in out and "monitor: val/mAP" in out


def test_console_entry_points(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``python -m hashrepro`` runs here; the console scripts are checked, one is started."""
    monkeypatch.setattr(sys, "argv", ["hashrepro", "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("hashrepro", run_name="__main__")
    assert exit_.value.code == 0 and "fit" in capsys.readouterr().out
    scripts = {
        ep.name: ep.value
        for ep in entry_points(group="console_scripts")
        if ep.name in ("hashrepro", "lightning") and ep.dist and ep.dist.name == "hashrepro"
    }
    assert scripts == {"hashrepro": "hashrepro.cli:main", "lightning": "hashrepro.cli:main"}
    exe = Path(sys.executable).parent / "hashrepro"
    if not exe.exists():
        pytest.skip("hashrepro console script not installed (run `make install`)")
    done = subprocess.run([str(exe), "fit", "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--config" in done.stdout


def test_corrupt_data_file_is_one_line_from_the_shell(
    repo: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    write_cifar(in_tmp / "cifar")
    bad = in_tmp / "cifar" / "cifar-10-batches-py" / "data_batch_4"
    bad.write_bytes(b"junk, not a pickle")
    config = str(repo / "experiments/hashcnn_cifar10.yaml")
    argv = ["hashrepro", "fit", "--config", config, "--data.init_args.root", str(in_tmp / "cifar")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        main()  # as from the shell
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"error: CIFAR10: cannot read {bad} as a pickled CIFAR-10 batch")
    assert not list(in_tmp.rglob("offline-run-*"))  # no W&B run was opened


def test_missing_paper_data_fails_before_training(repo: Path, in_tmp: Path) -> None:
    config = str(repo / "experiments/hashcnn_cifar10.yaml")
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py") as err:
        main(["fit", "--config", config, "--data.init_args.root", str(in_tmp / "nowhere")])
    assert "data_batch_1" in str(err.value) and "\n" not in str(err.value)
    assert not list(in_tmp.rglob("offline-run-*"))  # no W&B run was opened


# ------------------------------------------------------------------ links: data -> model sizes
DIGITS = ["--data", "Digits", "--data.init_args.split_dir", "null", "--trainer.logger", "false"]


def schedule_of(cli) -> torch.optim.lr_scheduler.LRScheduler:
    return cli.model.configure_optimizers()["lr_scheduler"]


def test_max_epochs_sets_the_cosine_schedule_length(repo: Path) -> None:
    config = ["--config", str(repo / "experiments/hashcnn_mnist5k.yaml"), *DIGITS]
    assert schedule_of(make_cli(config, run=False)).T_max == 12  # the config's max_epochs
    cli = make_cli([*config, "--trainer.max_epochs", "3"], run=False)
    assert cli.trainer.max_epochs == 3 and schedule_of(cli).T_max == 3


@pytest.mark.parametrize(
    ("data", "multilabel"), [("Digits", False), ("tiny_data.MultiLabelDigits", True)]
)
def test_num_classes_and_label_kind_come_from_the_data(
    repo: Path, data: str, multilabel: bool
) -> None:
    config = str(repo / "experiments/hashcnn_mnist5k.yaml")
    cli = make_cli(["--config", config, *DIGITS, "--data", data], run=False)
    assert cli.model.hparams.num_classes == 10 and cli.model.net.classifier.out_features == 10
    assert cli.model.loss.multilabel is multilabel


def test_num_items_sizes_the_code_memory(repo: Path) -> None:
    cli = make_cli(["--config", str(repo / "experiments/dpsh_mnist5k.yaml"), *DIGITS], run=False)
    assert cli.model.memory.num_items == len(cli.datamodule.data.labels) == 1797
    mfeat = ["--config", str(repo / "experiments/cmh_mfeat.yaml"), *DIGITS[2:]]
    assert make_cli(mfeat, run=False).model.memory.num_items == 2000


EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
STANDALONE = sorted(
    p.name for p in EXPERIMENTS.glob("*.yaml") if "\nmodel:\n  class_path:" in p.read_text()
)
OVERRIDES = [("cmh_mirflickr.yaml", "cmh_mirflickr_dcmh.yaml")]  # the others run in model tests


@pytest.mark.parametrize("configs", [(c,) for c in STANDALONE] + OVERRIDES, ids="+".join)
def test_every_experiment_config_parses(configs: tuple[str, ...], capsys) -> None:
    args = ["fit"] + [a for c in configs for a in ("--config", str(EXPERIMENTS / c))]
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--print_config"])
    assert exit_.value.code in (0, None)
    assert "model:\n  class_path: hashrepro.models." in capsys.readouterr().out


def test_print_config_leaves_linked_values_out(repo: Path, capsys: pytest.CaptureFixture) -> None:
    out = printed_config(repo / "experiments/cmh_mirflickr.yaml", capsys)
    assert "class_path: hashrepro.models.ReconstructHashing" in out
    assert "CosineAnnealingLR" in out and "max_epochs: 100" in out
    assert "num_items" not in out and "T_max" not in out


def test_checkpoint_of_a_model_without_linked_arguments_validates(repo, in_tmp, recwarn) -> None:
    """HashCNN takes no ``num_train`` (a link for DPSH): ``--ckpt_path`` must still work."""
    config = str(repo / "experiments/hashcnn_mnist5k.yaml")
    argv = ["--config", config, "--data", "Digits", *FAST, "--trainer.enable_progress_bar", "false"]
    short = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2"]
    cli = main(["fit", *argv, *short, "--test_after_fit", "false"])
    ckpt = cli.trainer.checkpoint_callback.best_model_path
    hparams = torch.load(ckpt, weights_only=True, map_location="cpu")["hyper_parameters"]
    assert "num_train" not in hparams and hparams["num_bits"] == 48
    val = main(["validate", *argv, "--ckpt_path", ckpt])
    score = cli.trainer.checkpoint_callback.best_model_score
    assert float(val.trainer.callback_metrics["val/mAP"]) == pytest.approx(float(score))
    assert not [w for w in recwarn if "dirpath has changed" in str(w.message)]  # no noise
