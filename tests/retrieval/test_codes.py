"""Tests for binarisation, bit packing and Hamming distances."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashrepro.retrieval import binarize, codes, hamming_distance, pack_codes

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def brute_hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Q, N) count of differing signs, 0 counted as positive."""
    sa, sb = a >= 0, b >= 0
    return np.array([[int(np.sum(x != y)) for y in sb] for x in sa])


def test_binarize_maps_zero_to_plus_one() -> None:
    out = binarize(np.array([[-2.0, -0.0, 0.0, 3.5]]))
    assert out.dtype == torch.int8
    assert out.tolist() == [[-1, 1, 1, 1]]


def test_binarize_keeps_shape_and_accepts_tensors() -> None:
    x = torch.tensor([[-1, 0], [2, -3]], dtype=torch.int64)
    assert binarize(x).tolist() == [[-1, 1], [1, -1]]


@pytest.mark.parametrize("bad", [np.array([True, False]), np.array([0.5, np.nan])])
def test_binarize_rejects_bool_and_nan(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        binarize(bad)


@pytest.mark.parametrize("k", [1, 7, 8, 9, 16, 33])
def test_pack_codes_matches_numpy_packbits(k: int) -> None:
    x = np.random.default_rng(k).normal(size=(5, k))
    x[0, 0] = 0.0  # packs as a 1 bit
    packed = pack_codes(x)
    assert packed.dtype == torch.uint8
    assert packed.shape == (5, (k + 7) // 8)
    np.testing.assert_array_equal(packed.numpy(), np.packbits(x >= 0, axis=1))


def test_pack_codes_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        pack_codes(np.ones(4))
    with pytest.raises(ValueError):
        pack_codes(np.ones((3, 0)))


@SETTINGS
@given(
    k=st.integers(1, 140),
    q=st.integers(1, 5),
    n=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
    numpy_path=st.booleans(),
)
def test_hamming_distance_matches_brute_force(
    monkeypatch: pytest.MonkeyPatch, k: int, q: int, n: int, seed: int, numpy_path: bool
) -> None:
    monkeypatch.setattr(codes, "_NUMPY_FAST_PATH", numpy_path)
    rng = np.random.default_rng(seed)
    # ternary codes (0 binarizes to +1), scaled so that no draw looks like {0,1} bits
    a, b = 0.5 * rng.integers(-1, 2, size=(q, k)), 0.5 * rng.integers(-1, 2, size=(n, k))
    dist = hamming_distance(pack_codes(a), pack_codes(b))
    assert dist.dtype == torch.int32
    np.testing.assert_array_equal(dist.numpy(), brute_hamming(a, b))


def test_hamming_distance_chunks_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codes, "_HAMMING_CHUNK_BYTES", 1)  # one query per chunk
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 70)), rng.normal(size=(11, 70))
    np.testing.assert_array_equal(
        hamming_distance(pack_codes(a), pack_codes(b)), brute_hamming(a, b)
    )


def test_popcount_handles_the_sign_bit() -> None:
    words = torch.tensor([-1, -(2**63), 2**63 - 1, 0, 0x0F0F], dtype=torch.int64)
    assert codes._popcount64(words).tolist() == [64, 1, 63, 0, 8]


def test_hamming_distance_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="widths differ"):
        hamming_distance(pack_codes(np.ones((2, 9))), pack_codes(np.ones((2, 8))))
    with pytest.raises(ValueError, match="uint8"):
        hamming_distance(np.ones((2, 1)), pack_codes(np.ones((2, 8))))
