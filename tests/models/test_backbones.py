"""Backbones: output shapes, weight loading (local files, hub cache, MatConvNet .mat), offline."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from fake_formats import FC, LRN_PARAM, WIDTH, fake_vgg_f
from torch import nn

from hashrepro.models.backbones import (
    CNNF,
    SmallCNN,
    TextMLP,
    TorchvisionBackbone,
    TransformerTextEncoder,
)

# ----------------------------------------------------------------------------------- SmallCNN


@pytest.mark.parametrize("size", [(8, 8), (16, 15), (32, 32)])
@pytest.mark.parametrize("in_channels,batch_norm", [(3, False), (1, True)])
def test_small_cnn_shapes(size: tuple[int, int], in_channels: int, batch_norm: bool) -> None:
    net = SmallCNN(in_channels=in_channels, batch_norm=batch_norm)
    out = net(torch.randn(2, in_channels, *size))
    assert net.out_features == 500
    assert out.shape == (2, 500)
    assert (out >= 0).all()


def test_small_cnn_is_small_and_learns() -> None:
    torch.manual_seed(0)
    net = SmallCNN(out_features=64)
    assert sum(p.numel() for p in net.parameters()) < 1_000_000
    head = nn.Linear(64, 4)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 4, (8,))
    opt = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=3e-3)
    losses = []
    for _ in range(20):
        loss = nn.functional.cross_entropy(head(net(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


# ------------------------------------------------------------------------ TorchvisionBackbone


@pytest.mark.parametrize("arch,dim", [("alexnet", 4096), ("resnet50", 2048)])
def test_torchvision_forward(arch: str, dim: int) -> None:
    net = TorchvisionBackbone(arch).eval()
    assert net.out_features == dim
    with torch.no_grad():
        out = net(torch.randn(2, 3, 96, 96))  # small input: the pooling is adaptive
    assert out.shape == (2, dim)
    assert not any(isinstance(m, nn.Linear) and m.out_features == 1000 for m in net.modules())


def test_torchvision_vgg16_has_no_head() -> None:
    with torch.device("meta"):  # structure only: skip initialising 138M parameters
        net = TorchvisionBackbone("vgg16")
    assert net.out_features == 4096
    assert net.classifier[-1].__class__ is nn.Dropout  # fc7 -> ReLU -> Dropout, fc8 dropped
    assert [m.out_features for m in net.modules() if isinstance(m, nn.Linear)] == [4096, 4096]


def test_torchvision_invalid_arch() -> None:
    with pytest.raises(ValueError, match="arch must be one of"):
        TorchvisionBackbone("vgg19")  # type: ignore[arg-type]


def test_torchvision_local_state_dict_roundtrip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = TorchvisionBackbone("alexnet")
    path = tmp_path / "alexnet_backbone.pth"
    torch.save(source.state_dict(), path)
    loaded = TorchvisionBackbone("alexnet", weights=str(path))
    expected, got = source.state_dict(), loaded.state_dict()
    assert got.keys() == expected.keys()
    for name, value in got.items():
        assert torch.equal(value, expected[name]), name


def test_torchvision_missing_local_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "resnet50.pth"
    with pytest.raises(FileNotFoundError, match="Weights file not found") as info:
        TorchvisionBackbone("resnet50", weights=str(path))
    assert str(path) in str(info.value)


@pytest.fixture
def hub_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty torch hub dir, and a download that always fails as if offline."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def offline(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return hub


def test_torchvision_imagenet_offline_error(hub_dir: Path) -> None:
    url = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
    expected = hub_dir / "checkpoints" / url.rsplit("/", 1)[1]
    with pytest.raises(FileNotFoundError) as info:
        TorchvisionBackbone("alexnet", weights="imagenet")
    message = str(info.value)
    assert str(expected) in message
    assert url in message
    assert "\n" not in message
    assert isinstance(info.value.__cause__, urllib.error.URLError)


def test_torchvision_imagenet_from_hub_cache(hub_dir: Path) -> None:
    torch.manual_seed(0)
    full = torchvision.models.resnet50(weights=None)  # with its fc head, as torchvision ships
    url = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(full.state_dict(), hub_dir / "checkpoints" / url.rsplit("/", 1)[1])
    net = TorchvisionBackbone("resnet50", weights="imagenet", progress=False)
    expected = {k: v for k, v in full.state_dict().items() if not k.startswith("fc.")}
    assert net.state_dict().keys() == expected.keys()
    for name, value in net.state_dict().items():
        assert torch.equal(value, expected[name]), name


# --------------------------------------------------------------------------------------- CNN-F


@pytest.mark.parametrize("layout", ["old", "meta", "net"])
def test_cnnf_loads_matconvnet_layouts(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "imagenet-vgg-f.mat"
    written = fake_vgg_f(path, layout, np.random.default_rng(0))
    net = CNNF(weights=str(path), width=WIDTH)
    assert net.out_features == FC

    for name in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        layer = getattr(net.features, name)
        assert torch.equal(layer.weight, torch.from_numpy(written[name].transpose(3, 2, 0, 1)))
        assert torch.equal(layer.bias, torch.from_numpy(written[name + "_b"]))
    for name in ("fc6", "fc7"):
        w = torch.from_numpy(written[name].transpose(3, 2, 0, 1).copy()).flatten(1)
        assert torch.equal(getattr(net, name).weight, w)
        assert torch.equal(getattr(net, name).bias, torch.from_numpy(written[name + "_b"]))

    n, kappa, alpha, beta = LRN_PARAM
    for norm in (net.features.norm1, net.features.norm2):
        assert (norm.size, norm.k, norm.beta) == (n, kappa, beta)
        assert norm.alpha == pytest.approx(alpha * n)  # PyTorch divides alpha by the size

    mean = written["mean"]
    if layout == "old":
        assert net.mean.shape == (3, 224, 224)
        assert torch.equal(net.mean, torch.from_numpy(mean.transpose(2, 0, 1).copy()))
    else:
        assert net.mean.shape == (3, 1, 1)
        assert torch.equal(net.mean.flatten(), torch.from_numpy(mean.ravel()))

    pixels = torch.rand(2, 3, 224, 224) * 255
    with torch.no_grad():
        out = net.eval()(pixels)
    assert out.shape == (2, FC)
    assert torch.allclose(net.preprocess(pixels), pixels - net.mean)


def test_cnnf_filter_orientation_matches_matconvnet(tmp_path: Path) -> None:
    """conv1 at output (0, 0) is MatConvNet's correlation of the H x W x 3 image with f."""
    path = tmp_path / "vgg-f.mat"
    written = fake_vgg_f(path, "meta", np.random.default_rng(1))
    net = CNNF(weights=str(path), width=WIDTH, subtract_mean=False)
    image = np.random.default_rng(2).standard_normal((224, 224, 3)).astype(np.float32)  # H W C
    f, b = written["conv1"], written["conv1_b"]  # H x W x in x out
    expected = np.einsum("hwc,hwco->o", image[:11, :11], f) + b
    x = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]  # (1, 3, 224, 224)
    with torch.no_grad():
        got = net.features.conv1(x)[0, :, 0, 0]
    assert np.allclose(got.numpy(), expected, atol=1e-5)


