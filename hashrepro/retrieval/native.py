"""The compiled Hamming-ranking kernels (``_kernels.c``), built on first use and called via ctypes.

The C source ships with the package. The first call compiles it with the system C compiler
(``$CC`` or ``cc``, about a second) into a per-user cache, ``$HASHREPRO_CACHE`` or
``~/.cache/hashrepro``, keyed by the source, the flags and the machine; later processes load
the cached library. On x86-64 the flags follow the CPU that builds (``-mpopcnt``, ``-mavx2``
where ``/proc/cpuinfo`` lists them), so machines sharing a cache each get a build they can run.
ctypes releases the GIL during each call, so query chunks run in parallel on Python threads.
Without a compiler, or with ``HASHREPRO_NATIVE=0``, :func:`kernels` returns None and the
callers use their NumPy / torch paths, which give identical results (slower).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings
from functools import cache
from pathlib import Path

import numpy as np

_SOURCE = Path(__file__).with_name("_kernels.c")
_ENABLED = os.environ.get("HASHREPRO_NATIVE", "1") != "0"  # tests switch it off
MAX_BITS = 65535  # distance histograms live on the C stack / in small buffers
_X86 = ("popcnt", "avx2")  # instruction sets used when the CPU has them (tests drop AVX2)

_I64, _I32, _PTR = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
_SIGNATURES = {
    # q, db, nq, n, nw, nbits, q_labels, lw, db_bits, out_n, out_r
    "hr_bucket_counts": [_PTR, _PTR, _I64, _I64, _I32, _I32, _PTR, _I32, _PTR, _PTR, _PTR],
    # q, db, nq, n, nw, nbits, q_labels, lw, db_bits, depth, inv, out
    "hr_ap_index": [_PTR, _PTR, _I64, _I64, _I32, _I32, _PTR, _I32, _PTR, _I64, _PTR, _PTR],
    # q, db, nq, n, nw, nbits, k, block, out_d, out_i
    "hr_topk": [_PTR, _PTR, _I64, _I64, _I32, _I32, _I64, _I64, _PTR, _PTR],
}


def _flags() -> list[str]:
    flags = ["-O3", "-std=c99", "-shared", "-fPIC"]
    if platform.machine().lower() in ("x86_64", "amd64"):  # the build machine's CPU decides
        # popcnt: one instruction per word; AVX2: a block's 64 distances in vector registers
        flags += [f"-m{ext}" for ext in _X86 if _cpu_has(ext)]
    return flags


def _cpu_has(flag: str) -> bool:
    try:
        return flag in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def _cache_dir() -> Path:
    root = os.environ.get("HASHREPRO_CACHE")
    if not root:
        try:
            root = Path.home() / ".cache" / "hashrepro"
        except RuntimeError:  # no home directory: a per-user folder in the temp directory
            root = Path(tempfile.gettempdir()) / f"hashrepro-{os.getuid()}"
    return Path(root) / "kernels"


def _build(compiler: str, flags: list[str], target: Path) -> None:
    """Compile into a temporary file next to ``target``, then rename (safe across processes)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        subprocess.run(
            [compiler, *flags, str(_SOURCE), "-o", tmp], check=True, capture_output=True, text=True
        )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@cache
def _load() -> ctypes.CDLL | None:
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None or sys.platform == "win32":
        warnings.warn(
            f"no C compiler ({compiler!r}): hashrepro retrieval uses its slower NumPy path",
            stacklevel=3,
        )
        return None
    flags = _flags()
    key = hashlib.sha1(
        _SOURCE.read_bytes() + " ".join([compiler, *flags, platform.platform()]).encode()
    ).hexdigest()[:16]
    target = _cache_dir() / f"kernels-{key}.so"
    try:
        if not target.exists():
            _build(compiler, flags, target)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or err
        warnings.warn(
            f"could not build {_SOURCE.name} ({str(detail).strip().splitlines()[-1:]}): "
            "hashrepro retrieval uses its slower NumPy path",
            stacklevel=3,
        )
        return None
    for name, args in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, ctypes.c_int
    return lib


