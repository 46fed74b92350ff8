"""Binary hash codes: binarisation, bit packing and Hamming distances.

Conventions used throughout ``hashrepro.retrieval``:

* A code is a row of K real numbers; its binary form is ``sign(x)`` with ``0 -> +1``
  (:func:`hashrepro.models.common.sign`, the suite's one binarisation).
* Packed codes are ``uint8`` rows of ``ceil(K / 8)`` bytes, most significant bit first
  (the layout of ``numpy.packbits``); bit = 1 where the binary code is +1. Padding bits are 0.
* Internally rows are also viewed as 64-bit words. CPU data takes a NumPy fast path
  (``np.bitwise_count``, GIL-free and without torch's intra-op thread pool); other devices
  (CUDA) use plain torch bit tricks with identical results.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from hashrepro.models.common import sign

ArrayLike = Any  # torch.Tensor | numpy.ndarray | nested sequences
Array = np.ndarray | Tensor  # backend array: NumPy on the CPU fast path, else torch

_BYTE_WEIGHTS = (128, 64, 32, 16, 8, 4, 2, 1)
_HAMMING_CHUNK_BYTES = 64 * 2**20  # scratch memory of one hamming_distance chunk
_NUMPY_FAST_PATH = True  # tests switch it off to exercise the pure-torch path on CPU
_WORD_DTYPES = {
    1: (np.uint8, torch.uint8),
    2: (np.uint16, torch.int16),
    4: (np.uint32, torch.int32),
    8: (np.uint64, torch.int64),
}
# (max distance, NumPy dtype, torch dtype): small dtypes let NumPy radix-sort distances
_DISTANCE_DTYPES = (
    (255, np.uint8, torch.uint8),
    (32767, np.int16, torch.int16),
    (2**31 - 1, np.int32, torch.int32),
)


def as_tensor(x: ArrayLike) -> Tensor:
    """Convert a numpy array / sequence / tensor to a detached tensor (no copy when possible)."""
    if isinstance(x, Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        x = np.ascontiguousarray(x) if x.flags.writeable else x.copy()
    return torch.as_tensor(x)


def use_numpy(t: Tensor) -> bool:
    """Whether ``t`` takes the NumPy fast path (CPU tensors, NumPy >= 2 for bitwise_count)."""
    return _NUMPY_FAST_PATH and t.device.type == "cpu" and hasattr(np, "bitwise_count")


def to_backend(t: Tensor) -> Array:
    """A NumPy view of ``t`` on the fast path (bfloat16 upcast), else ``t`` itself."""
    if not use_numpy(t):
        return t
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


def to_numpy(x: Array) -> np.ndarray:
    """Host NumPy copy of a backend array."""
    return x if isinstance(x, np.ndarray) else x.cpu().numpy()


def _check_code_values(t: Tensor) -> None:
    """Refuse codes whose binarisation would silently be wrong (one-line ValueError).

    ``{0, 1}`` bits (bool, or any dtype holding only 0 and 1 with both present, as released
    code files often store them) would all map to +1; complex and NaN codes have no sign.
    """
    if t.dtype == torch.bool:
        raise ValueError("codes are boolean; convert {0,1} bits with 2 * b - 1 first")
    if t.is_complex():
        raise ValueError("codes are complex; pass real-valued or +1/-1 codes")
    # a NaN makes the sum NaN: one cheap reduction, the exact check only when it is NaN
    if t.is_floating_point() and bool(torch.isnan(t.sum())) and bool(torch.isnan(t).any()):
        raise ValueError("codes contain NaN values")
    if t.numel() and bool(t.min() >= 0) and bool(t.max() == 1):
        if bool(((t == 0) | (t == 1)).all()) and bool((t == 0).any()):
            raise ValueError(
                "codes hold only the values 0 and 1 ({0,1} bits), which would all binarize to "
                "+1; convert them to +1/-1 codes with 2 * b - 1 first"
            )


def binarize(x: ArrayLike) -> Tensor:
    """Sign of ``x`` as a ``torch.int8`` tensor of +1/-1, with 0 mapped to +1.

    Args:
        x: real-valued tensor or array of any shape (numpy input gives a CPU tensor).

    Returns:
        ``torch.int8`` tensor with the shape and device of ``x``.

    Raises:
        ValueError: for boolean input (0/1 bits would all map to +1; pass ``2 * b - 1``)
            or NaN values.
    """
    t = as_tensor(x)
    _check_code_values(t)
    return sign(t, torch.int8)


def sign_bits(codes: Tensor) -> Array:
    """(N, K) booleans ``binarize(codes) == +1`` as a backend array."""
    if codes.ndim != 2 or 0 in codes.shape:
        raise ValueError(f"codes must have shape (N >= 1, K >= 1), got {tuple(codes.shape)}")
    _check_code_values(codes)
    return to_backend(codes) >= 0


def pack_bits(bits: Array) -> Array:
    """Pack (N, K) booleans into (N, ceil(K/8)) uint8, most significant bit first."""
    if isinstance(bits, np.ndarray):
        return np.packbits(bits, axis=1)
    n, k = bits.shape
    pad = -k % 8
    if pad:
        bits = torch.nn.functional.pad(bits, (0, pad))
    weights = torch.tensor(_BYTE_WEIGHTS, dtype=torch.uint8, device=bits.device)
    grouped = bits.reshape(n, (k + pad) // 8, 8).to(torch.uint8)  # (N, B, 8)
    return (grouped * weights).sum(dim=-1, dtype=torch.uint8)  # (N, B)


def pack_codes(codes: ArrayLike) -> Tensor:
    """Pack (N, K) codes into bits: bit = 1 where ``binarize(code) == +1``.

    Args:
        codes: (N, K) real-valued or +1/-1 codes, tensor or numpy array.

    Returns:
        (N, ceil(K / 8)) ``torch.uint8`` tensor, most significant bit first, zero padding.
    """
    return torch.as_tensor(pack_bits(sign_bits(as_tensor(codes))))


def bytes_to_words(packed: Array, word_bytes: int = 8) -> Array:
    """View (N, B) uint8 rows as (N, W) words of ``word_bytes`` bytes (zero padded).

    Words are unsigned in NumPy and signed in torch (which lacks unsigned bit operations);
    only the bit patterns matter.
    """
    n, b = packed.shape
    np_dtype, torch_dtype = _WORD_DTYPES[word_bytes]
    width = -(-b // word_bytes) * word_bytes
    if isinstance(packed, np.ndarray):
        padded = np.zeros((n, width), dtype=np.uint8)
        padded[:, :b] = packed
        return padded.view(np_dtype)
    padded = torch.nn.functional.pad(packed, (0, width - b))
    return padded.contiguous().view(torch_dtype)


def _popcount64(x: Tensor) -> Tensor:
    """Per-element popcount of int64 words (SWAR; arithmetic shifts are masked out)."""
    x = x - ((x >> 1) & 0x5555555555555555)
    x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F  # byte counts <= 8, so x >= 0 from here on
    x = x + (x >> 8)
    x = x + (x >> 16)
    x = x + (x >> 32)
    return x & 0x7F


def hamming_words(query_words: Array, database_words: Array, n_bits: int) -> Array:
    """(C, N) Hamming distances between (C, W) and (N, W) words.

    The dtype is the smallest that holds ``n_bits`` (uint8 up to 255 bits).
    """
    _, np_dtype, torch_dtype = next(d for d in _DISTANCE_DTYPES if n_bits <= d[0])
    if isinstance(query_words, np.ndarray):
        dist = None
        for w in range(query_words.shape[1]):
            xor = query_words[:, w, None] ^ database_words[None, :, w]  # (C, N)
            count = np.bitwise_count(xor)  # uint8
            if dist is None:
                dist = count.astype(np_dtype, copy=False)
            else:
                dist += count
        return dist
    c, n = query_words.shape[0], database_words.shape[0]
    dist = torch.zeros((c, n), dtype=torch.int32, device=query_words.device)
    for w in range(query_words.shape[1]):
        dist += _popcount64(query_words[:, w, None] ^ database_words[None, :, w]).int()
    return dist.to(torch_dtype)


def hamming_distance(query_packed: ArrayLike, database_packed: ArrayLike) -> Tensor:
    """Hamming distances between packed codes via XOR + popcount.

    Args:
        query_packed: (Q, B) uint8 codes from :func:`pack_codes`.
        database_packed: (N, B) uint8 codes from :func:`pack_codes`.

    Returns:
        (Q, N) ``torch.int32`` distances, computed in query chunks of bounded scratch memory.
    """
    q, db = as_tensor(query_packed), as_tensor(database_packed)
    for name, t in (("query_packed", q), ("database_packed", db)):
        if t.dtype != torch.uint8 or t.ndim != 2:
            raise ValueError(f"{name} must be a 2-D uint8 array from pack_codes, got {t.dtype}")
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"packed widths differ: {q.shape[1]} vs {db.shape[1]} bytes")
    db = db.to(q.device)
    qw, dw = bytes_to_words(to_backend(q)), bytes_to_words(to_backend(db))
    if isinstance(qw, np.ndarray):
        out = np.empty((q.shape[0], db.shape[0]), dtype=np.int32)
    else:
        out = torch.empty((q.shape[0], db.shape[0]), dtype=torch.int32, device=q.device)
    rows = max(1, _HAMMING_CHUNK_BYTES // (16 * max(1, db.shape[0])))
    for start in range(0, q.shape[0], rows):
        out[start : start + rows] = hamming_words(qw[start : start + rows], dw, 8 * q.shape[1])
    return torch.as_tensor(out)
