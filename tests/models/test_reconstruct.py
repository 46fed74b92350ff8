"""Unit tests of the reconstruct-hashing losses, networks and loss wiring (no Trainer)."""

from __future__ import annotations

from functools import partial

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from hashrepro.models.reconstruct import (
    CodeDecoder,
    FeatureProjection,
    HashHead,
    ReconstructHashing,
    ReconstructHashingLoss,
    ReconstructionLoss,
    TwoTowerHashNet,
)
from hashrepro.models.reconstruct.loss import SideInputs

K = 8


class TinyImage(nn.Module):
    def __init__(self, out_features: int = 12) -> None:
        super().__init__()
        self.out_features = out_features
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, out_features), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TinyText(nn.Module):
    def __init__(self, in_features: int = 7, out_features: int = 10) -> None:
        super().__init__()
        self.out_features = out_features
        self.net = nn.Sequential(nn.Linear(in_features, out_features), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_batch(b: int = 6, num_classes: int = 3, offset: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(offset)
    cls = torch.arange(b) % num_classes
    return {
        "image": torch.rand(b, 2, 3, 3, generator=g),
        "text": torch.randn(b, 7, generator=g),
        "label": nn.functional.one_hot(cls, num_classes).float(),
        "index": torch.arange(offset, offset + b),
    }


def make_model(**kwargs) -> ReconstructHashing:
    torch.manual_seed(0)
    args = dict(
        image_net=TinyImage(), text_net=TinyText(), num_items=50, num_bits=K, hash_hidden=16
    )
    args.update(kwargs)
    return ReconstructHashing(**args)


# ----------------------------------------------------------------- losses on plain tensors
def test_reconstruction() -> None:
    x = torch.randn(4, 6)
    assert ReconstructionLoss(normalize_targets=False)(x, x) == 0
    assert ReconstructionLoss(normalize_targets=False)(x + 1, x) == pytest.approx(1.0)
    rec = ReconstructionLoss(normalize_targets=True)
    unit = nn.functional.normalize(x, dim=1) * 6**0.5
    assert rec(unit, x) < 1e-10
    assert rec(unit, 1000 * x) < 1e-10  # scale of the features does not matter
    with pytest.raises(ValueError):
        rec(x, torch.randn(4, 5))


def _side(requires_grad: bool = True) -> SideInputs:
    torch.manual_seed(1)
    labels = nn.functional.one_hot(torch.arange(4) % 2, 2).float()
    codes = torch.tanh(torch.randn(4, K)).requires_grad_(requires_grad)
    feats = torch.tanh(torch.randn(4, 5)).requires_grad_(requires_grad)
    pred = torch.randn(4, 6).requires_grad_(requires_grad)
    return SideInputs(
        codes=codes,
        binary=torch.sign(torch.randn(4, K)),
        labels=labels,
        other_codes=torch.randn(7, K),
        other_labels=nn.functional.one_hot(torch.arange(7) % 2, 2).float(),
        memory_codes=torch.cat([torch.randn(3, K), codes]),
        features=feats,
        other_features=torch.randn(4, 5),
        reconstructions={"a": (pred, torch.randn(4, 6))},
    )


def test_total_loss_is_weighted_sum_and_zero_weight_switches_off() -> None:
    side = _side()
    weights = dict(
        feature_weight=0.5,
        code_weight=2.0,
        quantization_weight=0.1,
        balance_weight=3.0,
        reconstruction_weight=0.7,
    )
    crit = ReconstructHashingLoss(**weights)
    total, terms = crit(side)
    assert set(terms) == set(ReconstructHashingLoss.TERMS)
    names = ["feature_relation", "likelihood", "quantization", "balance", "reconstruction"]
    expected = sum(w * terms[n] for w, n in zip(weights.values(), names, strict=True))
    assert torch.allclose(total, expected)
    # dcmh: no features, no reconstructions needed
    dcmh = ReconstructHashingLoss(feature_weight=0, reconstruction_weight=0)
    side.features = side.other_features = None
    side.reconstructions = {}
    _, terms = dcmh(side)
    assert set(terms) == {"likelihood", "quantization", "balance"}
    with pytest.raises(ValueError):
        ReconstructHashingLoss(code_weight=-1)


def test_zero_weight_term_absent_from_total() -> None:
    side = _side()
    names = dict(
        feature_weight="feature_relation",
        code_weight="likelihood",
        quantization_weight="quantization",
        balance_weight="balance",
        reconstruction_weight="reconstruction",
    )
    full_total, full_terms = ReconstructHashingLoss()(side)
    for weight, term in names.items():
        total, terms = ReconstructHashingLoss(**{weight: 0.0})(side)
        assert term not in terms
        assert torch.allclose(total, full_total - full_terms[term])


# ----------------------------------------------------------------- networks
def test_hash_head_and_decoder_shapes() -> None:
    x = torch.randn(5, 12)
    head = HashHead(12, K, hidden=16)
    codes = head(x)
    assert codes.shape == (5, K) and codes.abs().max() < 1
    assert len([m for m in head.modules() if isinstance(m, nn.Linear)]) == 2
    linear = HashHead(12, K, hidden=None, activation="identity")
    assert len([m for m in linear.modules() if isinstance(m, nn.Linear)]) == 1
    assert torch.allclose(linear(x), linear.net(x))
    with pytest.raises(ValueError):
        HashHead(12, K, activation="relu")
    assert CodeDecoder(K, 12, hidden=20)(codes).shape == (5, 12)
    proj = FeatureProjection(12, 4)
    assert proj(x).shape == (5, 4) and proj(x).abs().max() < 1


def test_two_tower_shapes_and_sides() -> None:
    net = TwoTowerHashNet(
        TinyImage(), TinyText(), K, hash_hidden=16, feature_dim=4, reconstruct=True
    )
    batch = make_batch()
    out = net(batch["image"], batch["text"])
    for m, d in (("image", 12), ("text", 10)):
        assert out[m]["feature"].shape == (6, d)
        assert out[m]["code"].shape == (6, K)
        assert out[m]["projection"].shape == (6, 4)
        assert out[m]["reconstruction"]["image"].shape == (6, 12)
        assert out[m]["reconstruction"]["text"].shape == (6, 10)
    img, txt = net.side_parameters("image"), net.side_parameters("text")
    ids_i, ids_t = {id(p) for p in img}, {id(p) for p in txt}
    assert not ids_i & ids_t
    assert ids_i | ids_t == {id(p) for p in net.parameters()}
    bare = TwoTowerHashNet(TinyImage(), TinyText(), K)
    assert bare.projections is None and bare.decoders is None
    assert "projection" not in bare.forward_side("image", batch["image"])
    with pytest.raises(TypeError):
        TwoTowerHashNet(nn.Identity(), TinyText(), K)


# ----------------------------------------------------------------- module wiring (no Trainer)
def test_module_encode_and_losses() -> None:
    model = make_model(feature_dim=4)
    batch = make_batch()
    codes = model.encode(batch)
    assert codes["image"].shape == codes["text"].shape == (6, K)
    assert set(model.encode({"text": batch["text"]})) == {"text"}

    results = model.compute_losses(batch)
    assert torch.equal(model.memory.seen_index(), batch["index"])
    assert set(results["image"][1]) == set(ReconstructHashingLoss.TERMS)
    # each side's loss only reaches that side's parameters (the other modality is fixed)
    for side, other in (("image", "text"), ("text", "image")):
        params = model.net.side_parameters(side) + model.net.side_parameters(other)
        grads = torch.autograd.grad(results[side][0], params, allow_unused=True, retain_graph=True)
        n = len(model.net.side_parameters(side))
        assert all(g is not None for g in grads[:2])  # the backbone reaches the loss
        assert all(g is None for g in grads[n:])


def test_module_training_reduces_loss() -> None:
    model = make_model(feature_dim=4)
    opts = model.configure_optimizers()
    assert len(opts) == 2
    opt_i, opt_t = (
        torch.optim.Adam(model.net.side_parameters(m), lr=1e-2) for m in ("image", "text")
    )
    batches = [make_batch(offset=o) for o in (0, 6)]
    first = None
    for step in range(60):
        res = model.compute_losses(batches[step % 2])
        for side, opt in (("image", opt_i), ("text", opt_t)):
            opt.zero_grad()
            res[side][0].backward()
            opt.step()
        total = float(res["image"][0].detach() + res["text"][0].detach())
        first = total if first is None else first
        if step % 2:
            model.memory.refresh_binary()
    assert total < 0.7 * first
    assert int(model.memory.seen.sum()) == 12


def test_dcmh_variant_builds_no_extra_modules() -> None:
    model = make_model(
        variant="dcmh",
        hash_hidden=None,
        feature_weight=0.0,
        reconstruction_weight=0.0,
    )
    assert model.net.projections is None and model.net.decoders is None
    linears = [m for m in model.net.hash_nets["image"].modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1
    res = model.compute_losses(make_batch())
    assert set(res["text"][1]) == {"likelihood", "quantization", "balance"}
    assert model.hparams.variant == "dcmh"


def test_trainer_loop_steps_both_optimizers_and_schedulers() -> None:
    batches = [make_batch(offset=o) for o in (0, 6, 12)]
    items = [{k: v[i] for k, v in b.items()} for b in batches for i in range(6)]
    model = make_model(
        feature_dim=4,
        optimizer=partial(torch.optim.SGD, lr=0.1),
        scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
    )
    before = {
        m: [p.detach().clone() for p in model.net.side_parameters(m)] for m in ("image", "text")
    }
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_dataloaders=DataLoader(items, batch_size=6, shuffle=True))
    assert [o.param_groups[0]["lr"] for o in trainer.optimizers] == [0.025, 0.025]
    for m in ("image", "text"):
        after = model.net.side_parameters(m)
        assert any(not torch.equal(a, b) for a, b in zip(after, before[m], strict=True))
    assert int(model.memory.seen.sum()) == 18
    f, g = model.memory.image[:18], model.memory.text[:18]
    assert torch.equal(model.memory.binary[:18], torch.where(f + g >= 0, 1.0, -1.0))
    for key in ("train/loss", "train/likelihood", "train/reconstruction", "train/feature_relation"):
        assert key in trainer.callback_metrics