def kernels() -> ctypes.CDLL | None:
    """The loaded kernel library, or None when disabled or unavailable."""
    return _load() if _ENABLED else None


def ptr(a: np.ndarray) -> int:
    """Address of a C-contiguous array's data, for a ctypes call."""
    if not a.flags.c_contiguous:
        raise ValueError("native kernels need C-contiguous arrays")
    return a.ctypes.data


def check(status: int, name: str) -> None:
    """Raise when a kernel reports that it could not allocate its scratch memory."""
    if status != 0:
        raise MemoryError(f"{name}: out of memory for its scratch buffers")


def label_bitsets(
    query_labels: np.ndarray, database_labels: np.ndarray, max_bytes: int = 256 * 2**20
) -> tuple[np.ndarray, np.ndarray] | None:
    """Relevance inputs of the kernels: query label words and database label bitsets.

    Args:
        query_labels: (Q,) integer class ids, or (Q, L) booleans.
        database_labels: (N,) class ids, or (N, L) booleans (the same kind as the queries).
        max_bytes: the largest bitset table to build; beyond it (very many classes) None.

    Returns:
        ``(q_words, db_bits)``: (Q, ceil(L / 64)) uint64 multi-hot rows and (L, ceil(N / 64))
        uint64 bitsets, bit x of row l set when item x has label l. Class ids become labels
        over the database's distinct classes (a query class absent from it: no label).
    """
    n = len(database_labels)
    if query_labels.ndim == 1:
        q_ids, db_ids, n_labels = _dense_ids(query_labels, database_labels)
    else:
        n_labels = database_labels.shape[1]
    nwd, lw = -(-n // 64), -(-n_labels // 64)
    if n_labels * nwd * 8 > max_bytes:
        return None
    if query_labels.ndim == 2:
        return _pack_rows(query_labels, lw), _pack_rows(
            np.ascontiguousarray(database_labels.T), nwd
        )
    if n_labels <= 64:  # one comparison pass per class
        db_bits = _pack_rows(db_ids[None, :] == np.arange(n_labels)[:, None], nwd)
    else:
        db_bits = np.zeros((n_labels, nwd), dtype=np.uint64)
        items = np.arange(n)
        bit = np.uint64(1) << (items & 63).astype(np.uint64)
        np.bitwise_or.at(db_bits, (db_ids, items >> 6), bit)
    q_hot = np.zeros((len(query_labels), 64 * lw), dtype=bool)
    known = np.flatnonzero(q_ids >= 0)
    q_hot[known, q_ids[known]] = True
    return _pack_rows(q_hot, lw), db_bits


def _dense_ids(query_ids: np.ndarray, db_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Renumber class ids 0..C-1 over the database's classes; a query class it lacks is -1."""
    top = max(int(query_ids.max()), int(db_ids.max()))
    if top < 4 * len(db_ids) + 1024:  # small ids: a lookup table instead of a sort
        present = np.bincount(db_ids, minlength=top + 1) > 0
        table = np.where(present, np.cumsum(present) - 1, -1)
        return table[query_ids], table[db_ids], int(present.sum())
    classes, dense = np.unique(db_ids, return_inverse=True)
    pos = np.minimum(np.searchsorted(classes, query_ids), len(classes) - 1)
    return np.where(classes[pos] == query_ids, pos, -1), dense, len(classes)


def _pack_rows(bits: np.ndarray, words: int) -> np.ndarray:
    """(R, C) booleans -> (R, words) uint64, bit c of a row in word c // 64, bit c % 64."""
    packed = np.zeros((bits.shape[0], 8 * words), dtype=np.uint8)
    if bits.shape[1]:
        row_bytes = np.packbits(bits, axis=1, bitorder="little")
        packed[:, : row_bytes.shape[1]] = row_bytes
    return packed.view("<u8").astype(np.uint64, copy=False)
