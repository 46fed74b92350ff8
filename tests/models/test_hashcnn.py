"""Unit tests of HashCNN: hash layer, network, loss terms and the module's training step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hashrepro.models.common import balance_loss, is_multilabel
from hashrepro.models.hashcnn import HashCNN, HashCNNLoss, HashCNNNet, HashLayer, sign_ste
from hashrepro.models.hashcnn.loss import decorrelation_loss

K, C = 16, 5


class TinyBackbone(nn.Module):
    """Stand-in backbone: flatten -> linear -> ReLU."""

    def __init__(self, in_shape: tuple[int, ...] = (1, 8, 8), out_features: int = 12) -> None:
        super().__init__()
        self.out_features = out_features
        n = 1
        for s in in_shape:
            n *= s
        self.fc = nn.Linear(n, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x.flatten(1)))


def hadamard(n: int) -> torch.Tensor:
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def single_labels(b: int, c: int = C) -> torch.Tensor:
    return torch.eye(c)[torch.arange(b) % c]


# ------------------------------------------------------------------------------ hash layer
@pytest.mark.parametrize("surrogate", ["tanh", "hardtanh"])
def test_proposed_layer_is_binary_in_training_and_passes_gradients(surrogate):
    torch.manual_seed(0)
    layer = HashLayer(12, K, "proposed", surrogate=surrogate).train()
    x = torch.randn(32, 12, requires_grad=True)
    codes, a = layer(x)
    assert codes.shape == a.shape == (32, K)
    assert torch.all((codes == 1) | (codes == -1))
    assert torch.equal(codes, torch.where(a >= 0, 1.0, -1.0))
    (codes * torch.randn_like(codes)).sum().backward()
    assert layer.fc.weight.grad is not None and layer.fc.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_sign_ste_gradients_match_the_surrogate():
    a = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    sign_ste(a, "hardtanh").sum().backward()
    assert torch.equal(a.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0]))
    a.grad = None
    sign_ste(a, "tanh").sum().backward()
    assert torch.allclose(a.grad, 1 - torch.tanh(a.detach()) ** 2)
    assert torch.equal(sign_ste(torch.zeros(3)), torch.ones(3))  # sign(0) = +1


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_relaxed_layer_is_in_open_interval_and_signs_match(activation):
    torch.manual_seed(0)
    layer = HashLayer(12, K, "relaxed", activation=activation).train()
    codes, a = layer(torch.randn(32, 12))
    assert torch.all(codes > -1) and torch.all(codes < 1)
    assert torch.equal(torch.sign(codes), torch.sign(a))
    assert not torch.all((codes == 1) | (codes == -1))


def test_hash_layer_rejects_unknown_modes():
    with pytest.raises(ValueError, match="mode"):
        HashLayer(4, 4, "binary")
    with pytest.raises(ValueError, match="surrogate"):
        HashLayer(4, 4, surrogate="relu")


# ------------------------------------------------------------------------------ network
@pytest.mark.parametrize("mode", ["proposed", "relaxed"])
def test_network_shapes_and_gradients(mode):
    torch.manual_seed(0)
    net = HashCNNNet(TinyBackbone(), K, C, hash_layer=mode)
    codes, a, logits = net(torch.rand(6, 1, 8, 8))
    assert codes.shape == (6, K) and a.shape == (6, K) and logits.shape == (6, C)
    logits.sum().backward()
    assert net.backbone.fc.weight.grad.abs().sum() > 0
    # codes keep their mode in eval too: binary for proposed
    net.eval()
    codes, a, _ = net(torch.rand(6, 1, 8, 8))
    if mode == "proposed":
        assert torch.all((codes == 1) | (codes == -1))


def test_network_needs_out_features():
    with pytest.raises(TypeError, match="out_features"):
        HashCNNNet(nn.Flatten(), K, C)


# ------------------------------------------------------------------------------ loss terms
def test_decorrelation_zero_for_orthogonal_balanced_codes_and_positive_for_duplicates():
    h = hadamard(16)[:, 1:9]  # (16, 8): orthogonal, balanced ±1 columns
    assert decorrelation_loss(h).item() == pytest.approx(0.0, abs=1e-7)
    assert balance_loss(h).item() == pytest.approx(0.0, abs=1e-7)
    dup = torch.cat([h[:, :4], h[:, :4]], dim=1)  # duplicated bits
    assert decorrelation_loss(dup).item() > 0.01
    assert balance_loss(dup).item() == pytest.approx(0.0, abs=1e-7)


def test_weight_zero_turns_a_term_off():
    torch.manual_seed(0)
    codes = torch.tanh(torch.randn(10, K)).requires_grad_()
    logits, labels = torch.randn(10, C), single_labels(10)
    full = HashCNNLoss(1.0, 1.0, 1.0, 1.0, multilabel=False)
    sem = HashCNNLoss(1.0, 0.0, 0.0, 0.0, multilabel=False)
    total_full, terms = full(codes, logits, labels)
    total_sem, terms_sem = sem(codes, logits, labels)
    assert total_full.item() == pytest.approx(sum(t.item() for t in terms.values()), rel=1e-6)
    assert total_sem.item() == pytest.approx(terms_sem["semantic"].item())
    assert set(terms_sem) == {"semantic", "decorrelation", "balance", "quantization"}
    assert all(terms_sem[k] > 0 for k in ("decorrelation", "balance", "quantization"))
    # the semantic-only total has no path to the codes (logits are a leaf here)
    assert not total_sem.requires_grad
    total_full.backward()
    assert codes.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="balance_weight"):
        HashCNNLoss(balance_weight=-1.0)


def test_multilabel_switch():
    single = single_labels(6)
    multi = single.clone()
    multi[0, 1] = 1.0
    assert not is_multilabel(single) and is_multilabel(multi)
    logits = torch.randn(6, C)
    auto = HashCNNLoss(multilabel=None)
    ce = torch.nn.functional.cross_entropy(logits, single.argmax(1))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, multi)
    codes = torch.ones(6, K)
    assert auto(codes, logits, single)[1]["semantic"].item() == pytest.approx(ce.item())
    assert auto(codes, logits, multi)[1]["semantic"].item() == pytest.approx(bce.item())
    forced = HashCNNLoss(multilabel=True)
    bce1 = torch.nn.functional.binary_cross_entropy_with_logits(logits, single)
    assert forced(codes, logits, single)[1]["semantic"].item() == pytest.approx(bce1.item())


# ------------------------------------------------------------------------------ module
@pytest.mark.parametrize(
    ("hash_layer", "weights"),
    [("proposed", (1.0, 0.1, 0.1, 0.0)), ("relaxed", (1.0, 0.1, 0.1, 0.1))],
)
def test_module_training_step_and_encode(hash_layer, weights, monkeypatch):
    torch.manual_seed(0)
    s, d, b, q = weights
    model = HashCNN(
        TinyBackbone(),
        num_bits=K,
        num_classes=C,
        hash_layer=hash_layer,
        semantic_weight=s,
        decorrelation_weight=d,
        balance_weight=b,
        quantization_weight=q,
    )
    logged = {}
    monkeypatch.setattr(model, "log", lambda name, value, **kw: logged.__setitem__(name, value))
    monkeypatch.setattr(model, "log_dict", lambda d, **kw: logged.update(d))
    batch = {
        "image": torch.rand(8, 1, 8, 8),
        "label": single_labels(8),
        "index": torch.arange(8),
    }
    loss = model.training_step(batch, 0)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert model.net.hash.fc.weight.grad.abs().sum() > 0
    assert model.net.backbone.fc.weight.grad.abs().sum() > 0
    assert set(logged) == {
        "train/loss",
        "train/semantic",
        "train/decorrelation",
        "train/balance",
        "train/quantization",
    }
    model.eval()
    with torch.no_grad():
        out = model.validation_step(batch, 0)
    assert out["codes"]["image"].shape == (8, K)
    codes, a, _ = model(batch["image"])
    assert torch.equal(torch.where(a >= 0, 1.0, -1.0), torch.where(codes >= 0, 1.0, -1.0))
    opt = model.configure_optimizers()
    assert isinstance(opt, torch.optim.Optimizer)
