from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hashrepro.cli import main, make_cli
from hashrepro.models import DPSH
from hashrepro.models.dpsh import DPSHLoss, DPSHNet


class Flat(nn.Module):
    """A linear backbone with the ``out_features`` attribute the hash nets need."""

    def __init__(self, in_features: int, out_features: int = 16) -> None:
        super().__init__()
        self.out_features = out_features
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, out_features), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def one_hot(ids: list[int], c: int = 3) -> torch.Tensor:
    return F.one_hot(torch.tensor(ids), c).float()


def reference_nll(a: torch.Tensor, b: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    theta = 0.5 * a @ b.T
    return torch.log1p(torch.exp(theta)) - s * theta


def test_loss_against_memory_matches_the_formula() -> None:
    torch.manual_seed(0)
    u, other = torch.randn(4, 8), torch.randn(6, 8)
    labels, other_labels = one_hot([0, 1, 2, 0]), one_hot([0, 0, 1, 1, 2, 2])
    total, terms = DPSHLoss(eta=0.5)(u, labels, other, other_labels)
    s = (labels @ other_labels.T > 0).float()
    like = reference_nll(u, other, s).mean()
    quant = (u - torch.sign(u)).pow(2).mean()
    assert terms["likelihood"] == pytest.approx(float(like), rel=1e-5)
    assert terms["quantization"] == pytest.approx(float(quant), rel=1e-5)
    assert total == pytest.approx(float(like + 0.5 * quant), rel=1e-5)


def test_within_batch_pairs_leave_out_the_diagonal() -> None:
    torch.manual_seed(1)
    u, labels = torch.randn(5, 4), one_hot([0, 1, 0, 2, 1])
    _, terms = DPSHLoss(eta=0.0)(u, labels)
    nll = reference_nll(u, u, (labels @ labels.T > 0).float())
    off = ~torch.eye(5, dtype=torch.bool)
    assert terms["likelihood"] == pytest.approx(float(nll[off].mean()), rel=1e-5)


def test_eta_zero_drops_the_quantization_term_and_negative_eta_fails() -> None:
    u = torch.randn(3, 4, requires_grad=True)
    total, terms = DPSHLoss(eta=0.0)(u, one_hot([0, 1, 2]))
    assert float(total) == pytest.approx(float(terms["likelihood"]))
    with pytest.raises(ValueError, match="eta"):
        DPSHLoss(eta=-1.0)
    with pytest.raises(ValueError, match="both"):
        DPSHLoss()(u, one_hot([0, 1, 2]), other_codes=u)


def test_similar_pairs_aligned_score_lower_than_opposed() -> None:
    labels = one_hot([0, 0])
    aligned = torch.tensor([[3.0, 3.0], [3.0, 3.0]])
    opposed = torch.tensor([[3.0, 3.0], [-3.0, -3.0]])
    loss = DPSHLoss(eta=0.0)
    assert loss(aligned, labels)[0] < loss(opposed, labels)[0]


def test_memory_is_sized_by_num_items_and_not_saved() -> None:
    model = DPSH(Flat(4), num_bits=4, num_items=10)
    assert model.memory.image.shape == (10, 4)
    assert not any(k.startswith("memory.") for k in model.state_dict())
    with pytest.raises(ValueError, match="num_items"):
        DPSH(Flat(4), num_bits=4)
    assert DPSH(Flat(4), num_bits=4, memory=False).memory is None


def test_gradients_reach_the_batch_codes_only() -> None:
    torch.manual_seed(0)
    model = DPSH(Flat(12), num_bits=6, num_items=8)
    batch = {
        "image": torch.randn(8, 1, 3, 4),
        "label": one_hot([0, 1, 2, 0, 1, 2, 0, 1]),
        "index": torch.arange(8),
    }
    total, terms = model.compute_loss(batch)
    total.backward()
    assert set(terms) == {"likelihood", "quantization"}
    assert model.net.hash.weight.grad is not None
    assert not model.memory.image.requires_grad and int(model.memory.seen.sum()) == 8
    assert model.encode(batch)["image"].shape == (8, 6)


def test_network_shapes_and_plain_layer_option() -> None:
    net = DPSHNet(Flat(12), num_bits=5, code_norm=False)
    assert isinstance(net.norm, nn.Identity)
    assert net(torch.randn(3, 1, 3, 4)).shape == (3, 5)
    with pytest.raises(TypeError, match="out_features"):
        DPSHNet(nn.ReLU(), num_bits=4)


@pytest.mark.parametrize("memory", [True, False])
def test_training_separates_two_classes(memory: bool) -> None:
    torch.manual_seed(0)
    x = torch.cat([torch.randn(32, 1, 2, 2) + 2, torch.randn(32, 1, 2, 2) - 2])
    labels = one_hot([0] * 32 + [1] * 32, 2)
    model = DPSH(Flat(4), num_bits=8, num_items=64, memory=memory)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = {"image": x, "label": labels, "index": torch.arange(64)}
    first = float(model.compute_loss(batch)[0])
    for _ in range(60):
        loss, _ = model.compute_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < first
    model.eval()
    codes = torch.sign(model.encode(batch)["image"])
    same = (codes[:32] @ codes[:32].T).mean()
    cross = (codes[:32] @ codes[32:].T).mean()
    assert same > cross


def test_cli_fast_dev_run(repo: Path, in_tmp: Path) -> None:
    cli = main(
        [
            "fit",
            "--config",
            str(repo / "experiments/dpsh_mnist5k.yaml"),
            "--data",
            "Digits",
            "--model.init_args.num_bits",
            "12",
            "--trainer.logger",
            "false",
            "--trainer.fast_dev_run",
            "true",
            "--trainer.enable_progress_bar",
            "false",
            "--data.init_args.split_dir",
            "splits",
        ]
    )
    assert isinstance(cli.model, DPSH) and cli.model.num_bits == 12
    assert "test/mAP_i2i" in cli.trainer.callback_metrics


def test_config_parses_for_mnist5k(repo: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(repo / "experiments/dpsh_mnist5k.yaml"), "--print_config"])
    out = capsys.readouterr().out
    assert "class_path: hashrepro.models.DPSH" in out
    assert "class_path: hashrepro.data.MNIST5k" in out


def test_num_train_averages_the_first_epoch_over_n_rows() -> None:
    torch.manual_seed(0)
    batch = {
        "image": torch.randn(4, 1, 2, 2),
        "label": one_hot([0, 1, 2, 0]),
        "index": torch.arange(4),
    }
    torch.manual_seed(1)
    ours = DPSH(Flat(4), num_bits=6, num_items=4, eta=0.0)
    torch.manual_seed(1)
    authors = DPSH(Flat(4), num_bits=6, num_items=4, eta=0.0, num_train=10)
    seen_mean = float(ours.compute_loss(batch)[0])
    over_n = float(authors.compute_loss(batch)[0])  # 4 seen of 10: 6 rows of log 2
    assert over_n == pytest.approx((4 * seen_mean + 6 * math.log(2)) / 10, rel=1e-5)
    with pytest.warns(UserWarning, match="num_train=10 but the first epoch saw 4"):
        authors.on_train_epoch_end()
    with pytest.raises(ValueError, match="num_train must be a positive int"):
        DPSH(Flat(4), num_bits=6, num_items=4, num_train=0)


def test_num_train_is_linked_from_the_training_split(repo, in_tmp) -> None:
    cli = make_cli(
        ["--config", str(repo / "experiments/dpsh_mnist5k.yaml"), "--data", "Digits"], run=False
    )
    assert cli.model.num_train == len(cli.datamodule.split["train"]) == 500
