"""torchmetrics wrappers: DDP-safe gathering of codes, deduplicated by item index.

- :class:`RetrievalCodes` collects binarised codes per role and modality, labels and item
  indices over batches (and ranks), and gives them back deduplicated and in index order; the
  evaluator computes every figure from them.
- :class:`RetrievalMAPMetric` is mAP@topk on top of the same gathering.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from hashrepro.retrieval.codes import ArrayLike, as_tensor, binarize
from hashrepro.retrieval.metrics import ROLES, check_depth, check_ties, mean_average_precision

_PARTS = ("codes", "labels", "index")


class RetrievalMAPMetric(Metric):
    """Hamming-ranking mAP@topk accumulated over batches of queries and database items.

    Codes are stored binarised (int8), labels as given. All states are lists reduced with
    ``"cat"``, so under DDP every rank computes on the gathered set. Pass each item's dataset
    ``index`` to make the result independent of sharding: duplicates (DistributedSampler
    padding) are dropped and both sets are put in index order before ranking, which defines
    the database order that ``ties="index"`` relies on.

    Args:
        topk: ranking depth R of mAP@R; None for the whole database.
        ties: "index" or "average", see :func:`mean_average_precision`.
        **kwargs: forwarded to :class:`torchmetrics.Metric`.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, topk: int | None = None, ties: str = "index", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_ties(ties)
        if topk is not None:
            check_depth(topk, "topk", 1)
        self.topk, self.ties = topk, ties
        for role in ROLES:
            for part in _PARTS:
                self.add_state(f"{role}_{part}", default=[], dist_reduce_fx="cat")

    def update(
        self,
        codes: ArrayLike,
        labels: ArrayLike,
        role: str = "query",
        index: ArrayLike | None = None,
    ) -> None:
        """Add a batch of (B, K) codes and (B,) / (B, L) labels as queries or database items.

        Args:
            codes: real-valued or +1/-1 codes of the batch.
            labels: class ids or multi-hot labels of the batch.
            role: "query" or "database".
            index: (B,) dataset indices of the items; give them in every update or never.
        """
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        codes_t = binarize(as_tensor(codes).to(self.device))
        labels_t = as_tensor(labels).to(self.device)
        if codes_t.ndim != 2 or labels_t.ndim not in (1, 2):
            raise ValueError("codes must be (B, K) and labels (B,) or (B, L)")
        if labels_t.shape[0] != codes_t.shape[0]:
            raise ValueError(f"{codes_t.shape[0]} codes but {labels_t.shape[0]} labels")
        getattr(self, f"{role}_codes").append(codes_t)
        getattr(self, f"{role}_labels").append(labels_t)
        if index is not None:
            index_t = as_tensor(index).to(self.device).long().reshape(-1)
            if index_t.shape[0] != codes_t.shape[0]:
                raise ValueError(f"{codes_t.shape[0]} codes but {index_t.shape[0]} indices")
            getattr(self, f"{role}_index").append(index_t)

    def compute(self) -> Tensor:
        """mAP over the accumulated (deduplicated, index-ordered) queries and database."""
        q_codes, q_labels = self._gathered("query")
        db_codes, db_labels = self._gathered("database")
        value = mean_average_precision(
            q_codes, db_codes, q_labels, db_labels, topk=self.topk, ties=self.ties
        )
        return torch.tensor(value, dtype=torch.float32, device=self.device)

    def _gathered(self, role: str) -> tuple[Tensor, Tensor]:
        """Codes and labels of one role, deduplicated and sorted by index when indices exist."""
        states = [getattr(self, f"{role}_{part}") for part in _PARTS]
        if _is_empty(states[0]):
            raise ValueError(f"RetrievalMAPMetric has no {role} items; call update(role={role!r})")
        codes, labels = dim_zero_cat(states[0]), dim_zero_cat(states[1])
        if _is_empty(states[2]):
            return codes, labels
        index = dim_zero_cat(states[2])
        if index.shape[0] != codes.shape[0]:
            raise ValueError(f"{role} index was given for some updates only")
        keep = _first_by_index(index)
        return codes[keep], labels[keep]


def _is_empty(state: list[Tensor] | Tensor) -> bool:
    return isinstance(state, list) and len(state) == 0


def _first_by_index(index: Tensor) -> Tensor:
    """Positions of the first occurrence of every distinct index, in ascending index order."""
    sorted_index, perm = torch.sort(index, stable=True)
    first = torch.ones_like(sorted_index, dtype=torch.bool)
    first[1:] = sorted_index[1:] != sorted_index[:-1]
    return perm[first]


class RetrievalCodes(Metric):
    """Binarised codes per role and modality, labels and item indices of a retrieval set.

    Every state is a list reduced with ``"cat"``, so under DDP :meth:`compute` sees the items of
    every rank. Items are deduplicated by their ``position`` (their place in the split; a
    DistributedSampler pads the last batch with repeats) and put in that order, which defines
    the database order that ``ties="index"`` relies on, the same with any number of processes.
    Without positions, the dataset ``index`` serves as both.

    Args:
        modalities: the modalities whose codes are kept (``("image",)``, ``("image", "text")``).
        **kwargs: forwarded to :class:`torchmetrics.Metric`.

    ``compute()`` returns ``{"<role>/<modality>": (M, K) int8, "<role>/label": (M, C),
    "<role>/index": (M,)}`` for the roles that received items.
    """

    is_differentiable = False
    full_state_update = False

    def __init__(self, modalities: tuple[str, ...] = ("image",), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.modalities = tuple(modalities)
        for role in ROLES:
            for part in (*self.modalities, "label", "index", "position"):
                self.add_state(f"{role}_{part}", default=[], dist_reduce_fx="cat")

    def update(
        self,
        codes: dict[str, Tensor],
        labels: ArrayLike,
        index: ArrayLike,
        role: str,
        position: ArrayLike | None = None,
    ) -> None:
        """Add a batch of ``{modality: (B, K)}`` real codes and (B, C) labels.

        ``index`` holds the (B,) dataset indices, ``position`` the (B,) places in the split
        (default: the indices).
        """
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        index_t = as_tensor(index).to(self.device).long().reshape(-1)
        position_t = index_t if position is None else as_tensor(position).to(self.device)
        getattr(self, f"{role}_position").append(position_t.long().reshape(-1))
        for m in self.modalities:
            if m not in codes:
                raise ValueError(f"the model gave no {m} codes (it gave {sorted(codes)})")
            c = binarize(as_tensor(codes[m]).to(self.device))
            if c.ndim != 2 or c.shape[0] != index_t.shape[0]:
                raise ValueError(f"{m} codes must be ({index_t.shape[0]}, K), got {tuple(c.shape)}")
            getattr(self, f"{role}_{m}").append(c)
        getattr(self, f"{role}_label").append(as_tensor(labels).to(self.device))
        getattr(self, f"{role}_index").append(index_t)

    def compute(self) -> dict[str, Tensor]:
        """The gathered items of each role, deduplicated by position and in that order."""
        out: dict[str, Tensor] = {}
        for role in ROLES:
            position = getattr(self, f"{role}_position")
            if _is_empty(position):
                continue
            keep = _first_by_index(dim_zero_cat(position))
            for part in (*self.modalities, "label", "index"):
                out[f"{role}/{part}"] = dim_zero_cat(getattr(self, f"{role}_{part}"))[keep]
        return out
