"""KSH against its authors' algorithm: the optimiser's steps, the objective, the defaults."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import check_grad
from scipy.spatial.distance import cdist

from hashrepro.baselines import KSH
from hashrepro.baselines.base import RBFAnchorFeatures
from hashrepro.baselines.ksh import KSHSurrogate, PairResidual
from hashrepro.baselines.optim import accelerated_descent


def quadratic(a: np.ndarray):
    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        return 0.5 * float(x @ a @ x), a @ x

    return fun


def test_steps_on_a_one_dimensional_quadratic() -> None:
    # f(x) = 2 x^2 from x0 = 1, L0 = 1. Step 1 probes v = x0 (no momentum yet), g = 4; L = 1
    # gives z = -3 (f = 18 > model -6), L = 2 gives z = -1 (f = 2 > model -2), L = 4 gives
    # z = 0 (f = 0 <= model 0): accepted. Step 2: momentum (d_1 - 1) / d_2 = 0, so v = 0,
    # g = 0, z = 0 at L = 4; |f change| = 0 <= tol stops it.
    res = accelerated_descent(quadratic(np.array([[4.0]])), np.array([1.0]))
    np.testing.assert_array_equal(res.costs, [2.0, 0.0, 0.0])
    np.testing.assert_array_equal(res.lipschitz, [4.0, 4.0])
    assert res.x.tolist() == [0.0] and res.stop == "tol"


def test_momentum_and_the_lipschitz_estimate_on_a_2d_quadratic() -> None:
    # f(x) = (x1^2 + 4 x2^2) / 2 from (1, 1): f = 2.5, g = (1, 4). Step 1 (v = x0):
    # L = 1: z = (0, -3), f = 18 > model 2.5 - 17 + 8.5 = -6; L = 2: z = (0.5, -1),
    # f = 2.125 > 2.5 - 8.5 + 4.25 = -1.75; L = 4: z = (0.75, 0), f = 0.28125 <= 2.5 - 4.25
    # + 2.125 = 0.375: accepted. Step 2: momentum (d_1 - 1) / d_2 = 0, v = x1, g = (0.75, 0),
    # z = v - g / 4 = (0.5625, 0), f = 0.158203125 <= 0.28125 - 0.140625 + 0.0703125: accepted.
    fun = quadratic(np.diag([1.0, 4.0]))
    res = accelerated_descent(fun, np.array([1.0, 1.0]), max_iter=2, tol=0.0)
    np.testing.assert_array_equal(res.lipschitz, [4.0, 4.0])
    np.testing.assert_array_equal(res.costs, [2.5, 0.28125, 0.158203125])
    np.testing.assert_array_equal(res.x, [0.5625, 0.0])
    assert res.stop == "max_iter"
    # Step 3 uses momentum (d_2 - 1) / d_3 > 0 along x2 - x1.
    d2 = (1 + np.sqrt(5)) / 2
    d3 = (1 + np.sqrt(1 + 4 * d2**2)) / 2
    v = res.x + (d2 - 1) / d3 * (res.x - np.array([0.75, 0.0]))
    res3 = accelerated_descent(fun, np.array([1.0, 1.0]), max_iter=3, tol=0.0)
    np.testing.assert_allclose(res3.x, v - fun(v)[1] / res3.lipschitz[-1])
    # and it converges to the minimum, with a never-decreasing L
    long = accelerated_descent(fun, np.array([1.0, 1.0]), max_iter=200, tol=0.0)
    np.testing.assert_allclose(long.x, [0.0, 0.0], atol=1e-8)
    assert np.all(np.diff(long.lipschitz) >= 0)


def test_stopping_rule_is_scaled_and_a_failed_line_search_keeps_the_iterate() -> None:
    fun = quadratic(np.diag([1.0, 4.0]))
    x0 = np.array([1.0, 1.0])
    # the steps lower f by 2.21875, then 0.123: it stops at the first change <= tol * scale
    assert len(accelerated_descent(fun, x0, tol=0.01, scale=300).costs) == 2
    assert len(accelerated_descent(fun, x0, tol=0.01, scale=200).costs) == 3
    assert len(accelerated_descent(fun, x0, tol=0.01, scale=10).costs) > 3
    # a function no step can decrease: stop, keep x0
    flat = accelerated_descent(lambda x: (0.0, np.ones(2)), x0, max_backtracks=3)
    assert flat.stop == "line_search" and flat.x.tolist() == [1.0, 1.0]


@pytest.fixture
def small_problem() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = np.arange(12) % 3
    kl = rng.standard_normal((12, 4)) + ids[:, None]
    return kl - kl.mean(axis=0), np.eye(3)[ids]


def test_surrogate_matches_its_formula_and_gradient(small_problem) -> None:
    kl, labels = small_problem
    resid = PairResidual(labels, 8)
    s = 2.0 * (labels @ labels.T > 0) - 1.0
    np.testing.assert_array_equal(resid.toarray(), 8 * s)
    fun = KSHSurrogate(kl, resid)
    a = np.array([0.3, -0.2, 0.1, 0.5])
    y = 2 / (1 + np.exp(-kl @ a)) - 1  # the authors' sigmoid form
    assert fun.value(a) == pytest.approx(-y @ (8 * s) @ y)
    assert fun(a)[0] == fun.value(a)
    grad = fun(a)[1]
    assert check_grad(fun.value, lambda x: fun(x)[1], a) < 1e-6 * np.linalg.norm(grad)


def test_residual_forms_agree(small_problem) -> None:
    kl, labels = small_problem
    multi = labels.copy()
    multi[0, 1] = 1  # one item with two labels: dense form
    for lab in (labels, multi):
        res = PairResidual(lab, 4)
        assert res.factored == (lab is labels)
        dense = 4 * (2.0 * (lab @ lab.T > 0) - 1.0)
        b = np.where(kl[:, 0] >= 0, 1.0, -1.0)
        res.downdate(b)
        dense -= np.outer(b, b)
        np.testing.assert_allclose(res.toarray(), dense, atol=1e-12)
        np.testing.assert_allclose(res @ kl[:, 1], dense @ kl[:, 1], atol=1e-12)
        np.testing.assert_allclose(res.sandwich(kl), kl.T @ dense @ kl, atol=1e-10)


def test_defaults_are_the_authors() -> None:
    # KSH_demo.m: m = 300 anchors, trn = 2000 labelled points, sigma = mean squared distance;
    # OptProjectionFast(KK, S, a0, 500): 500 steps, stop at |cost change| / n <= 1e-2.
    params = KSH(8).get_params()
    assert params == {
        "num_bits": 8,
        "seed": 0,
        "n_anchors": 300,
        "n_labelled": 2000,
        "sigma": "rms",
        "optimizer": "accelerated",
        "max_iter": 500,
        "tol": 1e-2,
    }
    x = np.random.default_rng(0).standard_normal((50, 3))
    kernel = RBFAnchorFeatures(x, 10, np.random.default_rng(1), "rms")
    d2 = cdist(x, kernel.anchors, "sqeuclidean")
    expected = np.exp(-d2 / (2 * d2.mean()))  # the authors' exp(-KTrain / (2 * sigma))
    np.testing.assert_allclose(kernel.train_features, expected - expected.mean(axis=0))


@pytest.mark.parametrize("optimizer", ["accelerated", "lbfgs"])
def test_refinement_is_kept_only_when_it_improves_the_discrete_fit(optimizer: str) -> None:
    rng = np.random.default_rng(0)
    ids = np.arange(90) % 3
    x = rng.standard_normal((90, 5)) + ids[:, None]

    def fit_score(**kw) -> tuple[KSH, float]:
        model = KSH(1, n_anchors=20, n_labelled=90, optimizer=optimizer, **kw).fit(x, ids)
        b = np.where(model.encode(x) >= 0, 1.0, -1.0)[:, 0]  # (l,) every point is labelled
        return model, float(b @ PairResidual(np.eye(3)[ids], 1).toarray() @ b)

    spectral, start = fit_score(max_iter=0)  # no refinement step: the spectral start
    assert not spectral.refined_[0]
    model, score = fit_score()
    assert score > start if model.refined_[0] else score == start


def test_bad_options_raise() -> None:
    x, ids = np.ones((20, 3)) + np.arange(20)[:, None], np.arange(20) % 2
    with pytest.raises(ValueError, match="optimizer must be one of"):
        KSH(4, n_anchors=5, optimizer="adam").fit(x, ids)
    with pytest.raises(ValueError, match="sigma must be a positive number or one of"):
        KSH(4, n_anchors=5, sigma="median").fit(x, ids)
