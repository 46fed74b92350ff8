"""Paired significance of retrieval differences: bootstrap over queries, Holm's adjustment.

Two methods evaluated on the same queries (the same split) give paired per-query APs; the
bootstrap resamples the queries, within each seed, and asks how often the mean difference
falls on either side of zero.
"""

from __future__ import annotations

import numpy as np


def paired_bootstrap(
    a: list[np.ndarray], b: list[np.ndarray], resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Mean per-query AP difference ``a - b`` over seeds, and its two-sided bootstrap p-value.

    Args:
        a: per seed, the (Q,) per-query APs of one method.
        b: per seed, those of the other method on the same queries.
        resamples: bootstrap resamples (queries drawn with replacement within each seed).
        seed: the resampling seed.

    """
    rng = np.random.default_rng(seed)
    stats = np.zeros(resamples)
    for x, y in zip(a, b, strict=True):
        d = np.asarray(x) - np.asarray(y)  # (Q,)
        idx = rng.integers(0, len(d), size=(resamples, len(d)))
        stats += d[idx].mean(axis=1) / len(a)
    diff = float(
        np.mean([np.mean(np.asarray(x) - np.asarray(y)) for x, y in zip(a, b, strict=True)])
    )
    tail = min((stats <= 0).sum(), (stats >= 0).sum())
    return diff, float(min(1.0, 2 * (tail + 1) / (resamples + 1)))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment of p-values (same order as given)."""
    order = np.argsort(pvalues)
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
