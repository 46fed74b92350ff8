"""The Table 2 runner on a tiny grid: outputs, best marks, resuming, paper-data check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fake_formats import write_cifar

from hashrepro.reporting import load_grid, runner
from hashrepro.reporting.aggregate import collapsed_codes, format_cell
from hashrepro.reporting.table2 import main

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--no-progress"]


def tiny_grid(folder: Path) -> Path:
    """Digits: a tiny deep model + LSH + ITQ; MultipleFeatures: CCA-ITQ; bits 8, 16; 1 seed."""
    grid = {
        "name": "tiny",
        "seeds": 1,
        "torch_threads": 1,
        "ks": [1, 10, 100],
        "protocol": "tiny test grid",
        "deep_args": ["--trainer.num_sanity_val_steps", "0"],
        "papers": [
            {
                "key": "single",
                "title": "Tiny single-modal",
                "bits": [8, 16],
                "budget": {"table2": ["--trainer.max_epochs", "1",
                                      "--trainer.limit_train_batches", "2"]},
                "datasets": {
                    "embedded": [{
                        "name": "Digits",
                        "data": {"class_path": "Digits"},
                        "configs": {"tiny": [str(ROOT / "tests/configs/tiny_digits.yaml")]},
                    }],
                    "paper": [
                        {"name": "CIFAR10", "data": {"class_path": "CIFAR10",
                                                     "init_args": {"root": str(folder / "c")}}},
                        {"name": "SVHN", "data": {"class_path": "SVHN",
                                                  "init_args": {"root": str(folder / "s")}}},
                    ],
                },
                "deep": [{"name": "Tiny", "family": "tiny"}],
                "classic": [{"name": "LSH", "class": "LSH"}, {"name": "ITQ", "class": "ITQ"}],
            },
            {
                "key": "cross",
                "title": "Tiny cross-modal",
                "bits": [8, 16],
                "datasets": {
                    "embedded": [{"name": "MultipleFeatures",
                                  "data": {"class_path": "MultipleFeatures"}}],
                    "paper": [{"name": "MIRFlickr25K", "data": {
                        "class_path": "MIRFlickr25K", "init_args": {"root": str(folder / "m")}}}],
                },
                "classic": [{"name": "CCA-ITQ", "class": "CCAITQ",
                             "kwargs": {"n_iter": 10}}],
            },
        ],
    }  # fmt: skip
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


N_CELLS = 8  # Digits: 3 methods x 2 bits; MultipleFeatures: 1 method x 2 bits
N_ROWS = 10  # + the cross-modal method has two directions


def cells(out: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, int]]:
    """One full run of the tiny grid with offline W&B; yields (grid, out, exit status)."""
    folder = tmp_path_factory.mktemp("table2")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("WANDB_DIR", str(folder))
        mp.chdir(folder)
        grid = tiny_grid(folder)
        out = folder / "out"
        status = main(["--grid", str(grid), "--out", str(out), *FAST])
        yield grid, out, status


def test_outputs_are_written(finished: tuple[Path, Path, int]) -> None:
    _, out, status = finished
    assert status == 0
    for name in ("table2.md", "table2.csv", "table2.json"):
        assert (out / name).stat().st_size > 0
    assert len(cells(out)) == N_CELLS
    assert not list((out / "cells").glob(".*.tmp"))
    plots = sorted(p.name for p in (out / "plots").glob("*.png"))
    for stem in ("map_vs_bits_digits_i2i", "pr_radius_digits_i2i_16b",
                 "precision_at_k_digits_i2i_16b", "map_vs_bits_multiplefeatures_i2t",
                 "map_vs_bits_multiplefeatures_t2i"):  # fmt: skip
        assert f"{stem}.png" in plots
    info = json.loads((out / "table2.json").read_text())
    assert info["git_commit"] and set(info["versions"]) >= {
        "torch",
        "lightning",
        "numpy",
        "hashrepro",
    }
    assert info["seeds"] == 1 and info["budget"]["single"][:2] == ["--trainer.max_epochs", "1"]
    assert not info["missing_cells"]
    commit = info["git_commit"] + ("+dirty" if info["git_dirty"] else "")
    assert info["cell_commits"] == {commit: N_CELLS}  # each cell records the code that made it


def test_table_has_every_cell_and_marks_the_real_best(finished: tuple[Path, Path, int]) -> None:
    _, out, _ = finished
    info = json.loads((out / "table2.json").read_text())
    rows = info["rows"]
    assert len(rows) == N_ROWS
    records = cells(out)
    columns: dict[tuple, list[dict]] = {}
    for row in rows:
        # every number is the one stored by the cell's run
        rec = next(
            r
            for r in records.values()
            if r["method"] == row["method"]
            and r["bits"] == row["bits"]
            and r["dataset"] == row["dataset"]
        )
        assert row["mAP_mean"] == pytest.approx(rec["metrics"][row["direction"]]["mAP"])
        columns.setdefault((row["dataset"], row["direction"], row["bits"]), []).append(row)
    assert len(columns) == 6
    for col in columns.values():
        best = [r for r in col if r["best"]]
        assert best and all(r["mAP_mean"] == max(c["mAP_mean"] for c in col) for r in best)
    md = (out / "table2.md").read_text()
    assert md.count("**") // 2 >= len(columns)
    for name in ("Tiny", "LSH", "ITQ", "CCA-ITQ"):
        assert f"| {name} |" in md
    assert "—" not in md.split("## Protocol")[0]
    csv_lines = (out / "table2.csv").read_text().splitlines()
    assert len(csv_lines) == N_ROWS + 1 and "best" in csv_lines[0]


def test_cells_share_splits_and_carry_curves(finished: tuple[Path, Path, int]) -> None:
    _, out, _ = finished
    records = cells(out)
    digits = {r["split_file"] for r in records.values() if r["dataset"] == "Digits"}
    assert len(digits) == 1 and (out / "splits" / digits.pop()).exists()
    deep = next(r for r in records.values() if r["kind"] == "deep")
    m = deep["metrics"]["i2i"]
    assert len(m["pr_radius"]["precision"]) == deep["bits"] + 1
    assert m["precision_at_k"]["k"] == [1, 10, 100]
    assert deep["evaluator_test"]["test/mAP_i2i"] == pytest.approx(m["mAP"], abs=1e-6)
    assert deep["val_mAP"] is not None and deep["epochs_trained"] == 1
    cross = next(r for r in records.values() if r["dataset"] == "MultipleFeatures")
    assert set(cross["metrics"]) == {"i2t", "t2i"}
    # W&B: one offline run per cell plus the summary run, grouped by the table and dataset
    runs = list((out / "wandb" / "wandb").glob("offline-run-*"))
    assert len(runs) == N_CELLS + 1
    logger = json.loads(deep["argv"][deep["argv"].index("--trainer.logger") + 1])
    assert logger["init_args"]["group"] == "tiny-Digits"
    assert logger["init_args"]["job_type"] == "cell"
    assert "offline" not in logger["init_args"]  # the mode follows WANDB_MODE (no env rewrite)


def test_second_run_skips_every_cell(
    finished: tuple[Path, Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    grid, out, _ = finished
    before = {k: v["finished_at"] for k, v in cells(out).items()}

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished cell was run again")

    monkeypatch.setattr(runner, "run_cell", never)
    assert main(["--grid", str(grid), "--out", str(out), "--no-wandb", *FAST]) == 0
    assert {k: v["finished_at"] for k, v in cells(out).items()} == before
    last = (out / "invocations.jsonl").read_text().splitlines()[-1]
    assert json.loads(last)["ran"] == 0 and json.loads(last)["skipped"] == N_CELLS


def test_interrupted_run_resumes_without_loss(
    tmp_path: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    grid = tiny_grid(tmp_path)
    out = tmp_path / "out"
    real = runner.run_cell
    calls: list[str] = []

    def interrupted(cell: Any, *args: Any) -> dict[str, Any]:
        calls.append(cell.cell_id)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the run were stopped inside the second cell
        return real(cell, *args)

    monkeypatch.setattr(runner, "run_cell", interrupted)
    assert main(["--grid", str(grid), "--out", str(out), "--no-wandb", *FAST]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        f"interrupted: 1 finished cells are kept in {out}/cells; rerun to resume"
    )
    assert "Traceback" not in err
    first = cells(out)
    assert list(first) == [calls[0]]  # the finished cell is kept, the interrupted one is not
    assert not list((out / "cells").glob(".*.tmp"))
    monkeypatch.setattr(runner, "run_cell", real)
    assert main(["--grid", str(grid), "--out", str(out), "--no-wandb", *FAST]) == 0
    after = cells(out)
    assert len(after) == N_CELLS
    assert after[calls[0]] == first[calls[0]]  # not retrained
    assert len(json.loads((out / "table2.json").read_text())["rows"]) == N_ROWS


def test_collapsed_cells_are_marked() -> None:
    collapsed = {"evaluator_test": {"test/mAP": 0.1, "test/collapsed_image": 1.0}}
    fine = {"evaluator_test": {"test/mAP": 0.9, "test/collapsed_image": 0.0}}
    assert collapsed_codes(collapsed) and not collapsed_codes(fine)
    assert not collapsed_codes({"evaluator_test": None})  # classic cells have no evaluator
    row = {"mAP_mean": 0.1, "mAP_std": 0.0, "n_seeds": 1, "best": False, "collapsed_seeds": 1}
    assert format_cell(row) == "0.100 †"
    assert format_cell({**row, "collapsed_seeds": 0}) == "0.100"


def test_failing_cell_stops_the_run_and_keeps_finished_cells(
    tmp_path: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grid = tiny_grid(tmp_path)
    out = tmp_path / "out"
    real = runner.run_cell

    def broken(cell: Any, *args: Any) -> dict[str, Any]:
        if cell.method.name == "ITQ":
            raise ValueError("boom")
        return real(cell, *args)

    monkeypatch.setattr(runner, "run_cell", broken)
    args = ["--grid", str(grid), "--out", str(out), "--no-wandb", "--keep-going", *FAST]
    assert main(args) == 1
    assert len(cells(out)) == N_CELLS - 2
    assert "boom" in next((out / "logs").glob("*__itq__8b__seed0.log")).read_text()
    assert "Missing cells (2)" in (out / "table2.md").read_text()


def test_paper_data_check_lists_every_missing_file(
    tmp_path: Path, in_tmp: Path, capsys: pytest.CaptureFixture
) -> None:
    grid = tiny_grid(tmp_path)
    out = tmp_path / "out"
    assert main(["--grid", str(grid), "--out", str(out), "--data", "paper", *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "3 dataset(s)" in err
    for name in ("data_batch_1", "data_batch_5", "test_batch", "train_32x32.mat",
                 "test_32x32.mat", "mirflickr25k-iall.mat", "mirflickr25k-yall.mat",
                 "mirflickr25k-lall.mat"):  # fmt: skip
        assert name in err, name
    assert not out.exists()  # nothing ran


def test_paper_data_check_reports_a_corrupt_file_as_corrupt(
    tmp_path: Path, in_tmp: Path, capsys: pytest.CaptureFixture
) -> None:
    grid = tiny_grid(tmp_path)
    write_cifar(tmp_path / "c")
    bad = tmp_path / "c" / "cifar-10-batches-py" / "data_batch_1"
    bad.write_bytes(bad.read_bytes()[:100])  # truncated
    out = tmp_path / "out"
    assert main(["--grid", str(grid), "--out", str(out), "--data", "paper", *FAST]) == 2
    err = capsys.readouterr().err
    assert "2 dataset(s) are missing files and 1 dataset(s) have a corrupt" in err
    line = next(x for x in err.splitlines() if x.startswith("- CIFAR10"))
    assert line.startswith(f"- CIFAR10 (corrupt or inconsistent file): CIFAR10: cannot read {bad}")
    assert "missing" not in line
    assert not out.exists()  # nothing ran


def test_fingerprint_follows_the_budget(tmp_path: Path) -> None:
    path = tiny_grid(tmp_path)
    grid = load_grid(path)
    quick = load_grid(path, quick=True)
    deep = [c for c in grid.cells if c.method.kind == "deep"]
    deep_quick = [c for c in quick.cells if c.method.kind == "deep"]
    assert deep[0].cell_id == deep_quick[0].cell_id
    assert deep[0].fingerprint(grid.root) != deep_quick[0].fingerprint(quick.root)
    full = load_grid(path, full_budget=True)
    deep_full = [c for c in full.cells if c.method.kind == "deep"]
    assert all(p.budget == [] for p in full.papers) and any(p.budget for p in grid.papers)
    assert deep_full[0].fingerprint(full.root) != deep[0].fingerprint(grid.root)
    with pytest.raises(ValueError, match="exclude each other"):
        load_grid(path, quick=True, full_budget=True)
    classic = [c for c in grid.cells if c.method.kind == "classic"]
    classic_full = [c for c in full.cells if c.method.kind == "classic"]
    assert classic[0].cell_id == classic_full[0].cell_id
    # the budget only concerns deep cells: classic ones are not rerun when it changes
    assert classic[0].fingerprint(grid.root) == classic_full[0].fingerprint(full.root)
    assert len(load_grid(path, seeds=3).cells) == 3 * N_CELLS


def test_repository_grid_expands_to_the_whole_table() -> None:
    grid = load_grid(ROOT / "experiments/table2.yaml")
    kinds = [c.method.kind for c in grid.cells]
    assert kinds.count("deep") == 96 and grid.seeds == 3
    for cell in grid.cells:
        if cell.method.kind == "deep":
            assert all(p.exists() for p in cell.config_files(grid.root))
    quick = load_grid(ROOT / "experiments/table2.yaml", quick=True)
    assert quick.seeds == 1 and {c.method.name for c in quick.cells} == {
        c.method.name for c in grid.cells
    }
    paper = load_grid(ROOT / "experiments/table2.yaml", data="paper")
    assert {d.name for d in paper.datasets()} == {"CIFAR10", "SVHN", "MIRFlickr25K"}


@pytest.mark.slow
def test_quick_grid_runs(tmp_path: Path, in_tmp: Path) -> None:
    out = tmp_path / "quick"
    args = ["--quick", "--out", str(out), "--grid", str(ROOT / "experiments/table2.yaml")]
    assert main([*args, *FAST]) == 0
    info = json.loads((out / "table2.json").read_text())
    assert not info["missing_cells"]
    maps = np.array([r["mAP_mean"] for r in info["rows"]])
    assert ((maps > 0) & (maps <= 1)).all()


@pytest.mark.slow
def test_parallel_jobs_give_the_same_cells(tmp_path: Path, in_tmp: Path) -> None:
    grid = tiny_grid(tmp_path)
    out = tmp_path / "par"
    assert main(["--grid", str(grid), "--out", str(out), "--no-wandb", "--jobs", "2", *FAST]) == 0
    records = cells(out)
    assert len(records) == N_CELLS and {r["jobs"] for r in records.values()} == {2}
    digits = {r["split_file"] for r in records.values() if r["dataset"] == "Digits"}
    assert len(digits) == 1
    serial = tmp_path / "serial"
    assert main(["--grid", str(grid), "--out", str(serial), "--no-wandb", *FAST]) == 0
    for key, rec in cells(serial).items():  # classic cells are deterministic
        if rec["kind"] == "classic":
            assert rec["metrics"] == records[key]["metrics"]
