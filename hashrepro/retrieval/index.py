"""``HammingIndex``: packed binary codes searched by Hamming distance, exactly.

Three backends, chosen by name, give the same results on the same codes:

* ``"exact"``: a scan on this project's kernels. On the CPU the compiled top-k kernel of
  :mod:`~hashrepro.retrieval.native` (one pass, a threshold and a counting sort) or, without a
  C compiler, NumPy; on other devices (``device="cuda"``) torch.
* ``"faiss"``: FAISS ``IndexBinaryFlat``, an exact scan with OpenMP threads.
* ``"mih"``: FAISS ``IndexBinaryMultiHash`` (multi-index hashing, Norouzi et al., CVPR 2012):
  the code is cut into ``nhash`` substrings, each with its own hash table. An item within
  distance r of the query has some substring within ``r // nhash`` bit flips of the query's
  (pigeonhole), so probing that many flips finds every item of a radius search: sub-linear for
  small radii on large collections. k-NN search grows the radius until every query has k items
  inside it, which makes it exact too; queries that would need more probes than a scan costs
  are finished by the exact scan.

Results are ranked by (distance, id): among tied items the smaller id comes first, also at the
cut of the top k. Ids are row positions in the index, 0..N-1, in the order codes were added.
``search`` pads with id -1 and distance -1 when k exceeds the index size.

Codes are given either as real-valued or +1/-1 arrays of shape (N, K), binarised with
:func:`~hashrepro.retrieval.codes.binarize` (``0 -> +1``), or already packed as ``uint8`` rows of
``ceil(K / 8)`` bytes (:func:`~hashrepro.retrieval.codes.pack_codes` layout). A ``uint8`` array is
always read as packed codes.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hashrepro.retrieval import native
from hashrepro.retrieval.codes import (
    ArrayLike,
    as_tensor,
    bytes_to_words,
    hamming_words,
    pack_codes,
    use_numpy,
)
from hashrepro.retrieval.codes_file import read_codes, save_npz

BACKENDS = ("exact", "faiss", "mih")
FORMAT = "hashrepro-index-v1"
_SCAN_BLOCK_BYTES = 256 * 2**10  # database bytes per block of the compiled top-k scan
_QUERY_CHUNK = 64  # queries per call of the compiled kernel (per thread)
_CHUNK_PAIRS = {"cpu": 2**22, "cuda": 2**25}  # (query, item) pairs per chunk, NumPy / torch


class HammingIndex:
    """An index of binary codes with exact k-NN and radius search under Hamming distance.

    Args:
        n_bits: code length K.
        backend: ``"exact"``, ``"faiss"`` or ``"mih"`` (see the module docstring).
        device: where the exact backend keeps codes and searches (``"cpu"``, ``"cuda"``, ...);
            the FAISS backends run on the CPU.
        nhash: substrings of the ``"mih"`` backend; None picks ``round(K / log2(N))`` (at least
            1) at the first ``add``, the choice of Norouzi et al.

    Raises:
        ValueError: for an unknown backend or a non-positive code length.
    """

    def __init__(
        self,
        n_bits: int,
        backend: str = "exact",
        device: str | torch.device = "cpu",
        nhash: int | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if n_bits < 1:
            raise ValueError(f"n_bits must be >= 1, got {n_bits}")
        if nhash is not None and not 1 <= nhash <= n_bits:
            raise ValueError(f"nhash must be between 1 and n_bits={n_bits}, got {nhash}")
        self.n_bits = int(n_bits)
        self.n_bytes = -(-self.n_bits // 8)
        self.backend = backend
        self.device = torch.device(device)
        if backend != "exact" and self.device.type != "cpu":
            raise ValueError(f"the {backend!r} backend runs on the CPU; use backend='exact'")
        self.nhash = nhash
        self._packed = torch.zeros((0, self.n_bytes), dtype=torch.uint8, device=self.device)
        self._faiss = None  # the FAISS index, built lazily from _packed

    # ----------------------------------------------------------------- building
    @classmethod
    def from_codes(cls, codes: ArrayLike, n_bits: int | None = None, **kwargs) -> HammingIndex:
        """An index holding ``codes``; ``n_bits`` is needed only for packed (uint8) codes."""
        t = as_tensor(codes)
        if n_bits is None:
            if t.dtype == torch.uint8:
                raise ValueError("packed uint8 codes need n_bits (their code length)")
            n_bits = t.shape[-1]
        index = cls(n_bits, **kwargs)
        index.add(t)
        return index

    @classmethod
    def from_predictions(
        cls, path: str | Path, modality: str | None = None, **kwargs
    ) -> HammingIndex:
        """An index of the codes in a ``hashrepro predict`` file (see :mod:`..codes_file`)."""
        codes = read_codes(path)
        return cls.from_codes(codes.packed(modality), codes.n_bits, **kwargs)

    def add(self, codes: ArrayLike) -> None:
        """Append codes: (N, K) real-valued / +1-1 codes, or (N, ceil(K/8)) packed uint8."""
        packed = self._pack(codes).to(self.device)
        self._packed = torch.cat([self._packed, packed])
        if self._faiss is not None:
            self._faiss.add(np.ascontiguousarray(_np(packed)))

    def __len__(self) -> int:
        return self._packed.shape[0]

    @property
    def ntotal(self) -> int:
        """Number of codes in the index."""
        return len(self)

    @property
    def packed(self) -> Tensor:
        """(N, ceil(K/8)) uint8 packed codes, in id order."""
        return self._packed

    def _pack(self, codes: ArrayLike) -> Tensor:
        t = as_tensor(codes)
        if t.ndim != 2:
            raise ValueError(f"codes must be a 2-D array, got shape {tuple(t.shape)}")
        if t.dtype == torch.uint8:
            if t.shape[1] != self.n_bytes:
                raise ValueError(
                    f"packed codes have {t.shape[1]} bytes per row; {self.n_bits} bits need "
                    f"{self.n_bytes}"
                )
            pad = 8 * self.n_bytes - self.n_bits
            if pad and bool((t[:, -1] & ((1 << pad) - 1)).any()):
                raise ValueError(f"packed codes set padding bits beyond bit {self.n_bits}")
            return t.contiguous()
        if t.shape[1] != self.n_bits:
            raise ValueError(f"codes have {t.shape[1]} bits, the index {self.n_bits}")
        if t.shape[0] == 0:
            return torch.zeros((0, self.n_bytes), dtype=torch.uint8)
        return pack_codes(t)

    # ----------------------------------------------------------------- search
    def search(self, queries: ArrayLike, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest codes of every query, ranked by (distance, id).

        Args:
            queries: (Q, K) codes or (Q, ceil(K/8)) packed uint8 codes.
            k: neighbours per query (>= 1).

        Returns:
            ``(distances, ids)``: (Q, k) int32 and (Q, k) int64 arrays; rows beyond the index
            size are padded with -1.
        """
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        q = self._pack(queries)
        if len(self) == 0 or len(q) == 0:
            shape = (len(q), int(k))
            return np.full(shape, -1, dtype=np.int32), np.full(shape, -1, dtype=np.int64)
        if self.backend == "faiss":
            dist, ids = self._faiss_index().search(_np(q), int(k))
            return _pad_faiss(dist, ids)
        if self.backend == "mih":
            return self._mih_search(q, int(k))
        return self._exact_search(q, int(k))

    def range_search(
        self, queries: ArrayLike, radius: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every code within Hamming distance ``radius`` (inclusive) of each query.

        Returns:
            ``(lims, distances, ids)``: the results of query i are
            ``distances[lims[i]:lims[i+1]]`` (int32) and ``ids[lims[i]:lims[i+1]]`` (int64),
            ranked by (distance, id); ``lims`` is (Q + 1,) int64.
        """
        if isinstance(radius, bool) or not isinstance(radius, int | np.integer) or radius < 0:
            raise ValueError(f"radius must be a non-negative integer, got {radius!r}")
        q = self._pack(queries)
        radius = min(int(radius), self.n_bits)
        if len(self) == 0 or len(q) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return np.zeros(len(q) + 1, dtype=np.int64), empty.astype(np.int32), empty
        if self.backend == "exact":
            return self._exact_range(q, radius)
        index = self._faiss_index()
        if self.backend == "mih":
            index.nflip = min(radius // index.nhash, index.b)
        lims, dist, ids = index.range_search(_np(q), radius + 1)  # FAISS: distance < radius
        return _rank_ranges(lims.astype(np.int64), dist.astype(np.int32), ids.astype(np.int64))

    # ----------------------------------------------------------------- exact backend
    def _exact_search(self, q: Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        lib = native.kernels() if use_numpy(self._packed) else None
        if lib is not None and self.n_bits <= native.MAX_BITS:
            return self._native_search(lib, q, k)
        qw, dw = bytes_to_words(_backend(q, self._packed)), bytes_to_words(_backend(self._packed))
        kk = min(k, len(self))
        rows = max(1, _CHUNK_PAIRS.get(self.device.type, 2**22) // len(self))
        dist_parts, id_parts = [], []
        for s in range(0, len(q), rows):
            dist = hamming_words(qw[s : s + rows], dw, self.n_bits)  # (C, N)
            ids, d = _top_k(dist, kk)
            dist_parts.append(_np(d))
            id_parts.append(_np(ids))
        dist, ids = np.concatenate(dist_parts).astype(np.int32), np.concatenate(id_parts)
        return _pad(dist, ids.astype(np.int64), k)

    def _native_search(self, lib, q: Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        qw = np.ascontiguousarray(bytes_to_words(_np(q)))
        dw = self._words()
        kk = min(k, len(self))
        dist = np.empty((len(q), kk), dtype=np.int32)
        ids = np.empty((len(q), kk), dtype=np.int64)
        block = max(64, _SCAN_BLOCK_BYTES // (8 * dw.shape[1]))

        def chunk(s: int) -> None:
            e = min(s + _QUERY_CHUNK, len(q))
            status = lib.hr_topk(
                native.ptr(qw[s:e]),
                native.ptr(dw),
                e - s,
                len(dw),
                dw.shape[1],
                self.n_bits,
                kk,
                block,
                native.ptr(dist[s:e]),
                native.ptr(ids[s:e]),
            )
            native.check(status, "hr_topk")

        _run_threaded(chunk, range(0, len(q), _QUERY_CHUNK))
        return _pad(dist, ids, k)

    def _words(self) -> np.ndarray:
        """(N, W) uint64 words of the CPU codes, cached until the next ``add``."""
        cached = getattr(self, "_word_cache", None)
        if cached is None or cached[0] != len(self):
            cached = (len(self), np.ascontiguousarray(bytes_to_words(_np(self._packed))))
            self._word_cache = cached
        return cached[1]

    def _exact_range(self, q: Tensor, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        qw, dw = bytes_to_words(_backend(q, self._packed)), bytes_to_words(_backend(self._packed))
        rows = max(1, _CHUNK_PAIRS.get(self.device.type, 2**22) // len(self))
        counts, dist_parts, id_parts = [], [], []
        for s in range(0, len(q), rows):
            dist = hamming_words(qw[s : s + rows], dw, self.n_bits)  # (C, N)
            if isinstance(dist, np.ndarray):
                row, ids = np.nonzero(dist <= radius)  # row-major: ids ascending per row
                d = dist[row, ids].astype(np.int64)
                order = np.argsort(row * (self.n_bits + 1) + d, kind="stable")
                counts.append(np.bincount(row, minlength=dist.shape[0]))
            else:
                row, ids = torch.nonzero(dist <= radius, as_tuple=True)
                d = dist[row, ids].long()
                order = torch.sort(row * (self.n_bits + 1) + d, stable=True).indices
                counts.append(_np(torch.bincount(row, minlength=dist.shape[0])))
            dist_parts.append(_np(d[order]).astype(np.int32))
            id_parts.append(_np(ids[order]).astype(np.int64))
        lims = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
        return lims, np.concatenate(dist_parts), np.concatenate(id_parts)

    # ----------------------------------------------------------------- FAISS backends
    def _faiss_index(self):
        if self._faiss is None:
            import faiss

            d = 8 * self.n_bytes
            if self.backend == "faiss":
                index = faiss.IndexBinaryFlat(d)
            else:
                nhash = self.nhash or max(1, round(self.n_bits / math.log2(max(len(self), 2))))
                nhash = min(nhash, self.n_bits)
                self.nhash = nhash
                index = faiss.IndexBinaryMultiHash(d, nhash, min(64, self.n_bits // nhash))
            if len(self):
                index.add(np.ascontiguousarray(_np(self._packed)))
            self._faiss = index
        return self._faiss

    def _mih_search(self, q: Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k-NN by multi-index hashing: grow the radius until k items lie inside."""
        index = self._faiss_index()
        nhash, b, n = index.nhash, index.b, len(self)
        kk = min(k, n)
        qn = _np(q)
        dist = np.full((len(qn), k), -1, dtype=np.int32)
        ids = np.full((len(qn), k), -1, dtype=np.int64)
        todo = np.arange(len(qn))
        for flips in range(b + 1):
            probes = nhash * sum(math.comb(b, i) for i in range(flips + 1))
            if not len(todo) or probes > max(64, n // 16):  # a scan is cheaper from here on
                break
            radius = nhash * (flips + 1) - 1  # every item this close is found (pigeonhole)
            index.nflip = flips
            lims, d, i = index.range_search(np.ascontiguousarray(qn[todo]), radius + 1)
            lims, d, i = _rank_ranges(lims.astype(np.int64), d.astype(np.int32), i.astype(np.int64))
            found = np.diff(lims)
            done = found >= kk
            for row in np.flatnonzero(done):
                s = lims[row]
                dist[todo[row], :kk] = d[s : s + kk]
                ids[todo[row], :kk] = i[s : s + kk]
            todo = todo[~done]
        if len(todo):
            rest_d, rest_i = self._exact_search(q[torch.from_numpy(todo)], k)
            dist[todo], ids[todo] = rest_d, rest_i
        return dist, ids

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write the codes and settings to a ``.npz`` file (written atomically)."""
        return save_npz(
            path,
            format=FORMAT,
            packed=_np(self._packed),
            n_bits=self.n_bits,
            backend=self.backend,
            nhash=self.nhash or 0,
        )

    @classmethod
    def load(cls, path: str | Path, **overrides) -> HammingIndex:
        """Read an index written by :meth:`save`; ``overrides`` replace saved settings."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such index file (a .npz from HammingIndex.save)")
        with np.load(path, allow_pickle=False) as f:
            if "format" not in f or str(f["format"]) != FORMAT:
                raise ValueError(f"{path} is not a {FORMAT} file (HammingIndex.save)")
            settings = {
                "backend": str(f["backend"]),
                "nhash": int(f["nhash"]) or None,
            }
            settings.update(overrides)
            return cls.from_codes(f["packed"], int(f["n_bits"]), **settings)


# ----------------------------------------------------------------------------- helpers


def _np(t: Tensor | np.ndarray) -> np.ndarray:
    return t if isinstance(t, np.ndarray) else t.detach().cpu().numpy()


def _backend(t: Tensor, like: Tensor | None = None):
    """NumPy on the CPU fast path, else a torch tensor on ``like``'s device."""
    target = t if like is None else t.to(like.device)
    return target.numpy() if use_numpy(target) else target


def _top_k(dist, k: int):
    """(C, k) ids and distances of each row's k smallest (distance, id) pairs."""
    n = dist.shape[1]
    shift = max(1, (n - 1).bit_length())
    if isinstance(dist, np.ndarray):
        key = dist.astype(np.int64) << shift | np.arange(n, dtype=np.int64)
        if k < n:
            key = np.partition(key, k - 1, axis=1)[:, :k]
        key = np.sort(key, axis=1)
    else:
        key = (dist.long() << shift) | torch.arange(n, device=dist.device)
        key = torch.topk(key, k, dim=1, largest=False, sorted=True).values
    return key & ((1 << shift) - 1), key >> shift


def _pad(dist: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if dist.shape[1] == k:
        return dist, ids
    extra = k - dist.shape[1]
    pad = np.full((len(dist), extra), -1)
    return np.hstack([dist, pad.astype(np.int32)]), np.hstack([ids, pad.astype(np.int64)])


def _pad_faiss(dist: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FAISS pads with id -1 and distance INT_MAX; use -1 for both."""
    dist = dist.astype(np.int32)
    dist[ids < 0] = -1
    return dist, ids.astype(np.int64)


def _rank_ranges(
    lims: np.ndarray, dist: np.ndarray, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order each query's results by (distance, id)."""
    row = np.repeat(np.arange(len(lims) - 1), np.diff(lims))
    order = np.lexsort((ids, dist, row))
    return lims, dist[order], ids[order]


def _run_threaded(fn, starts) -> None:
    """Run ``fn(start)`` for every start on ``torch.get_num_threads()`` threads."""
    starts = list(starts)
    workers = max(1, min(torch.get_num_threads(), len(starts)))
    if workers == 1:
        for s in starts:
            fn(s)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, starts))