def test_cnnf_shape_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "imagenet-vgg-f.mat"
    fake_vgg_f(path, "meta", np.random.default_rng(0))
    with pytest.raises(ValueError, match="conv1 filters"):
        CNNF(weights=str(path), width=2 * WIDTH)


def test_cnnf_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "imagenet-vgg-f.mat"
    with pytest.raises(FileNotFoundError) as info:
        CNNF(weights=str(path))
    message = str(info.value)
    assert str(path) in message and "imagenet-vgg-f.mat" in message
    assert "vlfeat.org/matconvnet/pretrained" in message
    assert "\n" not in message


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_cnnf_corrupt_file_is_one_line(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "imagenet-vgg-f.mat"
    if damage == "garbage":
        path.write_bytes(b"<html>not found</html>")  # e.g. an error page saved as the file
    else:
        fake_vgg_f(path, "meta", np.random.default_rng(0))
        path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError) as info:
        CNNF(weights=str(path))
    message = str(info.value)
    assert message.startswith(f"CNN-F weights: cannot read {path} as MatConvNet's")
    assert "found " in message and "\n" not in message


def test_cnnf_random_init() -> None:
    with torch.device("meta"):
        assert CNNF().out_features == 4096
    net = CNNF(width=WIDTH, input_scale=255.0).eval()
    assert net.mean.shape == (3, 1, 1)
    with torch.no_grad():
        out = net(torch.rand(2, 3, 224, 224))
    assert out.shape == (2, FC)


