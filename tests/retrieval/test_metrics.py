"""Retrieval metrics against plain brute-force references, torchmetrics and edge cases."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torchmetrics.functional.retrieval import retrieval_average_precision
from torchmetrics.retrieval import RetrievalMAP

from hashrepro.retrieval import (
    average_precisions,
    codes,
    mean_average_precision,
    metrics,
    native,
    precision_at_hamming_radius,
    precision_at_k,
    precision_recall_curve,
)

SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TOL = 1e-10


# ----------------------------------------------------------------------------- brute force


@dataclass
class Case:
    qc: np.ndarray  # (Q, K) codes with zeros and non-unit values
    dc: np.ndarray  # (N, K)
    ql: np.ndarray  # (Q,) ids or (Q, C) multi-hot
    dl: np.ndarray  # (N,) ids or (N, C) multi-hot

    def args(self) -> tuple[np.ndarray, ...]:
        return self.qc, self.dc, self.ql, self.dl

    @cached_property
    def distances(self) -> list[list[int]]:
        return [
            [sum((a >= 0) != (b >= 0) for a, b in zip(q, d, strict=True)) for d in self.dc]
            for q in self.qc
        ]

    @cached_property
    def relevance(self) -> list[list[bool]]:
        def sets(labels: np.ndarray) -> list[set[int]]:
            if labels.ndim == 1 or labels.shape[1] == 1:  # an (N, 1) column holds class ids
                return [{int(x)} for x in labels.reshape(-1)]
            return [{j for j, v in enumerate(row) if v > 0} for row in labels]

        return [[bool(a & b) for b in sets(self.dl)] for a in sets(self.ql)]


def ap_of(pattern: Sequence[bool], depth: int) -> float:
    """AP of a ranked relevance list cut at depth, normalised by the hits in the cut."""
    hits, total = 0, 0.0
    for rank, rel in enumerate(pattern[:depth], start=1):
        if rel:
            hits += 1
            total += hits / rank
    return total / hits if hits else 0.0


def index_patterns(case: Case) -> list[list[bool]]:
    """Ranked relevance per query; Python's sort is stable, so ties keep database order."""
    out = []
    for dist, rel in zip(case.distances, case.relevance, strict=True):
        order = sorted(range(len(dist)), key=dist.__getitem__)
        out.append([rel[j] for j in order])
    return out


def tie_patterns(dist: list[int], rel: list[bool]) -> Iterator[list[bool]]:
    """Every equally likely ranked relevance list when each tie bucket is shuffled."""
    per_bucket = []
    for b in sorted(set(dist)):
        members = [rel[j] for j in range(len(dist)) if dist[j] == b]
        n, r = len(members), sum(members)
        per_bucket.append([[i in c for i in range(n)] for c in itertools.combinations(range(n), r)])
    for choice in itertools.product(*per_bucket):
        yield [x for bucket in choice for x in bucket]


def expected(case: Case, score) -> list[float]:
    """Per-query mean of ``score(pattern)`` over all tie orders."""
    out = []
    for dist, rel in zip(case.distances, case.relevance, strict=True):
        values = [score(p) for p in tie_patterns(dist, rel)]
        out.append(sum(values) / len(values))
    return out


@st.composite
def cases(draw: st.DrawFn, max_db: int = 30) -> Case:
    k, q, n, c = (draw(st.integers(1, hi)) for hi in (6, 6, max_db, 4))
    values = st.sampled_from([-1.0, 0.5, 0.0, -0.25, 3.0])  # no draw looks like {0,1} bits
    qc = draw(arrays(np.float64, (q, k), elements=values))
    dc = draw(arrays(np.float64, (n, k), elements=values))
    kind = draw(st.sampled_from(["ids", "multi", "query_ids", "db_ids"]))

    def labels(rows: int, as_ids: bool) -> np.ndarray:
        if as_ids:
            return draw(arrays(np.int64, (rows,), elements=st.integers(0, c - 1)))
        return draw(arrays(np.float32, (rows, c), elements=st.sampled_from([0.0, 1.0])))

    ql = labels(q, kind in ("ids", "query_ids"))
    dl = labels(n, kind in ("ids", "db_ids"))
    return Case(qc, dc, ql, dl)


