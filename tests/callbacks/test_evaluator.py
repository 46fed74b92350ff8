from __future__ import annotations

import numpy as np
import pytest
import torch

from hashrepro.callbacks import RetrievalEvaluator
from hashrepro.retrieval import mean_average_precision

CROSS = [("i2t", "image", "text"), ("t2i", "text", "image")]


def batches(codes: dict[str, torch.Tensor], labels: torch.Tensor, size: int):
    for start in range(0, len(labels), size):
        sl = slice(start, start + size)
        yield (
            {m: c[sl] for m, c in codes.items()},
            {
                "label": labels[sl],
                "index": torch.arange(len(labels))[sl],
            },
        )


def feed(ev: RetrievalEvaluator, q: dict, ql: torch.Tensor, d: dict, dl: torch.Tensor) -> dict:
    for codes, batch in batches(q, ql, 7):
        ev.update(codes, batch, "query")
    for codes, batch in batches(d, dl, 11):
        ev.update(codes, batch, "database")
    return ev.compute()["metrics"]


def test_cross_modal_directions_match_the_metric() -> None:
    g = torch.Generator().manual_seed(0)
    ql = torch.nn.functional.one_hot(torch.randint(0, 3, (20,), generator=g), 3).float()
    dl = torch.nn.functional.one_hot(torch.randint(0, 3, (50,), generator=g), 3).float()
    q = {"image": torch.randn(20, 8, generator=g), "text": torch.randn(20, 8, generator=g)}
    d = {"image": torch.randn(50, 8, generator=g), "text": torch.randn(50, 8, generator=g)}
    ev = RetrievalEvaluator()
    ev.reset(CROSS, torch.device("cpu"))
    out = feed(ev, q, ql, d, dl)
    i2t = mean_average_precision(q["image"], d["text"], ql, dl, ties="average")
    t2i = mean_average_precision(q["text"], d["image"], ql, dl, ties="average")
    assert out["mAP_i2t"] == pytest.approx(i2t)
    assert out["mAP_t2i"] == pytest.approx(t2i)
    assert i2t != pytest.approx(t2i)  # image and text buffers are not aliased
    assert out["mAP"] == pytest.approx((i2t + t2i) / 2)
    assert {"bit_imbalance_image", "bit_corr_text"} <= set(out)


def test_perfect_codes_score_one_and_bit_statistics() -> None:
    labels = torch.eye(4).repeat(10, 1)  # (40, 4), 10 items per class
    protos = torch.tensor([[1, 1, -1, -1], [1, -1, 1, -1], [-1, 1, 1, -1], [-1, -1, -1, 1.0]])
    codes = {"image": labels @ protos}  # one code per class
    ev = RetrievalEvaluator()
    ev.reset([("i2i", "image", "image")], torch.device("cpu"))
    out = feed(ev, codes, labels, codes, labels)
    assert out["mAP_i2i"] == pytest.approx(1.0)
    assert out["bit_imbalance_image"] == pytest.approx(0.5 / 4)  # only bit 3 is unbalanced
    dup = {"image": torch.cat([codes["image"][:, :1]] * 4, 1)}  # four identical bits
    ev.reset([("i2i", "image", "image")], torch.device("cpu"))
    out = feed(ev, dup, labels, dup, labels)
    assert out["bit_corr_image"] == pytest.approx(1.0)
    assert out["mAP_i2i"] < 1.0


def test_topk_and_direction_filter() -> None:
    g = torch.Generator().manual_seed(1)
    labels = torch.nn.functional.one_hot(torch.randint(0, 4, (30,), generator=g), 4).float()
    codes = {"image": torch.randn(30, 6, generator=g), "text": torch.randn(30, 6, generator=g)}
    ev = RetrievalEvaluator(topk=5, directions=["t2i"])
    ev.reset(CROSS, torch.device("cpu"))
    out = feed(ev, codes, labels, codes, labels)
    assert "mAP_i2t" not in out
    want = mean_average_precision(
        codes["text"], codes["image"], labels, labels, topk=5, ties="average"
    )
    assert out["mAP_t2i"] == pytest.approx(want)


def test_duplicates_and_order_do_not_change_the_figures() -> None:
    """A DistributedSampler pads with repeats and shards out of order: the result is the same."""
    g = torch.Generator().manual_seed(2)
    labels = torch.nn.functional.one_hot(torch.randint(0, 3, (30,), generator=g), 3).float()
    codes = torch.randn(30, 8, generator=g)
    ev = RetrievalEvaluator(ties="index")
    ev.reset([("i2i", "image", "image")], torch.device("cpu"))
    plain = feed(ev, {"image": codes}, labels, {"image": codes}, labels)
    perm = torch.cat([torch.randperm(30, generator=g), torch.arange(3)])  # shuffled + 3 repeats
    ev.reset([("i2i", "image", "image")], torch.device("cpu"))
    for role in ("query", "database"):
        for part in perm.split(7):
            ev.update({"image": codes[part]}, {"label": labels[part], "index": part}, role)
    assert ev.compute()["metrics"] == plain
    assert plain["mAP_i2i"] == plain["mAP_i2i_index"] != plain["mAP_i2i_average"]


def test_test_report_holds_the_table_figures() -> None:
    g = torch.Generator().manual_seed(3)
    ql = torch.nn.functional.one_hot(torch.randint(0, 3, (12,), generator=g), 3).float()
    dl = torch.nn.functional.one_hot(torch.randint(0, 3, (40,), generator=g), 3).float()
    q, d = torch.randn(12, 6, generator=g), torch.randn(40, 6, generator=g)
    ev = RetrievalEvaluator(ties="average", ks=[1, 5, 100], show=4)
    ev.reset([("i2i", "image", "image")], torch.device("cpu"))
    for codes, batch in batches({"image": q}, ql, 5):
        batch["index"] = batch["index"] + 1000  # dataset indices, not positions
        ev.update(codes, batch, "query")
    for codes, batch in batches({"image": d}, dl, 9):
        ev.update(codes, batch, "database")
    result = ev.compute(report=True)
    rep = result["directions"]["i2i"]
    assert np.mean(rep["ap"]) == pytest.approx(result["metrics"]["mAP_i2i"])
    assert result["metrics"]["mAP_i2i"] == result["metrics"]["mAP_i2i_average"]
    assert len(rep["pr_radius"]["precision"]) == 7  # radius 0..K
    assert rep["precision_at_k"]["k"] == [1, 5, 40]  # clamped to the database
    assert rep["query_index"] == [1000, 1004, 1007, 1011]  # spread over the 12 queries
    shown = [0, 4, 7, 11]
    dist = ((q[shown, None] >= 0) != (d[None] >= 0)).sum(-1)  # (4, 40) Hamming distances
    for row, ids in zip(dist, rep["database_index"], strict=True):
        assert ids == torch.argsort(row, stable=True)[:10].tolist()
