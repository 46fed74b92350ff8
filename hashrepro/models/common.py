"""Hashing primitives shared by every model, baseline and the evaluation (no Lightning).

- :func:`sign`: the suite's one binarisation, ``sign(x)`` with ``sign(0) = +1`` (tensors and
  NumPy arrays);
- :func:`label_similarity`, :func:`pairwise_likelihood`: the pairwise-supervision terms of DPSH
  and DCMH;
- :func:`quantization_loss`, :func:`balance_loss`: the quantization and bit-balance terms of
  HashCNN, DPSH and DCMH;
- :func:`is_multilabel`: the label kind of a (N, C) label matrix;
- :class:`CodeMemory`: the latest codes (and labels) of every item of a dataset, by item index.

Normalisation (ours; DCMH sums every term): the likelihood is a mean over pairs, the
quantization a mean over code elements, and the balance term ``||F^T 1||^2`` is divided by
``rows * live rows * K`` (see :func:`balance_loss`).
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MODALITIES",
    "CodeMemory",
    "all_gather_rows",
    "balance_loss",
    "is_multilabel",
    "label_similarity",
    "pairwise_likelihood",
    "quantization_loss",
    "sign",
]

MODALITIES = ("image", "text")  # the two sides of a cross-modal pair, in this order

ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)


def sign(x: ArrayT, dtype: Any = None) -> ArrayT:
    """``sign(x)`` with ``sign(0) = +1``: exactly +1/-1, no gradient, ``x``'s shape and device.

    Args:
        x: real values, a tensor or a NumPy array (``-0.0`` counts as 0, so it maps to +1).
        dtype: the result's dtype (a torch dtype for tensors, a NumPy one for arrays); default
            ``x``'s own, which must then be signed.

    """
    if isinstance(x, np.ndarray):
        return np.where(x >= 0, 1, -1).astype(dtype or x.dtype)
    one = torch.ones((), dtype=dtype or x.dtype, device=x.device)
    return torch.where(x.detach() >= 0, one, -one)


def is_multilabel(labels: ArrayT) -> bool:
    """Whether (N, C) multi-hot labels are multi-label: not every row sums to exactly 1."""
    return not bool((labels.sum(1) == 1).all())


def label_similarity(labels_a: torch.Tensor, labels_b: torch.Tensor) -> torch.Tensor:
    """Pairwise similarity of multi-hot labels: 1 where two items share a label, else 0.

    Args:
        labels_a: (N, C) multi-hot labels.
        labels_b: (M, C) multi-hot labels.

    Returns:
        (N, M) float tensor of 0/1.

    """
    return (labels_a.float() @ labels_b.float().T > 0).float()


def pairwise_likelihood(
    a: torch.Tensor,
    b: torch.Tensor,
    similarity: torch.Tensor,
    scale: float = 0.5,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Negative log-likelihood of pairwise similarity (DPSH; DCMH's inter-modal term).

    ``Theta_ij = scale * a_i^T b_j`` (DPSH and DCMH: ``scale = 1/2``) and ``p(S_ij = 1) =
    sigmoid(Theta)``, so the loss is ``mean_ij [log(1 + exp(Theta_ij)) - S_ij * Theta_ij]``,
    computed stably as ``softplus(Theta) - S * Theta``. It is small when similar pairs have
    aligned vectors and dissimilar pairs opposite ones.

    Args:
        a: (N, D) vectors of one side (e.g. the live codes of a batch).
        b: (M, D) vectors of the other side (e.g. a code memory).
        similarity: (N, M) 0/1 targets ``S``.
        scale: the factor of the inner product.
        mask: optional (M,) or (N, M) bool, the pairs that count.

    Returns:
        Scalar loss, the mean over the (masked) pairs.

    """
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"vectors differ in size: {a.shape[1]} vs {b.shape[1]}")
    if similarity.shape != (a.shape[0], b.shape[0]):
        raise ValueError(
            f"similarity must be ({a.shape[0]}, {b.shape[0]}), got {tuple(similarity.shape)}"
        )
    theta = scale * a @ b.T  # (N, M)
    nll = F.softplus(theta) - similarity * theta  # (N, M)
    if mask is None:
        return nll.mean()
    mask = mask.expand_as(nll) if mask.dim() == 1 else mask
    return nll[mask].mean()


