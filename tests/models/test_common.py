"""The shared hashing primitives on plain tensors: sign, pairwise terms, quantization, memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hashrepro.models.common import (
    MODALITIES,
    CodeMemory,
    balance_loss,
    is_multilabel,
    label_similarity,
    pairwise_likelihood,
    quantization_loss,
    sign,
)

K = 8


def hadamard(n: int) -> torch.Tensor:
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def one_hot(ids: list[int], c: int = 3) -> torch.Tensor:
    return nn.functional.one_hot(torch.tensor(ids), c).float()


# ----------------------------------------------------------------- sign
def test_sign_maps_zero_to_plus_one_for_tensors_and_arrays() -> None:
    x = torch.tensor([[-2.0, -0.0, 0.0, 3.5]], requires_grad=True)
    out = sign(x)
    assert out.tolist() == [[-1.0, 1.0, 1.0, 1.0]] and out.dtype == torch.float32
    assert not out.requires_grad
    assert sign(x, torch.int8).dtype == torch.int8
    arr = sign(np.array([-1.5, 0.0, 2.0]), np.int8)
    assert arr.tolist() == [-1, 1, 1] and arr.dtype == np.int8
    assert sign(np.array([-0.5, 0.0])).dtype == np.float64


def test_is_multilabel_for_tensors_and_arrays() -> None:
    single = torch.eye(3)[[0, 1, 2, 0]]
    assert not is_multilabel(single) and not is_multilabel(single.numpy())
    multi = single.clone()
    multi[0, 1] = 1.0
    assert is_multilabel(multi) and is_multilabel(multi.numpy())
    assert is_multilabel(torch.zeros(2, 3))  # an unlabelled row is not single-label


# ----------------------------------------------------------------- pairwise terms
def test_label_similarity_multi_hot() -> None:
    a = torch.tensor([[1.0, 0, 0], [0, 1, 1]])
    b = torch.tensor([[1.0, 1, 0], [0, 0, 1], [0, 0, 0]])
    assert torch.equal(label_similarity(a, b), torch.tensor([[1.0, 0, 0], [1, 1, 0]]))


def test_likelihood_prefers_codes_agreeing_with_similarity() -> None:
    torch.manual_seed(0)
    labels = nn.functional.one_hot(torch.arange(8) % 2, 2).float()
    s = label_similarity(labels, labels)
    proto = torch.sign(torch.randn(2, K))
    good = proto[torch.arange(8) % 2]  # same-class codes equal, classes differ
    bad = -good  # text codes opposite to the images'
    good_loss = pairwise_likelihood(good, good, s, 0.5)
    bad_loss = pairwise_likelihood(good, bad, s, 0.5)
    assert good_loss < bad_loss
    # direct formula: mean(log(1 + e^T) - S T)
    theta = 0.5 * good @ good.T
    assert torch.allclose(good_loss, (torch.log1p(theta.exp()) - s * theta).mean())
    # stable for large inner products
    big = pairwise_likelihood(100 * good, 100 * bad, s, 0.5)
    assert torch.isfinite(big) and big > 0


def test_likelihood_mask_and_shape_checks() -> None:
    a, b = torch.randn(3, K), torch.randn(4, K)
    s = torch.zeros(3, 4)
    mask = torch.tensor([True, False, True, False])
    theta = 0.5 * a @ b[mask].T
    got = pairwise_likelihood(a, b, s, mask=mask)
    assert torch.allclose(got, nn.functional.softplus(theta).mean())
    with pytest.raises(ValueError):
        pairwise_likelihood(a, b, torch.zeros(4, 3))
    with pytest.raises(ValueError):
        pairwise_likelihood(a, torch.randn(4, K + 1), s)


# ----------------------------------------------------------------- quantization and balance
def test_quantization_zero_for_binary_codes() -> None:
    b = torch.sign(torch.randn(5, K))
    assert quantization_loss(b, b) == 0
    assert quantization_loss(0.5 * b, b) == pytest.approx(0.25)


def test_quantization_zero_for_binary_positive_for_relaxed() -> None:
    assert quantization_loss(hadamard(8)).item() == 0.0
    h = torch.full((4, 2), 0.5)
    assert quantization_loss(h).item() == pytest.approx(0.25)


def test_balance() -> None:
    balanced = torch.tensor([[1.0, -1], [-1, 1], [1, 1], [-1, -1]])
    assert balance_loss(balanced) == 0
    constant = torch.ones(4, 2)
    assert balance_loss(constant) == pytest.approx(1.0)  # mean_k (mean_i F_ik)^2
    # memory of 4 rows of which 2 are live: ||F^T 1||^2 / (rows * live * K)
    assert balance_loss(constant, num_live=2) == pytest.approx(16 * 2 / (4 * 2 * 2))


def test_balance_positive_for_unbalanced_bits() -> None:
    h = torch.ones(8, 4)
    assert balance_loss(h).item() == pytest.approx(1.0)
    h[:, :2] = -1  # still each bit constant: fully unbalanced
    assert balance_loss(h).item() == pytest.approx(1.0)
    h[:4] *= -1  # each bit half +1, half -1
    assert balance_loss(h).item() == pytest.approx(0.0)


# ----------------------------------------------------------------- the code memory
def test_code_memory_update_binary_and_reload() -> None:
    mem = CodeMemory(10, K, MODALITIES)
    idx = torch.tensor([2, 5])
    f, g = torch.randn(2, K), torch.randn(2, K)
    mem.update(idx, image=f, text=g, labels=torch.tensor([[1.0, 0, 0], [0, 1, 0]]))
    assert mem.labels.shape == (10, 3)
    assert torch.equal(mem.seen_index(), idx)
    mem.init_binary(idx)
    expected = torch.where(f + g >= 0, 1.0, -1.0)
    assert torch.equal(mem.binary[idx], expected)
    mem.update(idx, image=-f, text=-g)
    mem.init_binary(idx)  # already set: unchanged until the epoch's refresh
    assert torch.equal(mem.binary[idx], expected)
    mem.refresh_binary()
    assert torch.equal(mem.binary[idx], torch.where(-f - g >= 0, 1.0, -1.0))
    fresh = CodeMemory(10, K, MODALITIES)
    fresh.load_state_dict(mem.state_dict())  # labels buffer resized from (10, 0)
    assert torch.equal(fresh.labels, mem.labels)
    with pytest.raises(IndexError, match="num_items"):
        mem.update(torch.tensor([10]), image=torch.randn(1, K))


def test_code_memory_stores_and_checks_classes() -> None:
    mem = CodeMemory(10, 4, persistent=False)
    mem.update(torch.tensor([5, 2]), labels=one_hot([0, 1]), image=torch.ones(2, 4))
    codes, labels = mem.stored()
    assert codes.shape == (2, 4) and labels.shape == (2, 3)
    mem.update(torch.tensor([9]), labels=one_hot([2]), image=-torch.ones(1, 4))
    codes, labels = mem.stored()
    assert codes.shape == (3, 4) and len(mem.seen) == 10
    assert torch.equal(codes[-1], -torch.ones(4)) and labels[-1, 2] == 1
    with pytest.raises(ValueError, match="classes"):
        mem.update(torch.tensor([0]), labels=torch.ones(1, 5), image=torch.ones(1, 4))
    with pytest.raises(IndexError, match="item index -1"):
        mem.update(torch.tensor([-1]), image=torch.ones(1, 4))
    with pytest.raises(ValueError, match="not 'text'"):
        mem.update(torch.tensor([0]), text=torch.ones(1, 4))
    assert not mem.state_dict()  # training state only: not saved in checkpoints
