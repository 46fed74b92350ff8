"""Exact retrieval metrics for Hamming rankings, computed in bounded memory.

All metrics rank the database by Hamming distance to each query (codes are binarised with
:func:`~hashrepro.retrieval.codes.binarize`). An item is relevant when it shares at least one
label with the query. Labels are 1-D class ids or 2-D multi-hot rows (a value > 0 marks a
label); ids are one-hot encoded when the other side is multi-hot.

Ties (equal distances) are resolved in one of two ways:

* ``ties="index"``: tied items keep database order (a stable sort, like MATLAB's ``sort``).
* ``ties="average"``: the exact expectation over uniformly random orders of tied items
  (tie-aware metrics, He et al., CVPR 2018), in closed form from per-distance counts.

Queries are processed in chunks whose scratch memory is bounded (``_BLOCK_BYTES`` per worker
thread on CPU, ``_CHUNK_BYTES`` otherwise); no Q x N matrix is ever built. CPU chunks run on
``torch.get_num_threads()`` threads; other devices (CUDA) use torch. With only K + 1 distinct
distances nothing needs a comparison sort. On the CPU the compiled kernels of
:mod:`~hashrepro.retrieval.native` fuse distances, relevance (database label bitsets) and
counting in one pass per query: ``ties="average"``, the precision-recall curve and P@K with
averaged ties need per-distance counts of items and relevant items only; ``ties="index"`` also
records, for each relevant item, its position among the earlier items at its distance (a
counting sort restricted to the relevant items). Without a C compiler the NumPy kernels do the
same work: ``ties="index"`` ranks with NumPy's O(N) radix argsort of uint8 distances or, for
short cut-offs, selects the top items by unique ``distance | index`` keys.
"""

from __future__ import annotations

import ctypes
import numbers
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from hashrepro.retrieval import native
from hashrepro.retrieval.codes import (
    Array,
    ArrayLike,
    as_tensor,
    bytes_to_words,
    hamming_words,
    pack_bits,
    sign_bits,
    to_backend,
    to_numpy,
)
from hashrepro.retrieval.labels import check_labels

ROLES = ("query", "database")  # the two sides of a retrieval; loaders 0 and 1 in that order
TIES = ("index", "average")
_CHUNK_BYTES = 128 * 2**20  # scratch memory of one chunk of queries (torch path, e.g. CUDA)
_BLOCK_BYTES = 32 * 2**20  # the same per worker thread on the CPU path
_PAIR_BYTES = 32  # scratch bytes per (query, database item) pair: xor, distance, order, keys
_FULL_SORT_FRACTION = 4  # CPU: argsort whole rows when topk >= N / 4, else select the top

T = TypeVar("T")