def quantization_loss(codes: torch.Tensor, binary: torch.Tensor | None = None) -> torch.Tensor:
    """``mean ||B - H||^2`` over code elements: the gap of (N, K) real codes to binary targets.

    Args:
        codes: (N, K) real-valued codes ``H``.
        binary: (N, K) targets in {-1, +1} (DCMH's shared ``B``); default ``sign(codes)``,
            without gradient. Zero when the codes are already binary.

    """
    target = sign(codes) if binary is None else binary
    return (target - codes).pow(2).mean()


def balance_loss(codes: torch.Tensor, num_live: int | None = None) -> torch.Tensor:
    """Bit balance ``||H^T 1||^2 / (N * num_live * K)``: every bit +1 on half the items.

    With all N rows live (the default) this is ``mean_k (mean_i H_ik)^2``, zero for balanced
    codes. DCMH computes it on a memory of every item seen with the live batch rows in it; the
    division by the number of live rows gives each live code element a gradient of the same
    order as the quantization term does.

    Args:
        codes: (N, K) codes.
        num_live: how many of the rows carry gradients (default all).

    """
    rows, bits = codes.shape
    live = rows if num_live is None else max(int(num_live), 1)
    return codes.sum(dim=0).pow(2).sum() / (rows * live * bits)


def all_gather_rows(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """The rows of every process, concatenated in rank order (as given outside a distributed run).

    The tensors of one call have the same number of rows on a process; the counts may differ
    between processes (padded for the exchange, then trimmed). Every process must call it.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return list(tensors)
    world = dist.get_world_size()
    count = torch.tensor([tensors[0].shape[0]], device=tensors[0].device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    sizes = [int(c) for c in counts]
    out = []
    for t in tensors:
        wire = t.to(torch.uint8) if t.dtype == torch.bool else t  # gloo has no bool
        padded = wire.new_zeros((max(sizes), *wire.shape[1:]))
        padded[: len(wire)] = wire
        received = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(received, padded.contiguous())
        rows = torch.cat([r[:n] for r, n in zip(received, sizes, strict=True)])
        out.append(rows.to(t.dtype))
    return out


class CodeMemory(nn.Module):
    """The latest detached codes of every item of a dataset, per modality, by item index.

    DPSH pairs each batch with the memory of all training codes; DCMH also keeps the shared
    binary codes ``B = sign(sum of the modalities' codes)``. Buffers: one (N, K) code matrix per
    modality (named after it, e.g. ``image``, ``text``), ``binary`` (N, K) (0 where not set
    yet), ``seen`` (N,) bool and ``labels`` (N, C), sized on the first update since C is not
    known before. N is ``num_items``, the size of the whole dataset (largest item index + 1),
    so any item of the dataset can be stored.

    Every write goes through :meth:`update`. In a distributed run (``torch.distributed``
    initialised, several processes) it first gathers the rows of every process
    (:func:`all_gather_rows`), so each process's memory holds the items updated by all of them
    and the memories stay identical, as if one process had seen every batch.

    Args:
        num_items: number of items of the dataset (indices 0..num_items-1).
        num_bits: code length K.
        modalities: the code matrices to keep.
        persistent: save the buffers in checkpoints (DCMH's memory is model state; DPSH's is
            refilled as batches are seen).

    """

    def __init__(
        self,
        num_items: int,
        num_bits: int,
        modalities: tuple[str, ...] = ("image",),
        persistent: bool = True,
    ) -> None:
        super().__init__()
        if num_items < 1:
            raise ValueError(f"num_items must be >= 1, got {num_items}")
        self.num_items = num_items
        self.modalities = tuple(modalities)
        for m in self.modalities:
            self.register_buffer(m, torch.zeros(num_items, num_bits), persistent=persistent)
        self.register_buffer("binary", torch.zeros(num_items, num_bits), persistent=persistent)
        self.register_buffer(
            "seen", torch.zeros(num_items, dtype=torch.bool), persistent=persistent
        )
        self.register_buffer("labels", torch.zeros(num_items, 0), persistent=persistent)

    def check_index(self, index: torch.Tensor) -> None:
        """Raise a clear error for item indices the memory cannot hold."""
        if index.numel() and (int(index.max()) >= self.num_items or int(index.min()) < 0):
            bad = int(index.max()) if int(index.max()) >= self.num_items else int(index.min())
            raise IndexError(
                f"item index {bad} does not fit a memory of num_items={self.num_items}; "
                "num_items must be the dataset size (the CLI links it from the data)"
            )

    @torch.no_grad()
    def update(
        self, index: torch.Tensor, labels: torch.Tensor | None = None, **codes: torch.Tensor
    ) -> torch.Tensor:
        """Store detached (B, K) codes per modality (and (B, C) labels) of items ``index``.

        Returns:
            The item indices written: ``index``, or in a distributed run the indices of every
            process's batch (in rank order).

        """
        names = sorted(codes)
        parts = [index.long(), *(codes[m].detach() for m in names)]
        if labels is not None:
            parts.append(labels.detach())
        parts = all_gather_rows(*parts)
        index, codes = parts[0], dict(zip(names, parts[1 : 1 + len(names)], strict=True))
        labels = parts[-1] if labels is not None else None
        self.check_index(index)
        for m, c in codes.items():
            if m not in self.modalities:
                raise ValueError(f"the memory keeps {self.modalities}, not {m!r}")
            buf = getattr(self, m)
            buf[index] = c.detach().to(buf.dtype)
        if labels is not None:
            if self.labels.shape[1] != labels.shape[1]:
                if self.seen.any():
                    raise ValueError(
                        f"labels have {labels.shape[1]} classes, the memory {self.labels.shape[1]}"
                    )
                self.labels = labels.new_zeros(self.num_items, labels.shape[1], dtype=torch.float)
            self.labels[index] = labels.detach().float()
        self.seen[index] = True
        return index

    def seen_index(self) -> torch.Tensor:
        """(M,) indices of the items stored so far, ascending."""
        return self.seen.nonzero().squeeze(1)

    def stored(self, modality: str = "image") -> tuple[torch.Tensor, torch.Tensor]:
        """Codes (M, K) of one modality and labels (M, C) of the items stored so far."""
        idx = self.seen_index()
        return getattr(self, modality)[idx], self.labels[idx]

    def _sum(self, index: torch.Tensor) -> torch.Tensor:
        total = getattr(self, self.modalities[0])[index]
        for m in self.modalities[1:]:
            total = total + getattr(self, m)[index]
        return total

    @torch.no_grad()
    def init_binary(self, index: torch.Tensor) -> None:
        """Set B = sign(sum of codes) for the items of ``index`` whose B is not set yet."""
        fresh = index[self.binary[index].abs().sum(dim=1) == 0]
        if fresh.numel():
            self.binary[fresh] = sign(self._sum(fresh))

    @torch.no_grad()
    def refresh_binary(self) -> None:
        """DCMH's B-step: B = sign(sum of codes) for every seen item."""
        idx = self.seen_index()
        self.binary[idx] = sign(self._sum(idx))

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # ``labels`` is sized on the first update: resize it to the checkpoint's shape first.
        saved = state_dict.get(prefix + "labels")
        if saved is not None and saved.shape != self.labels.shape:
            self.labels = self.labels.new_zeros(saved.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