def topks(n: int) -> st.SearchStrategy[int | None]:
    return st.one_of(st.none(), st.just(1), st.integers(1, n + 3))


# compiled kernels (where a C compiler exists, see test_native), NumPy kernels, pure torch (CUDA)
PATHS = ("native", "numpy", "torch") if native.kernels() is not None else ("numpy", "torch")


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch):
    """Switch between the compiled, NumPy and pure-torch kernels and tiny / default chunks."""

    def use(path: str, tiny_chunks: bool) -> None:
        assert path in PATHS
        monkeypatch.setattr(codes, "_NUMPY_FAST_PATH", path != "torch")
        monkeypatch.setattr(native, "_ENABLED", path == "native")
        if path == "native":
            assert native.kernels() is not None, "the compiled kernels did not build"
        monkeypatch.setattr(metrics, "_BLOCK_BYTES", 1 if tiny_chunks else 16 * 2**20)
        monkeypatch.setattr(metrics, "_CHUNK_BYTES", 1 if tiny_chunks else 128 * 2**20)

    return use


# ----------------------------------------------------------------------------- property tests


@SETTINGS
@given(case=cases(), data=st.data(), path=st.sampled_from(PATHS), tiny=st.booleans())
def test_ap_index_matches_stable_sort(paths, case, data, path, tiny) -> None:
    paths(path, tiny)
    topk = data.draw(topks(len(case.dc)))
    depth = len(case.dc) if topk is None else topk
    want = [ap_of(p, depth) for p in index_patterns(case)]
    got = average_precisions(*case.args(), topk=topk, ties="index")
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    assert mean_average_precision(*case.args(), topk=topk) == pytest.approx(np.mean(want), abs=TOL)


@SETTINGS
@given(case=cases(max_db=12), data=st.data(), path=st.sampled_from(PATHS))
def test_ap_average_matches_enumerated_tie_orders(paths, case, data, path) -> None:
    paths(path, False)
    topk = data.draw(topks(len(case.dc)))
    depth = len(case.dc) if topk is None else topk
    want = expected(case, lambda p: ap_of(p, depth))
    got = average_precisions(*case.args(), topk=topk, ties="average")
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


@SETTINGS
@given(case=cases(max_db=12), data=st.data(), path=st.sampled_from(PATHS))
def test_precision_at_k_matches_brute_force(paths, case, data, path) -> None:
    paths(path, False)
    n = len(case.dc)
    ks = data.draw(st.lists(st.integers(1, n + 3), min_size=1, max_size=3))
    for ties in metrics.TIES:
        got = precision_at_k(*case.args(), k=ks, ties=ties)
        for k, value in zip(ks, got, strict=True):
            cut = min(k, n)
            if ties == "index":
                want = np.mean([sum(p[:cut]) / cut for p in index_patterns(case)])
            else:
                want = np.mean(expected(case, lambda p, cut=cut: sum(p[:cut]) / cut))
            assert value == pytest.approx(want, abs=TOL)


@SETTINGS
@given(case=cases(), path=st.sampled_from(PATHS), radius=st.integers(0, 7))
def test_hamming_ball_metrics_match_brute_force(paths, case, path, radius) -> None:
    paths(path, False)
    k = case.qc.shape[1]
    precision, recall = precision_recall_curve(*case.args())
    assert precision.shape == recall.shape == (k + 1,)
    for rho in range(k + 1):
        p_q, r_q = [], []
        for dist, rel in zip(case.distances, case.relevance, strict=True):
            inside = [r for d, r in zip(dist, rel, strict=True) if d <= rho]
            p_q.append(sum(inside) / len(inside) if inside else 0.0)
            r_q.append(sum(inside) / sum(rel) if any(rel) else 0.0)
        assert precision[rho] == pytest.approx(np.mean(p_q), abs=TOL)
        assert recall[rho] == pytest.approx(np.mean(r_q), abs=TOL)
    assert precision_at_hamming_radius(*case.args(), radius=radius) == precision[min(radius, k)]


