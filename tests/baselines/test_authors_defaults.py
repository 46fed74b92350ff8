"""SDH's and SCM-seq's defaults are their authors'; the earlier, better-scoring settings stay."""

from __future__ import annotations

import numpy as np
import pytest

from hashrepro.baselines import CCAITQ, CMFH, SDH, SCMSeq
from hashrepro.baselines.single import discrete_ccd


def test_sdh_defaults_are_the_authors() -> None:
    # SDH.m and its demo: 1000 anchors, gmap.lambda = 1, Fmap.nu = 1e-5, Fmap.lambda = 1e-2,
    # maxItr = 5, B-step from B = 0 with up to 10 sweeps, [phi(X), 1] features.
    assert SDH(16).get_params() == {
        "num_bits": 16,
        "seed": 0,
        "n_anchors": 1000,
        "sigma": "rms",
        "lam": 1.0,
        "nu": 1e-5,
        "proj_ridge": 1e-2,
        "n_outer": 5,
        "n_dcc": 10,
        "dcc_warm_start": False,
        "bias_column": True,
    }


def test_scm_seq_defaults_are_the_authors() -> None:
    # trainSCM_seq.m: Cxx = X' * X + 1e-6 * eye(dX)
    assert SCMSeq(16).get_params() == {
        "num_bits": 16,
        "seed": 0,
        "reg": 1e-6,
        "reg_scale": "absolute",
    }


def objective(b: np.ndarray, q: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum((b @ w) ** 2) - 2 * np.sum(b * q))


def test_discrete_ccd_from_zero_reaches_a_coordinate_optimum() -> None:
    rng = np.random.default_rng(0)
    q, w = rng.standard_normal((40, 6)), rng.standard_normal((6, 3))
    b = discrete_ccd(np.zeros((40, 6)), q, w, n_sweeps=50)
    assert set(np.unique(b)) <= {-1.0, 1.0}
    best = objective(b, q, w)
    for i in range(40):  # no single bit flip lowers the objective
        for k in range(6):
            flipped = b.copy()
            flipped[i, k] *= -1
            assert objective(flipped, q, w) >= best - 1e-9
    # the first sweep from 0 sets column k against the columns before it only
    one = discrete_ccd(np.zeros((40, 6)), q, w, n_sweeps=1)
    ww = w @ w.T
    np.testing.assert_array_equal(one[:, 0], np.sign(q[:, 0]))
    np.testing.assert_array_equal(one[:, 1], np.sign(q[:, 1] - one[:, 0] * ww[0, 1]))


def test_discrete_ccd_stops_when_a_sweep_changes_nothing() -> None:
    rng = np.random.default_rng(1)
    q, w = rng.standard_normal((40, 6)), rng.standard_normal((6, 3))
    converged = discrete_ccd(np.zeros((40, 6)), q, w, n_sweeps=50)
    np.testing.assert_array_equal(discrete_ccd(converged, q, w, n_sweeps=1), converged)


def test_sdh_earlier_settings_remain_reachable() -> None:
    rng = np.random.default_rng(0)
    ids = np.arange(120) % 4
    x = rng.standard_normal((120, 6)) + ids[:, None]
    old = dict(sigma="mean", proj_ridge=1e-4, n_dcc=5, dcc_warm_start=True, bias_column=False)
    a = SDH(8, n_anchors=40, **old).fit(x, ids)
    b = SDH(8, n_anchors=40).fit(x, ids)
    assert a.projection_.shape == (40, 8) and b.projection_.shape == (41, 8)
    assert not np.allclose(a.encode(x), b.encode(x)[:, :8])


def test_scm_absolute_ridge_is_added_to_the_unnormalised_covariance() -> None:
    rng = np.random.default_rng(0)
    ids = np.arange(80) % 4
    xi = rng.standard_normal((80, 5)) + ids[:, None]
    xi -= xi.mean(axis=0)
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    xt = xi @ q  # the same trace of X^T X on both sides
    # reg * I added to X^T X is reg * D / trace(X^T X) times the mean variance added to X^T X / N
    rel = 3.0 * 5 / np.trace(xi.T @ xi)
    absolute = SCMSeq(4, reg=3.0).fit(xi, xt, ids)
    relative = SCMSeq(4, reg=rel, reg_scale="relative").fit(xi, xt, ids)
    np.testing.assert_array_equal(absolute.hash(xi, "image"), relative.hash(xi, "image"))
    np.testing.assert_allclose(absolute.singular_values_, relative.singular_values_ / 80)
    assert not np.allclose(SCMSeq(4, reg=1e3).fit(xi, xt, ids).encode(xi, "image"),
                           absolute.encode(xi, "image"))  # fmt: skip


def test_scm_bad_reg_scale() -> None:
    with pytest.raises(ValueError, match="reg_scale must be one of"):
        SCMSeq(4, reg_scale="log").fit(np.ones((10, 3)), np.ones((10, 3)), np.arange(10) % 2)


def test_cca_itq_and_cmfh_defaults_are_the_authors() -> None:
    # Gong's cca.m: projections times the correlations, the ridge set by validation (10 x the
    # mean variance on Multiple Features); ITQ: 50 iterations. CMFH (paper and solveCMFH.m):
    # lambda 0.5, mu 100, gamma 0.01.
    assert CCAITQ(16).get_params() == {
        "num_bits": 16,
        "seed": 0,
        "reg": 10.0,
        "reg_scale": "relative",
        "corr_power": 1.0,
        "n_iter": 50,
    }
    params = CMFH(16).get_params()
    assert (params["lam"], params["mu"], params["gamma"], params["tol"]) == (0.5, 100.0, 1e-2, 1e-2)


def test_cmfh_stops_by_the_authors_rule_or_the_cap() -> None:
    rng = np.random.default_rng(0)
    xi, xt = rng.standard_normal((60, 5)), rng.standard_normal((60, 4))
    assert CMFH(4, mu=1.0).fit(xi, xt).n_iter_ < 1000
    assert CMFH(4, mu=1.0, tol=0.0, n_iter=30).fit(xi, xt).n_iter_ == 30
