"""The Table 2 runner on a tiny grid: outputs, tuning, resuming, significance, launchers."""

from __future__ import annotations

import ast
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fake_formats import write_cifar

from hashrepro.baselines import ITQ
from hashrepro.reporting import launch, runner
from hashrepro.reporting.aggregate import format_cell
from hashrepro.reporting.grid import classic_config, deep_config, fingerprint, load_grid
from hashrepro.reporting.table2 import main
from hashrepro.retrieval.significance import holm, paired_bootstrap

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--no-progress", "--jobs", "1"]
TINY = str(ROOT / "tests/configs/tiny_digits.yaml")
HASHCNN = str(ROOT / "experiments/hashcnn_mnist5k.yaml")


def tiny_grid(folder: Path, trials: int = 0) -> Path:
    """Digits: a tiny deep model (+ HashCNN when tuning) and LSH, ITQ; Multiple Features:
    CCA-ITQ. Bits 8, 16; 1 seed; CIFAR-10 / MIRFlickr-25K under ``folder`` as paper data."""
    deep = [{"name": "Tiny", "family": "tiny"}]
    if trials:
        lr = {"model.init_args.optimizer.init_args.lr": [0.0005, 0.005, "log"]}
        deep.append({"name": "HashCNN", "family": "hashcnn", "search": lr})
    single = {
        "key": "single", "title": "Tiny single-modal", "proposed": "Tiny", "bits": [8, 16],
        "tune_bits": 16, "max_epochs": 1, "patience": 1,
        "datasets": {
            "default": [{"name": "Digits", "data": {"class_path": "Digits"},
                         "configs": {"tiny": [TINY], "hashcnn": [HASHCNN]}}],
            "paper": [{"name": "CIFAR10", "data": {
                "class_path": "CIFAR10", "init_args": {"root": str(folder / "c")}}}],
        },
        "deep": deep,
        "classic": [{"name": "LSH", "baseline": "LSH"}, {"name": "ITQ", "baseline": "ITQ"}],
    }  # fmt: skip
    cross = {
        "key": "cross", "title": "Tiny cross-modal", "proposed": "CCA-ITQ", "bits": [8, 16],
        "tune_bits": 16, "max_epochs": 1,
        "datasets": {
            "default": [{"name": "MultipleFeatures", "data": {"class_path": "MultipleFeatures"}}],
            "paper": [{"name": "MIRFlickr25K", "data": {
                "class_path": "MIRFlickr25K", "init_args": {"root": str(folder / "m")}}}],
        },
        "classic": [{"name": "CCA-ITQ", "baseline": "CCAITQ"}, {"name": "CVH", "baseline": "CVH"}],
    }  # fmt: skip
    grid = {"name": "tiny", "seeds": 1, "trials": trials, "threads": 1, "ks": [1, 10, 100],
            "protocol": "tiny test grid", "root": str(ROOT), "papers": [single, cross]}  # fmt: skip
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


N_CELLS = 10  # Digits: 3 methods x 2 bits; Multiple Features: 2 methods x 2 bits
N_ROWS = 14  # the cross-modal methods have two directions


def cells(out: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, int]]:
    """One full run of the tiny grid with offline W&B; yields (grid, out, exit status)."""
    folder = tmp_path_factory.mktemp("table2")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_DIR", str(folder))
        mp.chdir(folder)
        grid, out = tiny_grid(folder), folder / "out"
        yield grid, out, main(["--grid", str(grid), "--out", str(out), *FAST])


