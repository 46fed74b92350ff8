"""DCMH's and DPSH's losses against their published formulas, summed by hand on fixed tensors."""

from __future__ import annotations

import math

import pytest
import torch

from hashrepro.models.dpsh import DPSHLoss
from hashrepro.models.reconstruct.loss import ReconstructHashingLoss, SideInputs

F_LIVE = torch.tensor([[0.5, -1.0, 0.2], [-0.3, 0.8, 1.5]])  # (B=2, K=3) live image codes
G_MEM = torch.tensor(  # (N=4, K=3) the text-code memory
    [[1.0, -0.5, 0.3], [-0.2, 0.4, -1.1], [0.7, 0.7, 0.0], [-1.2, 0.1, 0.6]]
)
F_REST = torch.tensor([[0.9, 0.1, -0.4], [-0.6, -0.2, 0.3]])  # the other 2 image-memory rows
LABELS = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # (B, C)
MEM_LABELS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 1.0]])  # (N, C)
BINARY = torch.tensor([[1.0, -1.0, 1.0], [-1.0, 1.0, 1.0]])  # (B, K) B = sign(F + G)


def dcmh_sums() -> tuple[float, float, float]:
    """DCMH's three sums, term by term (Jiang & Li, CVPR 2017, eq. 4)."""
    like = 0.0
    for i in range(2):
        for j in range(4):
            s = float(sum(LABELS[i, c] * MEM_LABELS[j, c] for c in range(2)) > 0)
            theta = 0.5 * sum(float(F_LIVE[i, k] * G_MEM[j, k]) for k in range(3))
            like += math.log(1 + math.exp(theta)) - s * theta
    quant = sum(float((BINARY[i, k] - F_LIVE[i, k]) ** 2) for i in range(2) for k in range(3))
    rows = torch.cat([F_REST, F_LIVE])
    balance = sum(sum(float(rows[r, k]) for r in range(4)) ** 2 for k in range(3))
    return like, quant, balance


def side() -> SideInputs:
    return SideInputs(
        codes=F_LIVE,
        binary=BINARY,
        labels=LABELS,
        other_codes=G_MEM,
        other_labels=MEM_LABELS,
        memory_codes=torch.cat([F_REST, F_LIVE]),
    )


def dcmh_loss(gamma: float, eta: float, normalization: str) -> ReconstructHashingLoss:
    return ReconstructHashingLoss(
        feature_weight=0.0,
        reconstruction_weight=0.0,
        quantization_weight=gamma,
        balance_weight=eta,
        normalization=normalization,
    )


@pytest.mark.parametrize(("gamma", "eta"), [(1.0, 1.0), (2.0, 0.5)])
def test_dcmh_sum_form_is_the_authors_loss(gamma: float, eta: float) -> None:
    like, quant, balance = dcmh_sums()
    # the authors' code: (logloss + gamma * quantization + eta * balance) / (num_train * batch)
    expected = (like + gamma * quant + eta * balance) / (4 * 2)
    total, terms = dcmh_loss(gamma, eta, "sum")(side())
    assert float(total) == pytest.approx(expected, rel=1e-6)
    assert float(terms["likelihood"]) == pytest.approx(like / 8, rel=1e-6)
    assert float(terms["quantization"]) == pytest.approx(quant / 8, rel=1e-6)
    assert float(terms["balance"]) == pytest.approx(balance / 8, rel=1e-6)


def test_mean_form_is_dcmh_with_gamma_n_over_k_and_eta_one_over_k() -> None:
    like, quant, balance = dcmh_sums()
    n, k = 4, 3  # memory rows (all stored rows are N here), bits
    total, _ = dcmh_loss(1.0, 1.0, "mean")(side())
    assert float(total) == pytest.approx((like + n / k * quant + balance / k) / (n * 2), rel=1e-6)
    same, _ = dcmh_loss(n / k, 1 / k, "sum")(side())
    assert float(same) == pytest.approx(float(total), rel=1e-6)


def test_unknown_normalization_raises() -> None:
    with pytest.raises(ValueError, match="normalization must be one of"):
        dcmh_loss(1.0, 1.0, "median")


def test_dpsh_loss_is_the_formula_summed_by_hand() -> None:
    # DPSH (Li, Wang & Kang, IJCAI 2016): sum_ij [log(1 + e^theta_ij) - s_ij theta_ij]
    # + eta sum_i ||u_i - b_i||^2, here both as means (pairs; code elements).
    u, eta = F_LIVE, 0.3
    like = 0.0
    for i in range(2):
        for j in range(4):
            s = float(float(LABELS[i] @ MEM_LABELS[j]) > 0)
            theta = 0.5 * float(u[i] @ G_MEM[j])
            like += math.log(1 + math.exp(theta)) - s * theta
    quant = sum(
        float((u[i, k] - (1.0 if u[i, k] >= 0 else -1.0)) ** 2) for i in range(2) for k in range(3)
    )
    total, terms = DPSHLoss(eta=eta)(u, LABELS, G_MEM, MEM_LABELS)
    assert float(terms["likelihood"]) == pytest.approx(like / 8, rel=1e-6)
    assert float(terms["quantization"]) == pytest.approx(quant / 6, rel=1e-6)
    assert float(total) == pytest.approx(like / 8 + eta * quant / 6, rel=1e-6)


def test_dpsh_zero_rows_of_the_authors_memory_scale_the_likelihood_by_seen_over_n() -> None:
    # The authors' memory U starts at zero: unseen rows give theta = 0, i.e. log 2 and no
    # gradient. Over N = 6 rows of which 4 are seen, their mean likelihood is
    # 4/6 * (ours, the mean over the seen rows) + 2/6 * log 2.
    u = F_LIVE.clone().requires_grad_(True)
    zeros = torch.zeros(2, 3)
    full, _ = DPSHLoss(eta=0.0)(
        u, LABELS, torch.cat([G_MEM, zeros]), torch.cat([MEM_LABELS, torch.zeros(2, 2)])
    )
    seen, _ = DPSHLoss(eta=0.0)(u, LABELS, G_MEM, MEM_LABELS)
    assert float(full.detach()) == pytest.approx(4 / 6 * float(seen.detach()) + 2 / 6 * math.log(2))
    g_full = torch.autograd.grad(full, u)[0]
    g_seen = torch.autograd.grad(seen, u)[0]
    torch.testing.assert_close(g_full, 4 / 6 * g_seen)


def test_dpsh_num_rows_is_the_authors_memory_of_zero_rows() -> None:
    u = F_LIVE.clone().requires_grad_(True)
    zeros, no_labels = torch.zeros(2, 3), torch.zeros(2, 2)
    authors, _ = DPSHLoss(eta=0.3)(
        u, LABELS, torch.cat([G_MEM, zeros]), torch.cat([MEM_LABELS, no_labels])
    )
    ours, terms = DPSHLoss(eta=0.3)(u, LABELS, G_MEM, MEM_LABELS, num_rows=6)
    assert float(ours.detach()) == pytest.approx(float(authors.detach()), rel=1e-6)
    torch.testing.assert_close(torch.autograd.grad(ours, u)[0], torch.autograd.grad(authors, u)[0])
    with pytest.raises(ValueError, match="num_train=3 but 4 training items were seen"):
        DPSHLoss()(u, LABELS, G_MEM, MEM_LABELS, num_rows=3)