@st.composite
def block_cases(draw: st.DrawFn) -> Case:
    """Sizes for the compiled kernels: several 64-item blocks and a partial one; one or more
    code words, distances past a byte (> 254 bits); ids (small, or huge and renumbered) or
    multi-hot labels over one or two 64-bit words; many ties (few flips from few prototypes).
    """
    k = draw(st.sampled_from([3, 8, 48, 64, 65, 130, 300]))
    n, q = draw(st.integers(1, 200)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    proto = rng.choice([-1.0, 1.0], size=(3, k))
    flip = draw(st.sampled_from([0.0, 0.05, 0.3]))

    def codes_for(rows: int) -> np.ndarray:
        base = proto[rng.integers(0, 3, rows)]
        return np.where(rng.random((rows, k)) < flip, -base, base)

    kind = draw(st.sampled_from(["ids", "huge_ids", "multi", "wide_multi"]))
    if kind in ("ids", "huge_ids"):
        scale = 10**12 if kind == "huge_ids" else 1
        ql, dl = (rng.integers(0, 4, rows) * scale for rows in (q, n))
    else:
        c = 70 if kind == "wide_multi" else 5
        ql, dl = ((rng.random((rows, c)) < 2 / c).astype(np.float32) for rows in (q, n))
    return Case(codes_for(q), codes_for(n), ql, dl)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=block_cases(), data=st.data())
def test_compiled_kernels_match_brute_force_and_numpy(paths, case, data) -> None:
    n = len(case.dc)
    topk = data.draw(topks(n))
    depth = n if topk is None else topk
    sq, sd = case.qc >= 0, case.dc >= 0
    dist = (sq[:, None, :] != sd[None, :, :]).sum(axis=2)  # (Q, N) brute force
    if case.ql.ndim == 1:
        rel = case.ql[:, None] == case.dl[None, :]
    else:
        rel = (case.ql[:, None, :] * case.dl[None, :, :]).sum(axis=2) > 0
    want = [
        ap_of(list(r[np.argsort(d, kind="stable")]), depth) for d, r in zip(dist, rel, strict=True)
    ]
    results = {}
    for path in ("native", "numpy"):
        paths(path, False)
        results[path] = (
            average_precisions(*case.args(), topk=topk, ties="index"),
            average_precisions(*case.args(), topk=topk, ties="average"),
            precision_recall_curve(*case.args()),
            precision_at_k(*case.args(), k=[1, depth], ties="average"),
        )
    np.testing.assert_allclose(results["native"][0], want, rtol=0, atol=TOL)
    for ours, numpy_only in zip(results["native"][1:], results["numpy"][1:], strict=True):
        np.testing.assert_allclose(ours, numpy_only, rtol=0, atol=TOL)