def test_outputs_are_written(finished: tuple[Path, Path, int]) -> None:
    _, out, status = finished
    assert status == 0
    for name in ("table2.md", "table2.csv", "table2.json"):
        assert (out / name).stat().st_size > 0
    records = cells(out)
    assert len(records) == N_CELLS and not list((out / "cells").glob(".*.tmp"))
    deep = next(r for r in records.values() if r["kind"] == "deep")
    config = yaml.safe_load((out / "cells" / f"{deep['id']}.yaml").read_text())
    assert config["evaluator"]["ties"] == "average"  # the cell's resolved configuration
    assert config["trainer"]["callbacks"][-1]["class_path"].endswith("EarlyStopping")
    plots = {p.stem for p in (out / "plots").glob("*.png")}
    stems = ["map_vs_bits_digits_i2i", "pr_radius_digits_i2i_16b", "retrieval_digits_i2i"]
    stems += ["precision_at_k_multiplefeatures_t2i_16b", "retrieval_multiplefeatures_i2t"]
    assert not set(stems) - plots
    info = json.loads((out / "table2.json").read_text())
    assert info["commit"] and not info["missing_cells"]
    assert {"torch", "lightning", "optuna"} <= set(info["versions"])
    # W&B: the deep cells' runs and the summary run
    assert len(list((out / "wandb" / "wandb").glob("offline-run-*"))) == 2 + 1
    assert (out / "logs" / f"{deep['id']}.log").read_text()  # the cell's console output


def test_every_number_is_a_record_and_marks_follow_it(finished: tuple[Path, Path, int]) -> None:
    _, out, _ = finished
    rows, records = json.loads((out / "table2.json").read_text())["rows"], cells(out)
    assert len(rows) == N_ROWS
    for row in rows:
        key = (row["method"], row["bits"], row["dataset"])
        rec = next(r for r in records.values() if (r["method"], r["bits"], r["dataset"]) == key)
        figures = rec["metrics"][row["direction"]]
        assert row["mAP_mean"] == figures["mAP"] and row["mAP_index_mean"] == figures["mAP_index"]
        assert np.mean(figures["ap"]) == pytest.approx(figures["mAP"])
        column = [r["mAP_mean"] for r in rows if (r["direction"], r["bits"], r["dataset"]) ==
                  (row["direction"], row["bits"], row["dataset"])]  # fmt: skip
        assert row["best"] == (row["mAP_mean"] == max(column))
        proposed = {"Digits": "Tiny", "MultipleFeatures": "CCA-ITQ"}[row["dataset"]]
        assert (row["p_vs_proposed"] is None) == (row["method"] == proposed)
    md = (out / "table2.md").read_text()
    assert "| LSH |" in md and "tie-aware" in md and "none (trials: 0)" in md
    table = [line.split("|")[2:-2] for line in md.split("## Protocol")[0].splitlines()]
    assert all("—" not in cell for row in table for cell in row)  # only classic "epochs used"


def test_second_run_skips_every_cell(finished: tuple[Path, Path, int], monkeypatch) -> None:
    grid, out, _ = finished
    before = {k: v["finished_at"] for k, v in cells(out).items()}

    def never(*args: Any) -> None:
        raise AssertionError("a finished cell was run again")

    monkeypatch.setattr("hashrepro.reporting.table2.run_cell", never)
    assert main(["--grid", str(grid), "--out", str(out), "--no-wandb", *FAST]) == 0
    assert {k: v["finished_at"] for k, v in cells(out).items()} == before
    last = json.loads((out / "invocations.jsonl").read_text().splitlines()[-1])
    assert last["ran"] == 0 and last["skipped"] == N_CELLS