@dataclass(frozen=True)
class _Data:
    """Validated inputs as backend arrays (NumPy on the CPU fast path, else torch)."""

    q_words: Array  # (Q, W) 64-bit packed codes
    db_words: Array  # (N, W)
    n_bits: int
    q_labels: Array  # (Q,) class ids, or (LW, Q) word-major packed multi-hot labels
    db_labels: Array  # (N,) or (LW, N)

    @property
    def n_queries(self) -> int:
        return self.q_words.shape[0]

    @property
    def n_db(self) -> int:
        return self.db_words.shape[0]

    @property
    def fast(self) -> bool:
        return isinstance(self.db_words, np.ndarray)

    @cached_property
    def native(self) -> ctypes.CDLL | None:
        """The compiled kernels when they apply (CPU fast path, at most 65,535 bits)."""
        if not self.fast or self.n_bits > native.MAX_BITS:
            return None
        lib = native.kernels()
        return lib if lib is not None and self.native_labels is not None else None

    @cached_property
    def native_labels(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Query label words and database label bitsets for the kernels (None: too many)."""
        if not self.fast:
            return None
        if self.q_labels.ndim == 1:
            return native.label_bitsets(self.q_labels, self.db_labels)
        return native.label_bitsets(_unpack_words(self.q_labels), _unpack_words(self.db_labels))


def _unpack_words(words: np.ndarray) -> np.ndarray:
    """Word-major packed labels (LW, rows) -> (rows, LW * word bits) booleans, in bit order."""
    width = 8 * words.dtype.itemsize
    shifts = np.arange(width, dtype=words.dtype)
    bits = (words[:, :, None] >> shifts) & 1  # (LW, rows, width)
    return bits.transpose(1, 0, 2).reshape(words.shape[1], -1).astype(bool)


# ----------------------------------------------------------------------------- validation


def _prepare(
    query_codes: ArrayLike,
    database_codes: ArrayLike,
    query_labels: ArrayLike,
    database_labels: ArrayLike,
) -> _Data:
    """Validate and pack inputs onto the database codes' device."""
    dc = as_tensor(database_codes)
    qc = as_tensor(query_codes).to(dc.device)
    for name, t in (("query_codes", qc), ("database_codes", dc)):
        if t.ndim != 2 or 0 in t.shape:
            raise ValueError(f"{name} must have shape (rows >= 1, bits >= 1), got {tuple(t.shape)}")
    if qc.shape[1] != dc.shape[1]:
        raise ValueError(f"query codes have {qc.shape[1]} bits but database codes {dc.shape[1]}")
    ql, dl = _prepare_labels(query_labels, database_labels, qc.shape[0], dc.shape[0], dc.device)
    q_words = bytes_to_words(pack_bits(sign_bits(qc)))
    db_words = bytes_to_words(pack_bits(sign_bits(dc)))
    return _Data(q_words, db_words, qc.shape[1], ql, dl)


def _prepare_labels(
    query_labels: ArrayLike,
    database_labels: ArrayLike,
    n_query: int,
    n_db: int,
    device: torch.device,
) -> tuple[Array, Array]:
    """Integer class ids (both sides 1-D) or word-major packed multi-hot labels."""
    ql = check_labels(as_tensor(query_labels).to(device), n_query, "query_labels")
    dl = check_labels(as_tensor(database_labels).to(device), n_db, "database_labels")
    if ql.ndim == dl.ndim == 1:
        small = max(int(ql.max()), int(dl.max())) < 2**31
        ql, dl = (ql.int(), dl.int()) if small else (ql.long(), dl.long())  # small gather tables
        return to_backend(ql), to_backend(dl)
    if ql.ndim == dl.ndim == 2 and ql.shape[1] != dl.shape[1]:
        raise ValueError(f"multi-hot labels have {ql.shape[1]} vs {dl.shape[1]} classes")
    width = (ql if ql.ndim == 2 else dl).shape[1]
    word_bytes = next(b for b in (1, 2, 4, 8) if 8 * b >= width) if width <= 64 else 8
    q_hot, d_hot = (
        _multi_hot(t, width, n) for t, n in ((ql, "query_labels"), (dl, "database_labels"))
    )
    q_words = bytes_to_words(pack_bits(to_backend(q_hot)), word_bytes)  # (Q, LW)
    db_words = bytes_to_words(pack_bits(to_backend(d_hot)), word_bytes)  # (N, LW)
    return _word_major(q_words), _word_major(db_words)


def _word_major(words: Array) -> Array:
    """(rows, W) -> contiguous (W, rows), so each label word is a contiguous gather table."""
    return np.ascontiguousarray(words.T) if isinstance(words, np.ndarray) else words.T.contiguous()


def _multi_hot(labels: Tensor, width: int, name: str) -> Tensor:
    """(rows, width) boolean label matrix from ids or multi-hot values."""
    if labels.ndim == 2:
        return labels > 0
    if int(labels.max()) >= width:
        raise ValueError(f"{name} has class id {int(labels.max())} but only {width} classes")
    return torch.nn.functional.one_hot(labels.long(), width).bool()


def check_ties(ties: str) -> None:
    """Raise a one-line ValueError unless ``ties`` is one of :data:`TIES`."""
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")


def check_depth(value: int | None, name: str, n_db: int) -> int:
    """A positive cut-off clamped to the database size; None means the whole database."""
    if value is None:
        return n_db
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return min(int(value), n_db)


# ----------------------------------------------------------------------------- chunk kernels


def _map_chunks(data: _Data, fn: Callable[[slice], T]) -> list[T]:
    """Apply ``fn`` to query slices of bounded memory; threaded on the CPU fast path."""
    rows = (_BLOCK_BYTES if data.fast else _CHUNK_BYTES) // (_PAIR_BYTES * data.n_db)
    rows = max(1, min(rows, data.n_queries))
    slices = [slice(s, min(s + rows, data.n_queries)) for s in range(0, data.n_queries, rows)]
    workers = min(torch.get_num_threads(), len(slices)) if data.fast else 1
    if workers <= 1:
        return [fn(s) for s in slices]
    with ThreadPoolExecutor(workers) as pool:  # NumPy kernels release the GIL
        return list(pool.map(fn, slices))


def _distances(data: _Data, rows: slice) -> Array:
    """(C, N) Hamming distances of a chunk of queries (uint8 up to 255 bits)."""
    return hamming_words(data.q_words[rows], data.db_words, data.n_bits)


def _relevant(q_labels: Array, db_labels: Array, items: Array | None = None) -> Array:
    """(C, N) relevance of every item, or (C, R) of the item ids ``items`` (C, R)."""

    def db(table: Array) -> Array:  # (1, N) or (C, R)
        if items is None:
            return table[None, :]
        return np.take(table, items) if isinstance(table, np.ndarray) else table[items]

    if q_labels.ndim == 1:
        return db(db_labels) == q_labels[:, None]
    rel = None
    for q_word, db_word in zip(q_labels, db_labels, strict=True):  # label words, (C,), (N,)
        hit = (db(db_word) & q_word[:, None]) != 0
        rel = hit if rel is None else rel | hit
    return rel


def _top_items(dist: Array, depth: int, n_bits: int) -> Array:
    """(C, depth) ids of each row's ``depth`` nearest items, ranked by (distance, index).

    Keys ``distance << b | index`` are unique, so a plain selection and sort give the stable
    ranking.
    """
    n = dist.shape[1]
    shift = max(1, (n - 1).bit_length())
    if shift + n_bits.bit_length() > 63:
        raise ValueError(f"{n} items with {n_bits} bits do not fit 63-bit rank keys")
    if isinstance(dist, np.ndarray):
        dtype = np.uint32 if shift + n_bits.bit_length() <= 32 else np.uint64
        key = dist.astype(dtype)  # (C, N)
        key <<= shift
        key |= np.arange(n, dtype=dtype)
        if depth < n:
            key = np.partition(key, depth - 1, axis=1)[:, :depth]
        return (np.sort(key, axis=1) & dtype((1 << shift) - 1)).astype(np.intp)
    key = (dist.long() << shift) | torch.arange(n, device=dist.device)
    if depth < n:
        key = torch.topk(key, depth, dim=1, largest=False, sorted=True).values
    else:
        key = torch.sort(key, dim=1).values
    return key & ((1 << shift) - 1)


def _sorted_relevance(data: _Data, rows: slice, depth: int) -> Array:
    """(C, depth) relevance of the top ``depth`` items, ties in database order."""
    dist = _distances(data, rows)  # (C, N)
    if data.fast and depth * _FULL_SORT_FRACTION >= data.n_db:
        items = np.argsort(dist, axis=1, kind="stable")[:, :depth]  # radix sort, O(N)
    else:
        items = _top_items(dist, depth, data.n_bits)
    return _relevant(data.q_labels[..., rows], data.db_labels, items)


def _ap_of_sorted(rel: Array) -> np.ndarray:
    """(C,) AP of ranked relevance rows (C, R), normalised by the relevant count in the row."""
    c, r = rel.shape
    if isinstance(rel, np.ndarray):
        hits = np.arange(1, r + 1, dtype=np.float64)
        ap = np.zeros(c)
        for i, row in enumerate(rel):  # per row: no (C, R) temporaries
            pos = np.flatnonzero(row)  # 0-based ranks of the relevant items
            if pos.size:
                ap[i] = (hits[: pos.size] / (pos + 1)).sum() / pos.size
        return ap
    cum = rel.cumsum(dim=1)  # (C, R)
    ranks = torch.arange(1, r + 1, device=rel.device, dtype=torch.float64)
    sums = ((cum * rel) / ranks).sum(dim=1).cpu().numpy()
    counts = cum[:, -1].cpu().numpy()
    return np.divide(sums, counts, out=np.zeros(c), where=counts > 0)


def _bucket_counts(data: _Data, rows: slice) -> tuple[np.ndarray, np.ndarray]:
    """Per-query histograms over distances 0..K: items (C, K+1) and relevant items (C, K+1)."""
    dist = _distances(data, rows)  # (C, N)
    rel = _relevant(data.q_labels[..., rows], data.db_labels)  # (C, N)
    c, bins = dist.shape[0], data.n_bits + 1
    if isinstance(dist, np.ndarray):
        key = dist.astype(np.uint16 if bins <= 2**15 else np.int64)  # (C, N)
        key <<= 1
        key |= rel
        hist = np.stack([np.bincount(row, minlength=2 * bins) for row in key])  # (C, 2 bins)
    else:
        offset = torch.arange(0, 2 * c * bins, 2 * bins, device=dist.device)[:, None]
        key = (dist.long() << 1) + rel.long() + offset
        hist = torch.bincount(key.flatten(), minlength=2 * c * bins).cpu().numpy()
    hist = hist.reshape(c, bins, 2)  # [..., 0] irrelevant, [..., 1] relevant
    return hist.sum(axis=2), hist[..., 1]


def _histograms(data: _Data) -> tuple[np.ndarray, np.ndarray]:
    """Items and relevant items per query and distance: two (Q, K+1) int64 arrays."""
    if data.native is not None:
        parts = _map_native(data, lambda rows: _native_counts(data, rows))
    else:
        parts = _map_chunks(data, lambda rows: _bucket_counts(data, rows))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# ----------------------------------------------------------------------------- compiled kernels


def _native_counts(data: _Data, rows: slice) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_bucket_counts` by the compiled kernel, in one pass over the database."""
    q_labels, db_bits = data.native_labels
    q = np.ascontiguousarray(data.q_words[rows])
    n, r = (np.empty((len(q), data.n_bits + 1), dtype=np.int64) for _ in range(2))
    status = data.native.hr_bucket_counts(
        *_native_codes(q, data),
        native.ptr(np.ascontiguousarray(q_labels[rows])),
        q_labels.shape[1],
        native.ptr(db_bits),
        native.ptr(n),
        native.ptr(r),
    )
    native.check(status, "hr_bucket_counts")
    return n, r


def _native_ap_index(data: _Data, rows: slice, depth: int, inv: np.ndarray) -> np.ndarray:
    """(C,) AP@depth with ties in database order, without ranking (see ``_kernels.c``)."""
    q_labels, db_bits = data.native_labels
    q = np.ascontiguousarray(data.q_words[rows])
    out = np.empty(len(q), dtype=np.float64)
    status = data.native.hr_ap_index(
        *_native_codes(q, data),
        native.ptr(np.ascontiguousarray(q_labels[rows])),
        q_labels.shape[1],
        native.ptr(db_bits),
        depth,
        native.ptr(inv),
        native.ptr(out),
    )
    native.check(status, "hr_ap_index")
    return out


def _native_codes(q: np.ndarray, data: _Data) -> tuple[int, ...]:
    """The leading kernel arguments: query and database words, their counts, words, bits."""
    return native.ptr(q), native.ptr(data.db_words), len(q), data.n_db, q.shape[1], data.n_bits


def _map_native(data: _Data, fn: Callable[[slice], T]) -> list[T]:
    """Apply ``fn`` to query slices on ``torch.get_num_threads()`` threads (GIL released)."""
    workers = max(1, min(torch.get_num_threads(), data.n_queries))
    step = -(-data.n_queries // (4 * workers)) if workers > 1 else data.n_queries
    slices = [slice(s, min(s + step, data.n_queries)) for s in range(0, data.n_queries, step)]
    if workers == 1:
        return [fn(s) for s in slices]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, slices))


# ----------------------------------------------------------------------------- tie-aware maths


@dataclass(frozen=True)
class _Tables:
    """Harmonic numbers and log-factorials 0..N in extended precision."""

    harmonic: np.ndarray
    log_factorial: np.ndarray

    @classmethod
    def build(cls, n: int) -> _Tables:
        i = np.arange(1, n + 1, dtype=np.longdouble)
        zero = np.zeros(1, dtype=np.longdouble)
        return cls(
            np.concatenate([zero, np.cumsum(1 / i)]), np.concatenate([zero, np.cumsum(np.log(i))])
        )

    def log_comb(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        lf = self.log_factorial
        return lf[a] - lf[b] - lf[a - b]


def _expected_precision_sum(
    before: np.ndarray, slots: np.ndarray, rel: np.ndarray, rel_before: np.ndarray, t: _Tables
) -> np.ndarray:
    """E[sum of precisions at relevant items] of ``slots`` tied items, ``rel`` relevant.

    The bucket follows ``before`` items (``rel_before`` relevant). A slot p (1-based) is
    relevant with probability rel/slots and then has expected precision
    (rel_before + 1 + (p-1)(rel-1)/(slots-1)) / (before + p).
    """
    s0 = t.harmonic[before + slots] - t.harmonic[before]  # sum_p 1 / (before + p)
    s1 = slots - (before + 1) * s0  # sum_p (p - 1) / (before + p)
    pair = np.where(slots > 1, (rel - 1) / np.maximum(slots - 1, 1), 0.0)
    value = rel / np.maximum(slots, 1) * ((rel_before + 1) * s0 + pair * s1)
    return np.where(rel > 0, value, 0.0)


def _expected_ap(n: np.ndarray, r: np.ndarray, depth: int, t: _Tables) -> np.ndarray:
    """(C,) expected AP@depth under random tie order from bucket counts n, r (C, K+1).

    Buckets fully inside the top ``depth`` contribute their expected sums; a bucket cut by
    ``depth`` keeps m slots holding a hypergeometric number h of relevant items, and the
    AP divides by the relevant count, so E[AP] = sum_h P(h) (E[full] + E[cut | h]) / (R_full + h).
    """
    before = np.cumsum(n, axis=1) - n  # (C, B) items ranked before each bucket
    rel_before = np.cumsum(r, axis=1) - r
    full = before + n <= depth
    e_full = np.where(full, _expected_precision_sum(before, n, r, rel_before, t), 0.0).sum(1)
    r_full = np.where(full, r, 0).sum(axis=1)
    ap = np.divide(e_full, r_full, out=np.zeros(len(n), np.longdouble), where=r_full > 0)
    cut = (before < depth) & (before + n > depth)  # at most one bucket per row
    rows, b = np.nonzero(cut)
    if rows.size:
        n_c, r_c, before_c, rp = n[rows, b], r[rows, b], before[rows, b], rel_before[rows, b]
        m = depth - before_c  # slots kept from the cut bucket
        h_lo, h_hi = np.maximum(0, m - (n_c - r_c)), np.minimum(r_c, m)
        # one entry per (row, possible h): ragged, flattened
        size = h_hi - h_lo + 1
        owner = np.repeat(np.arange(rows.size), size)  # (T,)
        h = h_lo[owner] + np.arange(owner.size) - np.repeat(np.cumsum(size) - size, size)
        log_p = t.log_comb(r_c[owner], h) + t.log_comb((n_c - r_c)[owner], m[owner] - h)
        p = np.exp(log_p - t.log_comb(n_c, m)[owner])
        e_cut = _expected_precision_sum(before_c[owner], m[owner], h, rp[owner], t)
        denom = rp[owner] + h
        value = np.where(denom > 0, p * (e_full[rows][owner] + e_cut) / np.maximum(denom, 1), 0)
        ap[rows] = np.bincount(owner, weights=value.astype(np.float64), minlength=rows.size)
    return ap.astype(np.float64)


# ----------------------------------------------------------------------------- public metrics


def average_precisions(
    query_codes: ArrayLike,
    database_codes: ArrayLike,
    query_labels: ArrayLike,
    database_labels: ArrayLike,
    *,
    topk: int | None = None,
    ties: str = "index",
) -> np.ndarray:
    """Per-query AP@topk as a (Q,) float64 array; see :func:`mean_average_precision`."""
    check_ties(ties)
    data = _prepare(query_codes, database_codes, query_labels, database_labels)
    depth = check_depth(topk, "topk", data.n_db)
    if ties == "index" and data.native is not None:
        inv = 1.0 / np.arange(data.n_db + 1, dtype=np.float64).clip(1)  # inv[r] = 1 / r
        parts = _map_native(data, lambda rows: _native_ap_index(data, rows, depth, inv))
    elif ties == "index":
        parts = _map_chunks(data, lambda rows: _ap_of_sorted(_sorted_relevance(data, rows, depth)))
    else:
        tables = _Tables.build(data.n_db)
        counts, mapper = (
            (_native_counts, _map_native)
            if data.native is not None
            else (_bucket_counts, _map_chunks)
        )
        parts = mapper(data, lambda rows: _expected_ap(*counts(data, rows), depth, tables))
    return np.concatenate(parts)


def mean_average_precision(
    query_codes: ArrayLike,
    database_codes: ArrayLike,
    query_labels: ArrayLike,
    database_labels: ArrayLike,
    *,
    topk: int | None = None,
    ties: str = "index",
) -> float:
    """Mean average precision of Hamming ranking, mAP@topk.

    AP@R of a query is the mean of the precisions at the relevant items inside the top R,
    i.e. it is normalised by the number of relevant items in the top R (not in the whole
    database). A query with no relevant item in the top R scores 0 and stays in the mean.

    Args:
        query_codes: (Q, K) real or +1/-1 codes (binarised with 0 -> +1).
        database_codes: (N, K) codes.
        query_labels: (Q,) class ids or (Q, L) multi-hot labels.
        database_labels: (N,) class ids or (N, L) multi-hot labels.
        topk: R, the ranking depth; None means the whole database, larger values are clamped.
        ties: "index" (tied items in database order) or "average" (exact expectation over
            random orders of tied items).

    Returns:
        mAP as a Python float.

    Raises:
        ValueError: on malformed inputs, ``topk <= 0`` or an unknown ``ties``.
    """
    aps = average_precisions(
        query_codes, database_codes, query_labels, database_labels, topk=topk, ties=ties
    )
    return float(aps.mean())


def precision_at_k(
    query_codes: ArrayLike,
    database_codes: ArrayLike,
    query_labels: ArrayLike,
    database_labels: ArrayLike,
    *,
    k: int | Sequence[int],
    ties: str = "index",
) -> float | np.ndarray:
    """Mean precision of the top k ranked items, Precision@k.

    Args:
        query_codes, database_codes, query_labels, database_labels: as in
            :func:`mean_average_precision`.
        k: a positive cut-off or a sequence of them; values above N are clamped to N.
        ties: "index" or "average" (expected precision: a bucket cut after m of its n items
            contributes m * r / n relevant items).

    Returns:
        A float for an int ``k``, else a float64 array with one value per cut-off.
    """
    check_ties(ties)
    data = _prepare(query_codes, database_codes, query_labels, database_labels)
    single = isinstance(k, numbers.Integral) and not isinstance(k, bool)
    ks = np.array([check_depth(v, "k", data.n_db) for v in ([k] if single else list(k))])
    if ks.size == 0:
        raise ValueError("k must not be an empty sequence")
    if ties == "index":

        def chunk(rows: slice) -> np.ndarray:
            rel = _sorted_relevance(data, rows, int(ks.max()))  # (C, max k)
            return to_numpy(rel.cumsum(1))[:, ks - 1]  # (C, len(ks))

        hits = np.concatenate(_map_chunks(data, chunk)).astype(np.float64)
    else:
        n, r = _histograms(data)
        before = np.cumsum(n, axis=1) - n  # (Q, B)
        kept = np.clip(ks[None, :, None] - before[:, None, :], 0, n[:, None, :])  # (Q, len(ks), B)
        hits = (r[:, None, :] * kept / np.maximum(n, 1)[:, None, :]).sum(axis=2)
    precision = (hits / ks).mean(axis=0)  # (len(ks),)
    return float(precision[0]) if single else precision


def precision_recall_curve(
    query_codes: ArrayLike,
    database_codes: ArrayLike,
    query_labels: ArrayLike,
    database_labels: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of Hamming-ball retrieval for every radius 0..K.

    Macro average over queries: for each query and radius, precision = relevant retrieved /
    retrieved (0 when nothing is retrieved) and recall = relevant retrieved / relevant in the
    database (0 when the query has no relevant item); both are then averaged over all queries.

    Returns:
        ``(precision, recall)``, two float64 arrays of length K + 1 indexed by radius.
    """
    data = _prepare(query_codes, database_codes, query_labels, database_labels)
    n, r = _histograms(data)
    retrieved, hits = np.cumsum(n, axis=1), np.cumsum(r, axis=1)  # (Q, K+1)
    total = hits[:, -1:]
    precision = np.divide(hits, retrieved, out=np.zeros(hits.shape), where=retrieved > 0)
    recall = np.divide(hits, total, out=np.zeros(hits.shape), where=total > 0)
    return precision.mean(axis=0), recall.mean(axis=0)


def precision_at_hamming_radius(
    query_codes: ArrayLike,
    database_codes: ArrayLike,
    query_labels: ArrayLike,
    database_labels: ArrayLike,
    *,
    radius: int = 2,
) -> float:
    """Mean precision of the items within Hamming distance <= ``radius`` of each query.

    A query with no item inside the radius scores 0 and stays in the mean. Radii above K
    retrieve the whole database.
    """
    if isinstance(radius, bool) or not isinstance(radius, numbers.Integral) or radius < 0:
        raise ValueError(f"radius must be a non-negative integer, got {radius!r}")
    precision, _ = precision_recall_curve(
        query_codes, database_codes, query_labels, database_labels
    )
    return float(precision[min(int(radius), len(precision) - 1)])