@settings(max_examples=100, deadline=None)
@given(k=st.integers(2, 40), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_matches_torchmetrics_without_ties(k: int, seed: int, data: st.DataObject) -> None:
    rng = np.random.default_rng(seed)
    n = data.draw(st.integers(1, k + 1))
    dist = rng.choice(k + 1, size=n, replace=False)  # distinct distances: no ties
    query = rng.choice([-1.0, 1.0], size=k)
    db = np.tile(query, (n, 1))
    for row, d in zip(db, dist, strict=True):
        row[rng.choice(k, size=d, replace=False)] *= -1
    db_ids = rng.integers(0, 3, size=n)
    topk = data.draw(topks(n))
    theirs = retrieval_average_precision(
        torch.tensor(k + 1.0 - dist), torch.tensor(db_ids == 0), top_k=topk
    )
    for ties in metrics.TIES:
        ours = mean_average_precision(query[None], db, np.array([0]), db_ids, topk=topk, ties=ties)
        assert ours == pytest.approx(float(theirs), abs=1e-6)


def test_matches_torchmetrics_retrieval_map_over_queries() -> None:
    rng = np.random.default_rng(7)
    k, n, trials = 24, 25, 30
    preds, target, indexes, ours = [], [], [], []
    for t in range(trials):
        dist = rng.permutation(k + 1)[:n]
        query = rng.choice([-1.0, 1.0], size=k)
        db = np.tile(query, (n, 1))
        for row, d in zip(db, dist, strict=True):
            row[rng.choice(k, size=d, replace=False)] *= -1
        rel = rng.random(n) < 0.2 * (t % 3)  # some queries without any relevant item
        ours.append(mean_average_precision(query[None], db, np.array([1]), rel.astype(int)))
        preds.append(torch.tensor(k + 1.0 - dist))
        target.append(torch.tensor(rel))
        indexes.append(torch.full((n,), t))
    theirs = RetrievalMAP(empty_target_action="neg")(
        torch.cat(preds), torch.cat(target), indexes=torch.cat(indexes)
    )
    assert 0.0 in ours
    assert np.mean(ours) == pytest.approx(float(theirs), abs=1e-6)


# ----------------------------------------------------------------------------- unit tests


def tied_case() -> Case:
    """One query, four identical database codes: a single tie bucket, relevance 0, 1, 0, 1."""
    return Case(qc=np.ones((1, 4)), dc=np.ones((4, 4)), ql=np.array([1]), dl=np.array([0, 1, 0, 1]))


def test_ties_index_and_average_differ_on_a_tie_bucket() -> None:
    case = tied_case()
    # index order: relevant at ranks 2 and 4 -> (1/2 + 2/4) / 2
    assert mean_average_precision(*case.args(), ties="index") == pytest.approx(0.5)
    # average over the 6 placements of 2 relevant items among 4 slots
    want = np.mean(
        [ap_of([i in c for i in range(4)], 4) for c in itertools.combinations(range(4), 2)]
    )
    assert mean_average_precision(*case.args(), ties="average") == pytest.approx(want)
    assert want == pytest.approx(49 / 72)
    # a cut inside the bucket: AP@1 is the chance that the first slot is relevant
    assert mean_average_precision(*case.args(), topk=1, ties="average") == pytest.approx(0.5)
    assert mean_average_precision(*case.args(), topk=1, ties="index") == 0.0


def test_index_ties_follow_database_order_but_average_does_not() -> None:
    case = tied_case()
    flipped = Case(case.qc, case.dc[::-1], case.ql, case.dl[::-1])
    assert mean_average_precision(*flipped.args()) == pytest.approx((1 + 2 / 3) / 2)
    assert mean_average_precision(*flipped.args(), ties="average") == pytest.approx(
        mean_average_precision(*case.args(), ties="average")
    )


def test_ap_is_normalised_by_hits_in_the_top_r() -> None:
    qc, dc = np.array([[1.0, 1.0]]), np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    # ranking: item0 (relevant), item1 (irrelevant), item2 (relevant)
    args = (qc, dc, np.array([0]), np.array([0, 1, 0]))
    assert mean_average_precision(*args, topk=2) == 1.0  # 1 hit in the top 2, precision 1
    assert mean_average_precision(*args) == pytest.approx((1 + 2 / 3) / 2)


@pytest.mark.parametrize("topk", [0, -1, 2.5, True, "3"])
def test_non_positive_or_non_integer_topk_raises(topk) -> None:
    with pytest.raises(ValueError, match="topk must be a positive integer"):
        mean_average_precision(*tied_case().args(), topk=topk)


def test_topk_larger_than_database_is_clamped() -> None:
    case = tied_case()
    for ties in metrics.TIES:
        clamped = mean_average_precision(*case.args(), topk=100, ties=ties)
        assert clamped == mean_average_precision(*case.args(), topk=None, ties=ties)


def test_query_without_relevant_items_scores_zero_and_stays_in_mean() -> None:
    qc = np.ones((2, 3))
    dc = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, -1.0]])
    ql, dl = np.array([0, 5]), np.array([1, 0])  # class 5 never occurs in the database
    aps = average_precisions(qc, dc, ql, dl)
    np.testing.assert_allclose(aps, [0.5, 0.0])
    assert mean_average_precision(qc, dc, ql, dl) == pytest.approx(0.25)
    assert mean_average_precision(qc, dc, ql, dl, ties="average") == pytest.approx(0.25)


