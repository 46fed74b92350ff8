"""A grid dataset served as a frozen encoder's cached features: classic baselines fit on them."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from hashrepro.reporting.grid import classic_config, fingerprint, load_grid
from hashrepro.reporting.table2 import main

TINY = {"class_path": "tiny_model.TinyEncoder", "init_args": {"out_features": 6}}


def grid_file(folder: Path) -> Path:
    digits = {"class_path": "Digits"}
    features = {"class_path": "Digits", "init_args": {"features": {"image": TINY}}}
    paper = {
        "key": "single", "title": "Tiny", "proposed": "ITQ", "bits": [4], "tune_bits": 4,
        "max_epochs": 1,
        "datasets": {"default": [{"name": "Digits", "data": digits},
                                 {"name": "Digits-tiny", "data": features}]},
        "classic": [{"name": "ITQ", "baseline": "ITQ"}],
    }  # fmt: skip
    grid = {"name": "feat", "seeds": 1, "ks": [1, 10], "papers": [paper]}
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def test_classic_cells_on_pixels_and_on_features(in_tmp: Path) -> None:
    path = grid_file(in_tmp)
    grid = load_grid(path)
    pixels, feats = grid.cells
    assert feats.dataset.data["init_args"]["features"] == {"image": TINY}
    assert fingerprint(classic_config(grid, pixels)) != fingerprint(classic_config(grid, feats))
    out = in_tmp / "out"
    assert main(["--grid", str(path), "--out", str(out), "--no-progress", "--jobs", "1"]) == 0
    records = {p.stem: json.loads(p.read_text()) for p in (out / "cells").glob("*.json")}
    assert sorted(r["dataset"] for r in records.values()) == ["Digits", "Digits-tiny"]
    maps = [r["metrics"]["i2i"]["mAP"] for r in records.values()]
    assert all(0 < m <= 1 for m in maps) and maps[0] != maps[1]
    assert list((in_tmp / "data" / "features").glob("digits_image_TinyEncoder_*.npy"))
    assert len(list((out / "splits").glob("*"))) == 1  # one split: features do not change it
