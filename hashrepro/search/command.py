"""``hashrepro search``: the top-k of a query in a codes file, printed and optionally drawn.

::

    hashrepro search --index codes.npz --query digit.png --config cfg.yaml
        --ckpt_path best.ckpt [--k 10] [--grid out.png] [--modality image] [--backend exact]

``--index`` is the codes file of ``hashrepro predict``; the query is encoded with the model of
``--config`` and ``--ckpt_path``. Arguments this parser does not know (``--data.init_args.root
...``) go to the config parser, as in ``fit``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hashrepro.retrieval.codes_file import read_codes
from hashrepro.retrieval.index import BACKENDS, HammingIndex
from hashrepro.search.query import encode_query, load_trained, query_modality, raw_query


@dataclass
class SearchResult:
    """A query's top-k: rows of the codes file, their dataset items, distances and labels."""

    query_modality: str
    modality: str
    distances: np.ndarray  # (k,) int32
    rows: np.ndarray  # (k,) int64, rows of the codes file (-1: fewer items than k)
    items: np.ndarray  # (k,) int64 dataset item indices
    labels: np.ndarray  # (k, C) float32
    grid: Path | None = None


def build_parser() -> argparse.ArgumentParser:
    """The ``hashrepro search`` argument parser."""
    p = argparse.ArgumentParser(
        prog="hashrepro search",
        description="Encode a query with a trained model and print its nearest items.",
    )
    p.add_argument("--index", required=True, help="codes file from `hashrepro predict` (.npz)")
    p.add_argument("--query", help="an image file, or a text for data with string text items")
    p.add_argument("--item", type=int, help="query with this dataset item instead")
    p.add_argument("--query_modality", choices=["image", "text"], help="default: from --query")
    p.add_argument("--config", action="append", required=True, help="the model's config(s)")
    p.add_argument("--ckpt_path", required=True, help="the trained checkpoint (.ckpt)")
    p.add_argument("--k", type=int, default=10, help="results to show (default 10)")
    p.add_argument("--modality", help="codes to search (default: the query's modality)")
    p.add_argument("--backend", choices=BACKENDS, default="exact", help="HammingIndex backend")
    p.add_argument("--grid", type=Path, help="draw the query and its top-k into this PNG")
    return p


def search_main(argv: list[str]) -> SearchResult:
    """Run ``hashrepro search`` with ``argv`` (without the ``search`` word)."""
    args, overrides = build_parser().parse_known_args(argv)
    if args.k < 1:
        raise ValueError(f"--k must be >= 1, got {args.k}")
    codes = read_codes(args.index)
    q_mod = query_modality(args.query, args.item, args.query_modality)
    modality = args.modality or (q_mod if q_mod in codes.codes else codes.modalities[0])
    index = HammingIndex.from_codes(codes.packed(modality), codes.n_bits, backend=args.backend)
    model, dm = load_trained(args.config, args.ckpt_path, overrides)
    written_for = codes.meta.get("dataset")
    if written_for and written_for != type(dm).__name__:
        raise ValueError(
            f"{args.index} holds codes of {written_for} but the config gives {type(dm).__name__}"
        )
    if model.num_bits != codes.n_bits:
        raise ValueError(
            f"the model has {model.num_bits} bits but {args.index} holds {codes.n_bits}-bit codes"
        )
    raw = raw_query(dm, args.query, args.item, q_mod)
    code = encode_query(model, dm, raw, q_mod)
    distances, rows = (a[0] for a in index.search(code, args.k))
    found = rows >= 0
    result = SearchResult(
        query_modality=q_mod,
        modality=modality,
        distances=distances[found],
        rows=rows[found],
        items=codes.index[rows[found]],
        labels=codes.labels[rows[found]],
    )
    if args.item is None:
        described = args.query
    else:
        described = f"item {args.item} y={_label_text(dm.data.labels[args.item])}"
    print(f"query: {described} ({q_mod}) -> {modality} codes of {args.index}")
    print(f"{'rank':>4}  {'distance':>8}  {'item':>8}  label")
    for rank, (d, item, label) in enumerate(
        zip(result.distances, result.items, result.labels, strict=True), start=1
    ):
        print(f"{rank:>4}  {int(d):>8}  {int(item):>8}  {_label_text(label)}")
    if args.grid is not None:
        result.grid = _draw(dm, raw, described, result, args.grid)
        print(f"wrote {result.grid}")
    return result


def _label_text(label: np.ndarray) -> str:
    """Class ids of a multi-hot label row, e.g. ``3`` or ``1,7``."""
    ids = np.flatnonzero(label > 0)
    return ",".join(str(i) for i in ids) if len(ids) else "-"


def _draw(dm: Any, raw: Any, described: str, result: SearchResult, path: Path) -> Path:
    from hashrepro.search.grid import draw_grid

    show = "image" if "image" in dm.modalities else result.modality  # pictures where possible
    source = dm.data.sources[show]
    items = [source[int(i)] for i in result.items]
    titles = [
        f"#{r} d={int(d)} y={_label_text(y)}"
        for r, (d, y) in enumerate(zip(result.distances, result.labels, strict=True), start=1)
    ]
    name = Path(described).name if result.query_modality == "image" else described
    return draw_grid(raw, f"query: {name}", items, titles, path)