# ------------------------------------------------------------------------------------ TextMLP


def test_text_mlp_default_is_dcmh() -> None:
    net = TextMLP(in_features=1386)
    assert net.out_features == 8192
    assert net(torch.randint(0, 2, (3, 1386))).shape == (3, 8192)


@pytest.mark.parametrize(
    "hidden,out_features,expected",
    [([256, 128], None, 128), ([64], 32, 32), ([], 16, 16), (100, None, 100)],
)
def test_text_mlp_configs(hidden: int | list[int], out_features: int | None, expected: int) -> None:
    net = TextMLP(in_features=50, hidden=hidden, out_features=out_features, dropout=0.1)
    assert net.out_features == expected
    assert net(torch.rand(4, 50)).shape == (4, expected)
    n_linear = sum(isinstance(m, nn.Linear) for m in net.modules())
    assert n_linear == (1 if isinstance(hidden, int) else len(hidden)) + (out_features is not None)


def test_text_mlp_needs_a_layer() -> None:
    with pytest.raises(ValueError):
        TextMLP(in_features=10, hidden=[])


# ---------------------------------------------------------------------- TransformerTextEncoder


@pytest.fixture
def tiny_bert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A randomly initialised 2-layer BERT and WordPiece tokenizer saved in tmp_path."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import BertConfig, BertModel, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "dog", "sat", "on"]
    words += ["the", "mat", "runs", "in", "park", "##s", "red"]
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(words)})
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    directory = tmp_path / "tiny-bert"
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_transformer_encoder(tiny_bert: Path) -> None:
    texts = ["a cat sat on the mat", "the red dogs runs in the park on a mat"]
    cls = TransformerTextEncoder(str(tiny_bert), pooling="cls", max_length=16).eval()
    assert cls.out_features == 32
    assert cls.model.pooler is None
    ids = cls.tokenize(texts)["input_ids"]
    assert ids.shape[0] == 2 and (ids != cls.tokenizer.unk_token_id).all()
    with torch.no_grad():
        from_text = cls(texts)
        from_ids = cls(cls.tokenize(texts))
    assert from_text.shape == (2, 32)
    assert torch.allclose(from_text, from_ids)

    mean = TransformerTextEncoder(str(tiny_bert), pooling="mean").eval()
    with torch.no_grad():
        batch = mean(texts)
        alone = mean(texts[:1])  # no padding: mean pooling must ignore the pad tokens
    assert batch.shape == (2, 32)
    assert torch.allclose(batch[:1], alone, atol=1e-5)


def test_transformer_encoder_truncates(tiny_bert: Path) -> None:
    encoder = TransformerTextEncoder(str(tiny_bert), max_length=5)
    assert encoder.tokenize(["a cat sat on the mat in the park"])["input_ids"].shape == (1, 5)


def test_transformer_encoder_missing_dir(tmp_path: Path) -> None:
    path = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="Transformer directory not found") as info:
        TransformerTextEncoder(str(path))
    assert str(path) in str(info.value)