def test_ids_one_hot_and_mixed_labels_agree() -> None:
    rng = np.random.default_rng(3)
    qc, dc = rng.normal(size=(5, 6)), rng.normal(size=(40, 6))
    ql, dl = rng.integers(0, 4, size=5), rng.integers(0, 4, size=40)
    q_hot, d_hot = np.eye(4)[ql], np.eye(4)[dl]
    for ties in metrics.TIES:
        ref = mean_average_precision(qc, dc, ql, dl, ties=ties)
        for labels in ((q_hot, d_hot), (ql, d_hot), (q_hot, dl)):
            assert mean_average_precision(qc, dc, *labels, ties=ties) == pytest.approx(ref, abs=TOL)


def test_multi_hot_relevance_means_sharing_a_label() -> None:
    qc, dc = np.ones((1, 2)), np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    ql = np.array([[1, 1, 0]])
    dl = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 0]])  # irrelevant, shares 1, shares 0
    assert mean_average_precision(qc, dc, ql, dl) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_numpy_and_torch_inputs_agree() -> None:
    rng = np.random.default_rng(4)
    args = (
        rng.normal(size=(6, 8)),
        rng.normal(size=(50, 8)),
        rng.integers(0, 3, 6),
        rng.integers(0, 3, 50),
    )
    as_torch = tuple(torch.from_numpy(a) for a in args)
    for ties in metrics.TIES:
        assert mean_average_precision(*args, ties=ties) == mean_average_precision(
            *as_torch, ties=ties
        )
    np.testing.assert_array_equal(
        precision_recall_curve(*args)[0], precision_recall_curve(*as_torch)[0]
    )


@pytest.mark.parametrize("n_bits", [16, 100, 300])  # one word, two words, int16 distances
@pytest.mark.parametrize("multi_label", [False, True])
def test_large_case_matches_a_numpy_loop(
    monkeypatch: pytest.MonkeyPatch, n_bits: int, multi_label: bool
) -> None:
    monkeypatch.setattr(metrics, "_BLOCK_BYTES", 2**18)  # many small chunks over threads
    rng = np.random.default_rng(n_bits)
    classes = 5
    proto = rng.choice([-1.0, 1.0], size=(classes, n_bits))
    ql, dl = (
        np.eye(classes)[rng.integers(0, classes, 40)],
        np.eye(classes)[rng.integers(0, classes, 3000)],
    )
    if multi_label:  # add a second random label to some items
        ql = np.maximum(
            ql, np.eye(classes)[rng.integers(0, classes, 40)] * (rng.random((40, 1)) < 0.3)
        )
        dl = np.maximum(
            dl, np.eye(classes)[rng.integers(0, classes, 3000)] * (rng.random((3000, 1)) < 0.3)
        )
    qc = np.sign(ql @ proto + rng.normal(scale=1.5, size=(40, n_bits)))
    dc = np.sign(dl @ proto + rng.normal(scale=1.5, size=(3000, n_bits)))
    labels = (ql, dl) if multi_label else (ql.argmax(1), dl.argmax(1))
    for topk in (None, 100):  # whole-row radix argsort / top-k selection
        want = []
        for i in range(len(qc)):
            order = np.argsort(0.5 * (n_bits - dc @ qc[i]), kind="stable")[:topk]
            rel = (dl[order] @ ql[i]) > 0
            hits = np.cumsum(rel)
            want.append((hits / np.arange(1, len(rel) + 1))[rel].mean() if rel.any() else 0.0)
        got = mean_average_precision(qc, dc, *labels, topk=topk)
        assert got == pytest.approx(np.mean(want), abs=TOL)


