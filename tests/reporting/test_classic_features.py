"""A grid dataset entry served as a frozen encoder's cached features: classic fits on them."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from hashrepro.reporting import load_grid
from hashrepro.reporting.table2 import main

TINY = {"class_path": "tiny_model.TinyEncoder", "init_args": {"out_features": 6}}


def grid_file(folder: Path) -> Path:
    grid = {
        "name": "feat",
        "seeds": 1,
        "ks": [1, 10],
        "papers": [{
            "key": "single",
            "title": "Tiny",
            "bits": [4],
            "datasets": {"embedded": [
                {"name": "Digits", "data": {"class_path": "Digits"}},
                {"name": "Digits-tiny", "data": {"class_path": "Digits",
                                                 "init_args": {"features": {"image": TINY}}}},
            ]},
            "classic": [{"name": "ITQ", "class": "ITQ"}],
        }],
    }  # fmt: skip
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def test_classic_cells_on_pixels_and_on_features(in_tmp: Path) -> None:
    path = grid_file(in_tmp)
    grid = load_grid(path)
    pixels, feats = grid.cells
    assert feats.dataset.data["init_args"]["features"] == {"image": TINY}
    assert pixels.fingerprint(grid.root) != feats.fingerprint(grid.root)
    out = in_tmp / "out"
    assert main(["--grid", str(path), "--out", str(out), "--no-progress", "--jobs", "1"]) == 0
    records = {p.stem: json.loads(p.read_text()) for p in (out / "cells").glob("*.json")}
    dims = {k.split("__")[1]: v["feature_dims"]["image"] for k, v in records.items()}
    assert dims == {"Digits": 64, "Digits-tiny": 6}
    assert list((in_tmp / "data" / "features").glob("digits_image_TinyEncoder_*.npy"))
    splits = {v["split_file"] for v in records.values()}
    assert len(splits) == 1  # both fit on the same split (features do not change it)


def test_repository_benchmark_grid() -> None:
    root = Path(__file__).resolve().parents[2]
    grid = load_grid(root / "experiments/table2.yaml", data="benchmark", seeds=1)
    names = [d.name for d in grid.datasets()]
    assert names == ["FashionMNIST", "FashionMNIST-Lite0", "Emoji", "Emoji-pretrained"]
    for cell in grid.cells:
        if cell.method.kind == "deep":
            assert all(p.is_file() for p in cell.config_files(grid.root))
