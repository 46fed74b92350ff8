"""The codes file that ``hashrepro predict`` writes: packed codes of one split, one ``.npz``.

Keys (NumPy ``.npz``, no pickled objects):

* ``format``: ``"hashrepro-codes-v1"``.
* ``n_bits``: code length K (int).
* ``modalities``: (M,) str, the modalities with codes, e.g. ``["image"]`` or ``["image", "text"]``.
* ``codes_<modality>``: (N, ceil(K / 8)) uint8 packed codes of every item, one array per
  modality: bit = 1 where the code is >= 0, most significant bit first, zero padding (the
  layout of :func:`~hashrepro.retrieval.codes.pack_codes` and ``numpy.packbits``).
* ``index``: (N,) int64 dataset item index of each row.
* ``labels``: (N, C) float32 multi-hot labels of each row.
* ``split``: str, the split that was encoded (``database``, ``query``, ...).
* ``meta``: str, JSON with the dataset, model and checkpoint that produced the codes.

Rows are in the split's order (the database order that ``ties="index"`` relies on); row r is
id r of a :class:`~hashrepro.retrieval.index.HammingIndex` built from the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "hashrepro-codes-v1"


@dataclass
class CodesFile:
    """The contents of a codes file (see the module docstring for the meaning of each field)."""

    n_bits: int
    codes: dict[str, np.ndarray]
    index: np.ndarray
    labels: np.ndarray
    split: str = "database"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, width = len(self.index), -(-self.n_bits // 8)
        if not self.codes:
            raise ValueError("a codes file needs codes of at least one modality")
        for name, packed in self.codes.items():
            if packed.dtype != np.uint8 or packed.shape != (n, width):
                raise ValueError(
                    f"codes_{name} must be ({n}, {width}) uint8 packed codes, got "
                    f"{packed.shape} {packed.dtype}"
                )
        if len(self.labels) != n:
            raise ValueError(f"{len(self.labels)} label rows for {n} items")

    @property
    def modalities(self) -> list[str]:
        """The modalities that have codes."""
        return list(self.codes)

    def packed(self, modality: str | None = None) -> np.ndarray:
        """The packed codes of ``modality`` (None: the only one there is)."""
        if modality is None:
            if len(self.codes) > 1:
                raise ValueError(f"the file has codes of {self.modalities}; choose a modality")
            modality = self.modalities[0]
        if modality not in self.codes:
            raise ValueError(f"no {modality!r} codes in the file; it has {self.modalities}")
        return self.codes[modality]


def save_npz(path: str | Path, **arrays: Any) -> Path:
    """Write ``arrays`` to ``path`` (``.npz`` appended if missing) through a temporary file."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def write_codes(path: str | Path, codes: CodesFile) -> Path:
    """Write ``codes`` to ``path`` (``.npz`` appended if missing), atomically."""
    return save_npz(
        path,
        format=FORMAT,
        n_bits=codes.n_bits,
        modalities=np.array(codes.modalities),
        index=codes.index.astype(np.int64),
        labels=codes.labels.astype(np.float32),
        split=codes.split,
        meta=json.dumps(codes.meta, sort_keys=True, default=str),
        **{f"codes_{m}": c for m, c in codes.codes.items()},
    )


def read_codes(path: str | Path) -> CodesFile:
    """Read a codes file written by :func:`write_codes` (``hashrepro predict``).

    Raises:
        FileNotFoundError: the file does not exist (the message names the expected format).
        ValueError: the file is not a codes file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such codes file (a {FORMAT} .npz from `hashrepro predict`)"
        )
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is not a {FORMAT} .npz file ({err})") from None
    with f:
        if "format" not in f or str(f["format"]) != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} file (written by `hashrepro predict`)")
        modalities = [str(m) for m in f["modalities"]]
        return CodesFile(
            n_bits=int(f["n_bits"]),
            codes={m: f[f"codes_{m}"] for m in modalities},
            index=f["index"],
            labels=f["labels"],
            split=str(f["split"]),
            meta=json.loads(str(f["meta"])),
        )