@pytest.mark.parametrize("n_bits", [6, 2**40])  # 32-bit and 64-bit rank keys
@pytest.mark.parametrize("numpy_path", [True, False])
def test_top_items_rank_by_distance_then_index(n_bits: int, numpy_path: bool) -> None:
    dist = np.random.default_rng(8).integers(0, 7, size=(5, 300)).astype(np.int16)
    want = np.argsort(dist, axis=1, kind="stable")
    for depth in (1, 37, 300):
        got = metrics._top_items(dist if numpy_path else torch.from_numpy(dist), depth, n_bits)
        np.testing.assert_array_equal(codes.to_numpy(got), want[:, :depth])


@pytest.mark.parametrize("n_labels", [3, 12, 20, 40, 70, 130])  # 8/16/32/64-bit, 2-3 words
def test_multi_hot_label_widths(n_labels: int) -> None:
    rng = np.random.default_rng(n_labels)
    density = 1.5 / n_labels
    case = Case(
        qc=rng.normal(size=(4, 5)),
        dc=rng.normal(size=(25, 5)),
        ql=(rng.random((4, n_labels)) < density).astype(np.float32),
        dl=(rng.random((25, n_labels)) < density).astype(np.float32),
    )
    flat = [r for row in case.relevance for r in row]
    assert any(flat) and not all(flat)
    for topk in (None, 5):
        depth = 25 if topk is None else topk
        want = [ap_of(p, depth) for p in index_patterns(case)]
        np.testing.assert_allclose(average_precisions(*case.args(), topk=topk), want, atol=TOL)


def test_average_ties_agree_with_shuffled_databases_at_scale() -> None:
    """Monte Carlo over random database orders approaches the closed form (N = 2000)."""
    rng = np.random.default_rng(6)
    qc, dc = rng.normal(size=(4, 5)), rng.normal(size=(2000, 5))
    ql, dl = rng.integers(0, 3, 4), rng.integers(0, 3, 2000)
    for topk in (None, 300):
        exact = average_precisions(qc, dc, ql, dl, topk=topk, ties="average")
        samples = []
        for _ in range(200):
            perm = rng.permutation(2000)
            samples.append(average_precisions(qc, dc[perm], ql, dl[perm], topk=topk))
        samples = np.array(samples)  # (200, Q)
        stderr = samples.std(axis=0) / np.sqrt(len(samples))
        assert np.all(np.abs(samples.mean(axis=0) - exact) <= 5 * stderr + 1e-12)
        assert not np.allclose(exact, average_precisions(qc, dc, ql, dl, topk=topk), atol=1e-6)


def test_precision_at_k_returns_float_or_array() -> None:
    case = tied_case()
    assert precision_at_k(*case.args(), k=2) == 0.5  # index order: 0, 1
    np.testing.assert_allclose(precision_at_k(*case.args(), k=[1, 2, 9]), [0.0, 0.5, 0.5])
    np.testing.assert_allclose(precision_at_k(*case.args(), k=(1, 3), ties="average"), [0.5, 0.5])
    for bad in (0, [], [1, -2]):
        with pytest.raises(ValueError, match="k must"):
            precision_at_k(*case.args(), k=bad)


def test_precision_at_hamming_radius_scores_empty_balls_zero() -> None:
    qc = np.array([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])
    dc = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, -1.0], [1.0, -1.0, -1.0]])
    ql, dl = np.array([0, 0]), np.array([0, 1, 0])
    # query 0: radius 1 holds items 0 (rel) and 1 -> 1/2; query 1: nearest item at distance 1
    assert precision_at_hamming_radius(qc, dc, ql, dl, radius=0) == pytest.approx(0.5)
    assert precision_at_hamming_radius(qc, dc, ql, dl, radius=1) == pytest.approx((1 / 2 + 1) / 2)
    assert precision_at_hamming_radius(qc, dc, ql, dl, radius=99) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="radius"):
        precision_at_hamming_radius(qc, dc, ql, dl, radius=-1)


