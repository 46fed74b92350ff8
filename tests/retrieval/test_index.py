"""HammingIndex: every backend against brute force, ties in id order, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashrepro.retrieval import codes, native
from hashrepro.retrieval import index as index_module
from hashrepro.retrieval.codes_file import CodesFile, read_codes, write_codes
from hashrepro.retrieval.index import HammingIndex

SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# (backend, kernel path): the exact scan on compiled / NumPy / torch kernels, and FAISS
EXACT_PATHS = ("native", "numpy", "torch") if native.kernels() is not None else ("numpy", "torch")
BACKENDS = [("exact", p) for p in EXACT_PATHS] + [("faiss", "numpy"), ("mih", "numpy")]


@pytest.fixture
def path(monkeypatch: pytest.MonkeyPatch):
    def use(name: str) -> None:
        monkeypatch.setattr(codes, "_NUMPY_FAST_PATH", name != "torch")
        monkeypatch.setattr(native, "_ENABLED", name == "native")

    return use


@st.composite
def collections(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) database and (Q, K) query codes in {-1, +1} with many ties and duplicates."""
    k = draw(st.sampled_from([1, 5, 8, 16, 33, 64, 65, 130]))
    n, q = draw(st.integers(0, 300)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    proto = rng.choice([-1.0, 1.0], size=(3, k))
    flip = draw(st.sampled_from([0.0, 0.05, 0.3, 0.5]))

    def make(rows: int) -> np.ndarray:
        base = proto[rng.integers(0, 3, rows)]
        return np.where(rng.random((rows, k)) < flip, -base, base)

    return make(n), make(q)


def brute(db: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(Q, N) Hamming distances from the signs."""
    return ((queries[:, None, :] >= 0) != (db[None, :, :] >= 0)).sum(axis=2)


def expected_top_k(dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n = dist.shape[1]
    ids = np.full((len(dist), k), -1)
    d = np.full((len(dist), k), -1)
    for i, row in enumerate(dist):
        order = np.lexsort((np.arange(n), row))[:k]  # by distance, then id
        ids[i, : len(order)], d[i, : len(order)] = order, row[order]
    return d, ids


def build(db: np.ndarray, n_bits: int, backend: str, nhash: int | None = None) -> HammingIndex:
    index = HammingIndex(n_bits, backend=backend, nhash=nhash)
    half = len(db) // 2  # two adds: ids continue across them
    index.add(db[:half])
    index.add(db[half:])
    return index


@SETTINGS
@given(data=collections(), k=st.integers(1, 310), which=st.sampled_from(BACKENDS), nhash=st.data())
def test_search_matches_brute_force(path, data, k, which, nhash) -> None:
    backend, kernels = which
    path(kernels)
    db, queries = data
    n_bits = db.shape[1]
    h = nhash.draw(st.one_of(st.none(), st.integers(1, min(n_bits, 8))))
    index = build(db, n_bits, backend, h if backend == "mih" else None)
    dist, ids = index.search(queries, k)
    want_d, want_ids = expected_top_k(brute(db, queries), k)
    assert dist.dtype == np.int32 and ids.dtype == np.int64 and dist.shape == (len(queries), k)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(dist, want_d)


@SETTINGS
@given(data=collections(), radius=st.integers(0, 140), which=st.sampled_from(BACKENDS))
def test_range_search_matches_brute_force(path, data, radius, which) -> None:
    backend, kernels = which
    path(kernels)
    db, queries = data
    index = build(db, db.shape[1], backend)
    lims, dist, ids = index.range_search(queries, radius)
    assert lims.shape == (len(queries) + 1,) and lims[0] == 0 and lims[-1] == len(ids)
    for i, row in enumerate(brute(db, queries)):
        inside = np.flatnonzero(row <= radius)
        order = inside[np.lexsort((inside, row[inside]))]
        np.testing.assert_array_equal(ids[lims[i] : lims[i + 1]], order)
        np.testing.assert_array_equal(dist[lims[i] : lims[i + 1]], row[order])


def test_backends_agree_on_a_tied_collection_larger_than_blocks(path, monkeypatch) -> None:
    monkeypatch.setattr(index_module, "_SCAN_BLOCK_BYTES", 8 * 999)  # 21 database blocks
    monkeypatch.setattr(index_module, "_QUERY_CHUNK", 2)  # 3 query chunks over the threads
    rng = np.random.default_rng(0)
    proto = rng.choice([-1.0, 1.0], size=(4, 64))
    db = np.where(rng.random((20000, 64)) < 0.02, -1, 1) * proto[rng.integers(0, 4, 20000)]
    queries = proto[[0, 1, 2, 3, 0]] * np.where(rng.random((5, 64)) < 0.05, -1, 1)
    want_d, want_ids = expected_top_k(brute(db, queries), 100)
    for backend, kernels in BACKENDS:
        path(kernels)
        dist, ids = HammingIndex.from_codes(db, backend=backend).search(queries, 100)
        np.testing.assert_array_equal(ids, want_ids, err_msg=f"{backend}/{kernels}")
        np.testing.assert_array_equal(dist, want_d, err_msg=f"{backend}/{kernels}")


def test_packed_codes_and_real_codes_give_one_index() -> None:
    rng = np.random.default_rng(1)
    db, q = rng.normal(size=(50, 12)), rng.normal(size=(3, 12))
    packed = codes.pack_codes(db).numpy()
    a = HammingIndex.from_codes(db).search(q, 7)
    b = HammingIndex.from_codes(packed, n_bits=12).search(codes.pack_codes(q), 7)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_bad_inputs_fail_with_one_line() -> None:
    index = HammingIndex(12)
    with pytest.raises(ValueError, match="padding bits"):
        index.add(np.full((2, 2), 255, dtype=np.uint8))
    with pytest.raises(ValueError, match="bytes per row"):
        index.add(np.zeros((2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="codes have 5 bits"):
        index.add(np.ones((2, 5)))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(np.ones((1, 12)), 0)
    with pytest.raises(ValueError, match="radius must be"):
        index.range_search(np.ones((1, 12)), -1)
    with pytest.raises(ValueError, match="backend must be one of"):
        HammingIndex(12, backend="annoy")
    with pytest.raises(ValueError, match="packed uint8 codes need n_bits"):
        HammingIndex.from_codes(np.zeros((2, 2), dtype=np.uint8))


def test_empty_index_pads_search_results() -> None:
    for backend in ("exact", "faiss", "mih"):
        dist, ids = HammingIndex(16, backend=backend).search(np.ones((2, 16)), 3)
        assert (dist == -1).all() and (ids == -1).all()


@pytest.mark.parametrize("backend", ["exact", "faiss", "mih"])
def test_save_and_load_round_trip(tmp_path, backend: str) -> None:
    rng = np.random.default_rng(2)
    db, q = rng.normal(size=(200, 20)), rng.normal(size=(4, 20))
    index = HammingIndex.from_codes(db, backend=backend)
    path = index.save(tmp_path / "index")
    assert path.name == "index.npz"
    loaded = HammingIndex.load(path)
    assert loaded.backend == backend and loaded.n_bits == 20 and len(loaded) == 200
    for x, y in zip(index.search(q, 9), loaded.search(q, 9), strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(FileNotFoundError, match="no such index file"):
        HammingIndex.load(tmp_path / "missing.npz")


def test_index_from_a_codes_file(tmp_path) -> None:
    rng = np.random.default_rng(3)
    img, txt = rng.normal(size=(30, 10)), rng.normal(size=(30, 10))
    file = CodesFile(
        n_bits=10,
        codes={"image": codes.pack_codes(img).numpy(), "text": codes.pack_codes(txt).numpy()},
        index=np.arange(100, 130),
        labels=np.eye(3, dtype=np.float32)[rng.integers(0, 3, 30)],
        split="database",
        meta={"model": "test"},
    )
    path = write_codes(tmp_path / "codes", file)
    back = read_codes(path)
    assert back.modalities == ["image", "text"] and back.meta == {"model": "test"}
    np.testing.assert_array_equal(back.index, file.index)
    index = HammingIndex.from_predictions(path, modality="text")
    _, ids = index.search(txt[:2], 1)
    assert ids[:, 0].tolist() == [0, 1]
    with pytest.raises(ValueError, match="choose a modality"):
        HammingIndex.from_predictions(path)
    with pytest.raises(FileNotFoundError, match="hashrepro predict"):
        read_codes(tmp_path / "nope.npz")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_exact_backend_on_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(4)
    db, q = rng.normal(size=(5000, 64)), rng.normal(size=(10, 64))
    cpu = HammingIndex.from_codes(db).search(q, 50)
    gpu = HammingIndex.from_codes(db, device="cuda").search(q, 50)
    for x, y in zip(cpu, gpu, strict=True):
        np.testing.assert_array_equal(x, y)


def test_mih_finds_near_neighbours_without_a_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    proto = rng.choice([-1.0, 1.0], size=(50, 64))
    db = proto[rng.integers(0, 50, 20000)] * np.where(rng.random((20000, 64)) < 0.03, -1, 1)
    queries = proto[:8] * np.where(rng.random((8, 64)) < 0.03, -1, 1)
    index = HammingIndex.from_codes(db, backend="mih")

    def no_scan(*args, **kwargs):
        raise AssertionError("multi-index hashing fell back to a scan")

    monkeypatch.setattr(index, "_exact_search", no_scan)
    dist, ids = index.search(queries, 20)
    want_d, want_ids = expected_top_k(brute(db, queries), 20)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(dist, want_d)
    assert index.nhash == round(64 / np.log2(20000))
