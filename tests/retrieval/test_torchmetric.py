"""Tests for the torchmetrics wrapper: accumulation, reset, de-duplication and ordering."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hashrepro.retrieval import RetrievalMAPMetric, mean_average_precision


def tied_data() -> dict[str, torch.Tensor]:
    """Queries and a database whose mAP with ties="index" depends on database order."""
    rng = np.random.default_rng(0)
    q_codes = torch.from_numpy(rng.normal(size=(6, 3)))
    db_codes = torch.from_numpy(rng.normal(size=(20, 3)))  # 3 bits: many ties
    return {
        "q_codes": q_codes,
        "q_labels": torch.from_numpy(rng.integers(0, 3, 6)),
        "db_codes": db_codes,
        "db_labels": torch.from_numpy(rng.integers(0, 3, 20)),
    }


def reference(d: dict[str, torch.Tensor], **kwargs) -> float:
    return mean_average_precision(
        d["q_codes"], d["db_codes"], d["q_labels"], d["db_labels"], **kwargs
    )


def test_update_in_batches_then_compute_matches_the_function() -> None:
    d = tied_data()
    metric = RetrievalMAPMetric(topk=7)
    for rows in (slice(0, 4), slice(4, 6)):
        metric.update(d["q_codes"][rows], d["q_labels"][rows], role="query")
    for rows in (slice(0, 5), slice(5, 12), slice(12, 20)):
        metric.update(d["db_codes"][rows].numpy(), d["db_labels"][rows], role="database")
    value = metric.compute()
    assert isinstance(value, torch.Tensor)
    assert value.item() == pytest.approx(reference(d, topk=7), abs=1e-7)


@pytest.mark.filterwarnings("ignore:The ``compute`` method:UserWarning")
def test_reset_clears_the_state() -> None:
    d = tied_data()
    metric = RetrievalMAPMetric()
    metric.update(d["q_codes"], d["q_labels"], role="query")
    metric.update(d["db_codes"], d["db_labels"], role="database")
    metric.compute()
    metric.reset()
    with pytest.raises(ValueError, match="no query items"):
        metric.compute()
    metric.update(d["q_codes"][:2], d["q_labels"][:2], role="query")
    with pytest.raises(ValueError, match="no database items"):
        metric.compute()


def test_index_restores_database_order_and_drops_duplicates() -> None:
    d = tied_data()
    perm = torch.from_numpy(np.random.default_rng(1).permutation(20))
    padded = torch.cat([perm, perm[:3]])  # DistributedSampler-style padding repeats items
    shuffled = {**d, "db_codes": d["db_codes"][padded], "db_labels": d["db_labels"][padded]}
    assert reference(shuffled) != pytest.approx(reference(d))  # order and duplicates matter

    metric = RetrievalMAPMetric(ties="index")
    q_index = torch.tensor([0, 1, 2, 3, 4, 5, 0])  # a padded query too
    metric.update(d["q_codes"][q_index], d["q_labels"][q_index], role="query", index=q_index)
    metric.update(shuffled["db_codes"], shuffled["db_labels"], role="database", index=padded)
    assert metric.compute().item() == pytest.approx(reference(d), abs=1e-7)


def test_merged_rank_states_equal_the_single_process_result() -> None:
    """Emulate the DDP "cat" gather of two ranks with an interleaving, padding sampler."""
    d = tied_data()
    ranks = [RetrievalMAPMetric(topk=10), RetrievalMAPMetric(topk=10)]
    for rank, metric in enumerate(ranks):
        q_idx = torch.tensor([0, 2, 4]) + rank
        db_idx = torch.arange(rank, 22, 2) % 20  # 11 items per rank, 2 padded duplicates
        metric.update(d["q_codes"][q_idx], d["q_labels"][q_idx], role="query", index=q_idx)
        for part in (db_idx[:6], db_idx[6:]):
            metric.update(d["db_codes"][part], d["db_labels"][part], role="database", index=part)
    gathered = torch.cat([torch.arange(r, 22, 2) % 20 for r in range(2)])
    naive = {**d, "db_codes": d["db_codes"][gathered], "db_labels": d["db_labels"][gathered]}
    assert reference(naive, topk=10) != pytest.approx(reference(d, topk=10))
    ranks[0].merge_state(ranks[1])
    assert ranks[0].compute().item() == pytest.approx(reference(d, topk=10), abs=1e-7)


def test_ties_option_is_forwarded() -> None:
    d = tied_data()
    metric = RetrievalMAPMetric(ties="average")
    metric.update(d["q_codes"], d["q_labels"], role="query")
    metric.update(d["db_codes"], d["db_labels"], role="database")
    assert metric.compute().item() == pytest.approx(reference(d, ties="average"), abs=1e-7)
    assert reference(d, ties="average") != pytest.approx(reference(d))


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="ties"):
        RetrievalMAPMetric(ties="first")
    with pytest.raises(ValueError, match="topk"):
        RetrievalMAPMetric(topk=0)
    metric = RetrievalMAPMetric()
    with pytest.raises(ValueError, match="role"):
        metric.update(torch.ones(2, 4), torch.zeros(2), role="gallery")
    with pytest.raises(ValueError, match="labels"):
        metric.update(torch.ones(2, 4), torch.zeros(3), role="query")
    with pytest.raises(ValueError, match="indices"):
        metric.update(torch.ones(2, 4), torch.zeros(2), role="query", index=torch.arange(3))


def test_index_given_for_some_updates_only_raises() -> None:
    d = tied_data()
    metric = RetrievalMAPMetric()
    metric.update(d["q_codes"], d["q_labels"], role="query")
    metric.update(d["db_codes"][:5], d["db_labels"][:5], role="database", index=torch.arange(5))
    metric.update(d["db_codes"][5:], d["db_labels"][5:], role="database")
    with pytest.raises(ValueError, match="some updates only"):
        metric.compute()
