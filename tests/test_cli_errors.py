"""The command line as a shell user meets it: exit status, one-line errors, where runs write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import wandb
import yaml

from hashrepro.callbacks import DivergenceError
from hashrepro.cli import main

TINY = "tests/configs/tiny_digits.yaml"
HASHCNN = "experiments/hashcnn_mnist5k.yaml"


def shell(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, argv: list[str]):
    """``main()`` as the console script calls it (args from sys.argv): (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["hashrepro", *argv])
    with pytest.raises(SystemExit) as exit_:
        sys.exit(main())
    return exit_.value.code, capsys.readouterr().err


def test_console_script_exits_0_and_writes_only_under_results(repo: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "hashrepro"
    if not exe.exists():
        pytest.skip("the hashrepro console script is not installed (run `make install`)")
    env = {**os.environ, "PYTHONPATH": str(repo / "tests"), "WANDB_MODE": "offline"}
    env.pop("WANDB_DIR", None)  # W&B files go into the run directory
    argv = ["fit", "--config", str(repo / TINY), "--trainer.max_epochs", "1"]
    done = subprocess.run([str(exe), *argv], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "HashreproCLI object" not in output
    assert "Tip:" not in output and "anonymous setting" not in output and "LeafSpec" not in output
    # the test summary: one column, every metric once, names in full
    assert done.stdout.count("test/mAP_i2i ") == 1 and "DataLoader 1" not in output
    assert "test/bit_imbalance_image " in done.stdout
    assert sorted(os.listdir(tmp_path)) == ["results"]
    (run,) = (tmp_path / "results/runs").glob("TinyHasher-proposed-Digits-16b-seed0/*-fit")
    assert (run / "config.yaml").exists() and list((run / "checkpoints").glob("best-*.ckpt"))
    assert list((run / "wandb").glob("offline-run-*"))
    assert list((tmp_path / "results/splits").glob("digits_*.npz"))


def test_each_run_gets_its_own_directory(repo: Path, in_tmp: Path) -> None:
    argv = ["fit", "--config", str(repo / TINY), "--trainer.max_epochs", "1"]
    argv += ["--trainer.logger", "false", "--test_after_fit", "false"]
    first, second = main(argv), main(argv)
    dirs = [Path(c.trainer.default_root_dir) for c in (first, second)]
    assert dirs[0] != dirs[1] and all(d.parent == dirs[0].parent for d in dirs)
    for d in dirs:
        assert (d / "config.yaml").exists()
        assert [p.name for p in (d / "checkpoints").glob("*.ckpt")] != []
        assert not list((d / "checkpoints").glob("*-v1.ckpt"))  # nothing piles up
    assert sorted(os.listdir(in_tmp)) == ["results"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--trainer.max_epochz", "3"], "did you mean --trainer.max_epochs"),
        (["--model", "HashCNNN"], "unknown model class 'HashCNNN'; available: "),
        (["--data.class_path", "Fashion"], "unknown data class 'Fashion'; available: "),
        (["--model.init_args.hash_layer", "binary"], "model.init_args.hash_layer: Expected"),
        (["--model.init_args.num_bits", "0"], "num_bits must be >= 1, got 0"),
        (["--trainer.max_epochs", "abc"], "trainer.max_epochs: expected int or null, got 'abc'"),
        (["--data.init_args.num_query", "7"], "num_query=7 is not divisible by the 10 classes"),
    ],
)
def test_configuration_errors_are_one_line_exit_2(
    extra: list[str], expected: str, repo: Path, in_tmp: Path, monkeypatch, capsys
) -> None:
    argv = ["fit", "--config", str(repo / HASHCNN), "--data", "Digits", "--trainer.logger", "false"]
    code, err = shell(monkeypatch, capsys, argv + extra)
    assert code == 2
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and expected in errors[0], err
    assert "Traceback" not in err and "usage:" not in err
    if "available" in expected:
        assert ("HashCNN" in errors[0]) if "model" in expected else ("Digits" in errors[0])


def test_missing_data_from_the_shell_is_one_line_exit_2(repo, in_tmp, monkeypatch, capsys):
    argv = ["fit", "--config", str(repo / "experiments/hashcnn_cifar10.yaml")]
    code, err = shell(monkeypatch, capsys, [*argv, "--data.init_args.root", "nowhere"])
    assert code == 2 and err.count("\n") == 1 and "data_batch_1" in err


def test_collapsed_codes_are_flagged_and_warned(repo, in_tmp, caplog) -> None:
    argv = ["fit", "--config", str(repo / HASHCNN), "--data", "Digits", "--trainer.logger", "false"]
    argv += ["--model.init_args.optimizer.init_args.lr", "1e6", "--trainer.max_epochs", "1"]
    cli = main(argv)  # the loss stays finite, but every bit becomes constant
    assert float(cli.trainer.callback_metrics["test/collapsed_image"]) == 1.0
    assert any("codes collapsed" in r.getMessage() for r in caplog.records)


def test_divergence_stops_at_once_with_one_line(repo, in_tmp, monkeypatch, capsys) -> None:
    argv = ["fit", "--config", str(repo / HASHCNN), "--data", "Digits", "--trainer.logger", "false"]
    argv += ["--model.init_args.optimizer.init_args.lr", "1e6", "--trainer.max_epochs", "3"]
    argv += ["--model.init_args.backbone.init_args.batch_norm", "false"]  # NaN without it
    with pytest.raises(DivergenceError, match=r"global step \d+, learning rate \d"):
        main(argv)
    code, err = shell(monkeypatch, capsys, argv)
    assert code == 1
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "diverged" in line and "epoch" in line and "Traceback" not in err


def test_ctrl_c_tags_the_wandb_run_and_exits_130(repo, in_tmp, monkeypatch, capsys) -> None:
    wandb.finish()
    argv = ["fit", "--config", str(repo / TINY), "--trainer.max_epochs", "2"]
    argv += ["--trainer.callbacks+", "tiny_model.InterruptAt"]
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    assert wandb.run is not None and "interrupted" in wandb.run.tags
    wandb.finish()
    code, err = shell(monkeypatch, capsys, argv)
    wandb.finish()
    assert code == 130 and err.strip().splitlines()[-1].startswith("interrupted:")
    assert "Traceback" not in err


def test_no_config_hides_the_progress_bar(repo: Path) -> None:
    """Cross-modal runs used to show nothing for minutes."""
    for path in sorted((repo / "experiments").glob("*.yaml")):
        trainer = (yaml.safe_load(path.read_text()) or {}).get("trainer") or {}
        assert trainer.get("enable_progress_bar", True) is not False, path.name