def test_interrupted_run_resumes_without_loss(tmp_path, in_tmp, monkeypatch, capsys) -> None:
    grid, out, calls = tiny_grid(tmp_path), tmp_path / "out", []
    real = runner.run_cell

    def interrupted(cell: Any, *args: Any) -> dict[str, Any]:
        calls.append(cell.id)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if Ctrl-C came inside the second cell
        return real(cell, *args)

    monkeypatch.setattr("hashrepro.reporting.table2.run_cell", interrupted)
    assert main(["--grid", str(grid), "--out", str(out), "--no-wandb", *FAST]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"interrupted: 1 finished cells are kept in {out}/cells; rerun to resume"
    first = cells(out)
    assert list(first) == [calls[0]]  # the finished cell is kept, the interrupted one is not
    monkeypatch.setattr("hashrepro.reporting.table2.run_cell", real)
    assert main(["--grid", str(grid), "--out", str(out), "--no-wandb", *FAST]) == 0
    assert len(cells(out)) == N_CELLS and cells(out)[calls[0]] == first[calls[0]]


def test_equal_effort_tuning_on_validation(tmp_path: Path, in_tmp: Path) -> None:
    grid, out = tiny_grid(tmp_path, trials=2), tmp_path / "out"
    assert main(["--grid", str(grid), "--out", str(out), "--no-wandb", *FAST]) == 0
    study = json.loads((out / "tuning" / "single__digits__hashcnn.json").read_text())
    assert len(study["trials"]) == 2 and study["n_trials"] == 2 and study["tune_bits"] == 16
    best = study["best"]["params"]["model.init_args.optimizer.init_args.lr"]
    for bits in (8, 16):  # the tuned value is used at every code length
        config = yaml.safe_load(
            (out / "cells" / f"single__digits__hashcnn__{bits}b__seed0.yaml").read_text()
        )
        assert config["model"]["init_args"]["optimizer"]["init_args"]["lr"] == pytest.approx(best)
    # a rerun runs no trial and no cell
    assert main(["--grid", str(grid), "--out", str(out), "--no-wandb", *FAST]) == 0
    assert json.loads((out / "invocations.jsonl").read_text().splitlines()[-1])["ran"] == 0


def test_fingerprints_follow_resolved_configs(tmp_path: Path, monkeypatch) -> None:
    grid = load_grid(tiny_grid(tmp_path))
    deep = next(c for c in grid.cells if c.method.kind == "deep")
    config = deep_config(grid, deep)
    moved = json.loads(json.dumps(config))
    moved["trainer"]["default_root_dir"], moved["data"]["init_args"]["split_dir"] = "a", "b"
    assert fingerprint(moved) == fingerprint(config)  # run locations do not count
    assert fingerprint(deep_config(grid, deep, {"model.init_args.num_bits": 32})) != fingerprint(
        config
    )
    itq = next(c for c in grid.cells if c.method.name == "ITQ")
    before = fingerprint(classic_config(grid, itq))
    monkeypatch.setattr(ITQ.__init__, "__kwdefaults__", {"n_iter": 10})  # a default in code
    assert fingerprint(classic_config(grid, itq)) != before


def test_paper_data_check_names_missing_and_corrupt_files(tmp_path, in_tmp, capsys) -> None:
    grid, out = tiny_grid(tmp_path), tmp_path / "out"
    write_cifar(tmp_path / "c")
    bad = tmp_path / "c" / "cifar-10-batches-py" / "data_batch_1"
    bad.write_bytes(bad.read_bytes()[:100])  # truncated
    assert main(["--grid", str(grid), "--out", str(out), "--data", "paper", *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "2 dataset(s) cannot be read" in err
    assert f"- CIFAR10 (corrupt or inconsistent file): CIFAR10: cannot read {bad}" in err
    assert "- MIRFlickr25K (missing files)" in err and "mirflickr25k-iall.mat" in err
    assert not out.exists()  # nothing ran


def test_slurm_jobs_are_built_without_a_cluster(tmp_path: Path, monkeypatch, capsys) -> None:
    grid = tiny_grid(tmp_path)
    args = ["--grid", str(grid), "--launcher", "slurm", "--partition", "gpu", "--gpus", "2"]
    assert main([*args, "--time", "30", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == N_CELLS and all(line.startswith("sbatch --job-name=") for line in lines)
    assert "--partition=gpu --time=30 --gpus-per-node=2 --cpus-per-task=4" in lines[0]
    # the real submission path, with stand-ins for srun, sbatch and sacct on PATH
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", ""), ("sacct", ""), ("sbatch", "echo Submitted batch job 42")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{text}\n")
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def stop(seconds: float) -> None:
        raise KeyboardInterrupt  # instead of waiting for the (fake) job

    monkeypatch.setattr(launch.time, "sleep", stop)
    slurm = launch.Slurm(tmp_path / "slurm", "gpu", 1, 8, 60)
    with pytest.raises(KeyboardInterrupt):
        slurm.run([("a-cell", print, ("hello",))], lambda *_: None)
    script = next((tmp_path / "slurm").glob("42_submission.sh")).read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=60",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --job-name=a-cell"):  # fmt: skip
        assert line in script, line


def test_paired_bootstrap_and_holm() -> None:
    rng = np.random.default_rng(0)
    base = [rng.uniform(0.2, 0.8, 300) for _ in range(3)]  # 3 seeds x 300 queries
    better = [b + rng.normal(0.05, 0.05, 300) for b in base]
    diff, p = paired_bootstrap(better, base)
    assert diff == pytest.approx(0.05, abs=0.01) and p < 0.01
    noise = [b + rng.normal(0.0, 0.05, 300) for b in base]
    assert paired_bootstrap(noise, base)[1] > 0.05
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_cell_marks() -> None:
    row = {"mAP_mean": 0.5, "mAP_std": 0.01, "n_seeds": 3, "best": True, "significant": True,
           "diff_vs_proposed": -0.1, "collapsed_seeds": 1}  # fmt: skip
    assert format_cell(row) == "**0.500 ± 0.010** ▼ †"
    assert format_cell({**row, "best": False, "diff_vs_proposed": 0.1, "collapsed_seeds": 0}) == (
        "0.500 ± 0.010 ▲"
    )


def test_reporting_is_small_and_acyclic() -> None:
    folder = ROOT / "hashrepro" / "reporting"
    files = sorted(folder.glob("*.py"))
    assert sum(len(f.read_text().splitlines()) for f in files) < 1000
    imports = {}
    for f in files:
        tree = ast.parse(f.read_text())
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imports[f.stem] = {
            m.rsplit(".", 1)[-1] for m in names if m.startswith("hashrepro.reporting.")
        }

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(m == goal or (m not in seen and reaches(m, goal, seen | {m}))
                   for m in imports.get(start, ()))  # fmt: skip

    assert not [m for m in imports if reaches(m, m, set())]


def test_repository_grid_expands_to_the_whole_table() -> None:
    grid = load_grid(ROOT / "experiments/table2.yaml")
    assert grid.seeds == 3 and grid.trials == 8
    assert sum(c.method.kind == "deep" for c in grid.cells) == 3 * (5 * 4 + 2 * 5 * 3)
    assert len(grid.studies) == 5 + 2 * 5  # every deep method, per dataset
    for paper in grid.papers:
        cell = next(c for c in grid.cells if c.paper is paper and c.method.kind == "deep")
        assert deep_config(grid, cell)["trainer"]["max_epochs"] == paper.max_epochs
    quick = load_grid(ROOT / "experiments/table2.yaml", "quick")
    assert quick.seeds == 1 and quick.trials == 0 and not quick.studies
    paper = load_grid(ROOT / "experiments/table2.yaml", "paper")
    assert {d.name for p in paper.papers for d in p.datasets} == {"CIFAR10", "SVHN", "MIRFlickr25K"}


@pytest.mark.slow
def test_quick_grid_runs_in_two_processes(tmp_path: Path, in_tmp: Path) -> None:
    out = tmp_path / "quick"
    assert main(["--quick", "--out", str(out), "--no-progress", "--no-wandb", "--jobs", "2"]) == 0
    info = json.loads((out / "table2.json").read_text())
    assert not info["missing_cells"]
    assert all(0 < r["mAP_mean"] <= 1 for r in info["rows"])
