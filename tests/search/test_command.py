"""`hashrepro predict` writes a codes file; `hashrepro search` ranks it around a query."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from hashrepro.cli import main
from hashrepro.data import MultipleFeatures
from hashrepro.retrieval.codes_file import read_codes
from hashrepro.retrieval.index import HammingIndex
from hashrepro.search.query import image_like, raw_query

FAST = ["--trainer.logger", "false", "--data.init_args.split_dir", "splits"]


@pytest.fixture
def trained(repo: Path, in_tmp: Path) -> tuple[str, str]:
    """A tiny Digits model trained for one epoch: (config, best checkpoint)."""
    config = str(repo / "tests/configs/tiny_digits.yaml")
    cli = main(["fit", "--config", config, *FAST, "--trainer.max_epochs", "1"])
    return config, cli.trainer.checkpoint_callback.best_model_path


def test_predict_writes_the_codes_of_a_split(trained, in_tmp: Path) -> None:
    config, ckpt = trained
    cli = main(["predict", "--config", config, *FAST, "--ckpt_path", ckpt])
    codes = read_codes(in_tmp / "codes.npz")
    dm = cli.datamodule
    assert codes.split == "database" and codes.modalities == ["image"] and codes.n_bits == 16
    np.testing.assert_array_equal(codes.index, dm.split["database"])  # split order
    np.testing.assert_array_equal(codes.labels, dm.data.labels[dm.split["database"]])
    assert codes.packed().shape == (len(dm.split["database"]), 2)
    assert codes.meta["model"] == "TinyHasher" and codes.meta["dataset"] == "Digits"
    # the same codes as encoding the items directly
    items = dm.data.sources["image"][dm.split["database"][:5]]
    direct = cli.model.encode({"image": items})["image"]
    np.testing.assert_array_equal(codes.packed()[:5], np.packbits(direct.detach() >= 0, axis=1))
    out = in_tmp / "queries.npz"
    main(
        ["predict", "--config", config, *FAST, "--ckpt_path", ckpt]
        + ["--data.init_args.predict_split", "query", "--codes_writer.output", str(out)]
    )
    queries = read_codes(out)
    assert queries.split == "query"
    np.testing.assert_array_equal(queries.index, dm.split["query"])


def test_search_prints_top_k_and_draws_a_grid(trained, in_tmp: Path, capsys, monkeypatch) -> None:
    config, ckpt = trained
    main(["predict", "--config", config, *FAST, "--ckpt_path", ckpt])
    codes = read_codes(in_tmp / "codes.npz")
    base = ["search", "--index", "codes.npz", "--config", config, "--ckpt_path", ckpt, *FAST[2:]]
    item = int(codes.index[7])
    result = main([*base, "--item", str(item), "--k", "5", "--grid", "grid.png"])
    # the item's own code ranks the file exactly as the index does
    own = codes.packed()[7:8]
    want_d, want_rows = HammingIndex.from_codes(codes.packed(), 16).search(own, 5)
    np.testing.assert_array_equal(result.rows, want_rows[0])
    np.testing.assert_array_equal(result.distances, want_d[0])
    np.testing.assert_array_equal(result.items, codes.index[want_rows[0]])
    assert result.distances[0] == 0
    out = capsys.readouterr().out
    assert "rank  distance      item  label" in out and "wrote grid.png" in out
    with Image.open(in_tmp / "grid.png") as img:
        assert img.size[0] > 600 and img.size[1] > 150
    # an image file: the digit written as a PNG, read back in the data's item format
    image = (load_digits().images[item] / 16 * 255).round().astype(np.uint8)  # (8, 8)
    Image.fromarray(image).resize((32, 32)).save(in_tmp / "digit.png")
    from_file = main([*base, "--query", "digit.png", "--k", "3"])
    assert from_file.query_modality == "image" and len(from_file.rows) == 3
    assert np.all(np.diff(from_file.distances) >= 0)
    # from the shell (no args) main returns None: the console script's sys.exit(main()) is 0
    monkeypatch.setattr(sys, "argv", ["hashrepro", *base, "--item", str(item)])
    assert main() is None


def test_search_errors_are_one_line(trained, in_tmp: Path, monkeypatch, capsys) -> None:
    config, ckpt = trained
    main(["predict", "--config", config, *FAST, "--ckpt_path", ckpt])
    base = ["search", "--index", "codes.npz", "--config", config, "--ckpt_path", ckpt, *FAST[2:]]
    with pytest.raises(FileNotFoundError, match="no such codes file"):
        main([*base[:2], "missing.npz", *base[3:], "--item", "0"])
    with pytest.raises(ValueError, match="Digits has no 'text' items"):
        main([*base, "--query", "a handwritten seven"])
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        main([*base[:-4], "--ckpt_path", "nope.ckpt", *FAST[2:], "--item", "0"])
    monkeypatch.setattr(sys, "argv", ["hashrepro", *base, "--query", "missing.png"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: missing.png: no such image file")


def test_text_queries_need_string_text_items() -> None:
    dm = MultipleFeatures(split_dir=None)
    with pytest.raises(ValueError, match="feature vectors, not strings"):
        raw_query(dm, "a handwritten seven", None, "text")
    assert raw_query(dm, None, 3, "text").shape == (409,)  # an item works for any modality
    with pytest.raises(ValueError, match="out of range"):
        raw_query(dm, None, 10**6, "image")


def test_image_files_take_the_format_of_the_data_items(tmp_path: Path) -> None:
    rgb = np.zeros((20, 30, 3), dtype=np.uint8)
    rgb[:, :15] = 255  # left half white
    Image.fromarray(rgb).save(tmp_path / "q.png")
    chw = image_like(tmp_path / "q.png", torch.zeros(1, 8, 8))  # MNIST-like float (1, H, W)
    assert isinstance(chw, torch.Tensor) and chw.shape == (1, 8, 8) and chw.dtype == torch.float32
    assert float(chw[0, :, 0].min()) == 1.0 and float(chw[0, :, -1].max()) == 0.0
    hwc = image_like(tmp_path / "q.png", np.zeros((32, 32, 3), dtype=np.uint8))  # CIFAR-like
    assert hwc.shape == (32, 32, 3) and hwc.dtype == np.uint8 and hwc[0, 0, 0] == 255
    with pytest.raises(ValueError, match="cannot turn an image file"):
        image_like(tmp_path / "q.png", np.zeros(409))