BAD_INPUTS = {
    "query rows": (np.ones((2, 4)), np.ones((3, 4)), np.array([0]), np.array([0, 1, 2])),
    "database rows": (np.ones((1, 4)), np.ones((3, 4)), np.array([0]), np.array([0, 1])),
    "bit count": (np.ones((1, 4)), np.ones((3, 5)), np.array([0]), np.array([0, 1, 2])),
    "empty query": (np.ones((0, 4)), np.ones((3, 4)), np.array([], int), np.array([0, 1, 2])),
    "empty database": (np.ones((1, 4)), np.ones((0, 4)), np.array([0]), np.array([], int)),
    "no bits": (np.ones((1, 0)), np.ones((3, 0)), np.array([0]), np.array([0, 1, 2])),
    "1-D codes": (np.ones(4), np.ones((3, 4)), np.array([0]), np.array([0, 1, 2])),
    "non-integral ids": (np.ones((1, 4)), np.ones((3, 4)), np.array([0.5]), np.array([0.0, 1, 2])),
    "0/1 uint8 codes": (
        np.array([[0, 1, 1, 0]], np.uint8),
        np.array([[1, 1, 0, 0], [0, 0, 0, 1], [1, 0, 1, 0]], np.uint8),
        np.array([0]),
        np.array([0, 1, 2]),
    ),
    "0/1 float codes": (
        np.array([[0.0, 1.0]]),
        np.array([[1.0, 1.0], [0.0, 1.0]]),
        np.array([0]),
        np.array([0, 1]),
    ),
    "complex codes": (np.ones((1, 4)) * 1j, np.ones((3, 4)), np.array([0]), np.array([0, 1, 2])),
    "NaN multi-hot": (
        np.ones((1, 4)),
        np.ones((3, 4)),
        np.array([[1.0, np.nan]]),
        np.ones((3, 2)),
    ),
    "negative multi-hot": (np.ones((1, 4)), np.ones((3, 4)), -np.ones((1, 2)), np.ones((3, 2))),
    "complex labels": (np.ones((1, 4)), np.ones((3, 4)), np.ones((1, 2)) * 1j, np.ones((3, 2))),
    "negative id": (np.ones((1, 4)), np.ones((3, 4)), np.array([-1]), np.array([0, 1, 2])),
    "class counts": (np.ones((1, 4)), np.ones((3, 4)), np.ones((1, 2)), np.ones((3, 3))),
    "id out of range": (np.ones((1, 4)), np.ones((3, 4)), np.array([5]), np.ones((3, 3))),
    "3-D labels": (np.ones((1, 4)), np.ones((3, 4)), np.ones((1, 2, 2)), np.ones((3, 2, 2))),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_inputs_raise_value_error(name: str) -> None:
    args = BAD_INPUTS[name]
    for fn in (mean_average_precision, precision_recall_curve):
        with pytest.raises(ValueError) as info:
            fn(*args)
        assert "\n" not in str(info.value)


def test_label_columns_are_class_ids_and_integral_floats_are_ids() -> None:
    """An (N, 1) column is class ids (class 0 keeps its label), as MATLAB files store them."""
    case = tied_case()
    ids_q, ids_db = np.arange(len(case.qc)) % 2, np.arange(len(case.dc)) % 2
    want = mean_average_precision(case.qc, case.dc, ids_q, ids_db)
    got = mean_average_precision(case.qc, case.dc, ids_q[:, None], ids_db[:, None].astype(float))
    assert got == want
    assert want > 0  # class-0 queries find their class-0 items


def test_plus_minus_one_codes_of_one_sign_are_accepted() -> None:
    """All-(+1) codes are not mistaken for {0,1} bits: only both values present are refused."""
    ones = np.ones((2, 4))
    # one tie bucket in database order: query 0 finds its item first, query 1 second
    assert mean_average_precision(ones, ones, np.array([0, 1]), np.array([0, 1])) == 0.75


def test_unknown_ties_raises() -> None:
    with pytest.raises(ValueError, match="ties must be one of"):
        mean_average_precision(*tied_case().args(), ties="random")
    with pytest.raises(ValueError, match="ties must be one of"):
        precision_at_k(*tied_case().args(), k=1, ties="first")
