"""Cross-modal classic baselines (CCA-ITQ, CVH, SCM-seq, CMFH) on synthetic two-view data."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from hashrepro.baselines import CCAITQ, CMFH, CROSSMODAL_BASELINES, CVH, SCMSeq
from hashrepro.models.common import sign

BITS = 8
METHODS = {"cca_itq": CCAITQ, "cvh": CVH, "scm_seq": SCMSeq, "cmfh": CMFH}
RANDOMISED = ["cca_itq", "cmfh"]  # random ITQ start / random latent init; CVH, SCM are closed form


def mean_average_precision(
    q_codes: np.ndarray, db_codes: np.ndarray, q_labels: np.ndarray, db_labels: np.ndarray
) -> float:
    """mAP@all: Hamming ranking of sign codes (stable ties), relevant = share a label."""
    qb, db = np.where(q_codes >= 0, 1.0, -1.0), np.where(db_codes >= 0, 1.0, -1.0)
    hamming = (qb.shape[1] - qb @ db.T) / 2  # (Q, N)
    order = np.argsort(hamming, axis=1, kind="stable")
    rel = np.take_along_axis(q_labels @ db_labels.T > 0, order, axis=1).astype(float)  # (Q, N)
    precision = np.cumsum(rel, axis=1) / np.arange(1, rel.shape[1] + 1)
    return float(((precision * rel).sum(axis=1) / np.maximum(rel.sum(axis=1), 1)).mean())


def two_view(n: int, rng: np.random.Generator, nuisance_sd: float = 0.0) -> tuple[np.ndarray, ...]:
    """Paired views of a class-driven latent, optionally plus a label-free factor both views see."""
    fixed = np.random.default_rng(7)
    means = fixed.standard_normal((5, 6)) * 1.5  # 5 classes in a 6-d latent
    mix_img, mix_txt = fixed.standard_normal((6, 20)), fixed.standard_normal((6, 30))
    nuis_img, nuis_txt = fixed.standard_normal((2, 20)), fixed.standard_normal((2, 30))
    y = np.arange(n) % 5
    z = means[y] + 0.5 * rng.standard_normal((n, 6))
    shared = nuisance_sd * rng.standard_normal((n, 2))
    x_img = z @ mix_img + shared @ nuis_img + rng.standard_normal((n, 20))
    x_txt = z @ mix_txt + shared @ nuis_txt + rng.standard_normal((n, 30))
    return x_img, x_txt, np.eye(5)[y]


def make_data(nuisance_sd: float) -> dict[str, tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(0)
    return {
        k: two_view(n, rng, nuisance_sd) for k, n in (("train", 300), ("query", 100), ("db", 400))
    }


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[np.ndarray, ...]]:
    return make_data(0.0)


def cross_map(encode: Callable[[np.ndarray, str], np.ndarray], data) -> float:
    """Mean of image->text and text->image mAP for an ``encode(x, modality)`` function."""
    (qi, qt, ql), (di, dt, dl) = data["query"], data["db"]
    i2t = mean_average_precision(encode(qi, "image"), encode(dt, "text"), ql, dl)
    t2i = mean_average_precision(encode(qt, "text"), encode(di, "image"), ql, dl)
    return (i2t + t2i) / 2


def model_map(model, data) -> float:
    return cross_map(model.fit(*data["train"]).encode, data)


def random_encoder(seed: int) -> Callable[[np.ndarray, str], np.ndarray]:
    """Independent Gaussian projections per modality: the no-learning reference."""
    rng = np.random.default_rng(seed)
    proj = {"image": rng.standard_normal((20, BITS)), "text": rng.standard_normal((30, BITS))}
    return lambda x, modality: x @ proj[modality]


def test_registry_lists_all_methods() -> None:
    assert CROSSMODAL_BASELINES == METHODS


@pytest.mark.parametrize("name", list(METHODS))
def test_shapes_and_real_codes(name: str, data) -> None:
    model = METHODS[name](BITS)
    assert model.fit(*data["train"]) is model
    for modality, x in (("image", data["query"][0]), ("text", data["query"][1])):
        codes = model.encode(x, modality)
        assert codes.shape == (100, BITS) and codes.dtype == np.float64
        assert np.all(np.isfinite(codes))
        np.testing.assert_array_equal(model.hash(x, modality), sign(codes, np.int8))


@pytest.mark.parametrize("name", list(METHODS))
def test_deterministic_for_a_seed(name: str, data) -> None:
    def codes(seed: int) -> np.ndarray:
        model = METHODS[name](BITS, seed=seed).fit(*data["train"])
        return model.encode(data["query"][1], "text")

    np.testing.assert_array_equal(codes(3), codes(3))
    if name in RANDOMISED:
        assert not np.allclose(codes(3), codes(4))


@pytest.mark.parametrize("name", ["cca_itq", "cvh", "cmfh"])
def test_unsupervised_ignore_labels(name: str, data) -> None:
    x_img, x_txt, labels = data["train"]
    a = METHODS[name](BITS).fit(x_img, x_txt, labels).encode(data["query"][0], "image")
    b = METHODS[name](BITS).fit(x_img, x_txt).encode(data["query"][0], "image")
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", list(METHODS))
def test_beat_random_projections(name: str, data) -> None:
    random_maps = [cross_map(random_encoder(seed), data) for seed in range(5)]
    assert np.mean(random_maps) < 0.35  # near chance (0.2) for 5 balanced classes
    assert model_map(METHODS[name](BITS), data) > np.mean(random_maps) + 0.2


def test_scm_beats_unsupervised_under_label_irrelevant_correlation() -> None:
    # the two most correlated cross-view directions carry no label: with 2 bits the unsupervised
    # methods hash exactly those (near chance, 0.2), SCM follows the labels
    data = make_data(nuisance_sd=3.0)
    scm = model_map(SCMSeq(2), data)
    for cls in (CCAITQ, CVH, CMFH):
        assert scm > model_map(cls(2), data) + 0.3


def test_scm_never_forms_n_by_n(data) -> None:
    reps = 20  # N = 6,000: an N x N float64 similarity alone would take 288 MB
    x_img, x_txt, labels = (np.tile(a, (reps, 1)) for a in data["train"])
    tracemalloc.start()
    SCMSeq(4).fit(x_img, x_txt, labels)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50e6


@pytest.mark.parametrize(
    ("build", "args", "match"),
    [
        (lambda: CVH(0), (np.ones((10, 3)), np.ones((10, 3))), "num_bits"),
        (lambda: CVH(4), (np.ones((10, 3)), np.ones((9, 3))), "rows"),
        (lambda: CVH(4), (np.ones(10), np.ones((10, 3))), "2-D"),
        (lambda: CVH(21), (np.ones((50, 20)), np.ones((50, 30))), "num_bits=21 exceeds 20"),
        (lambda: CCAITQ(21), (np.ones((50, 20)), np.ones((50, 30))), "num_bits=21 exceeds 20"),
        (lambda: SCMSeq(4), (np.ones((50, 3)), np.ones((50, 3))), "labels"),
        (lambda: SCMSeq(4), (np.ones((50, 3)), np.ones((50, 3)), np.ones((40, 2))), "labels"),
        (lambda: CMFH(4, lam=1.5), (np.ones((50, 3)), np.ones((50, 3))), "lam"),
    ],
)
def test_bad_inputs_raise(build, args, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        model = build()
        model.fit(*args)


def test_encode_checks_modality_dims_and_fit_state(data) -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        CVH(4).encode(data["query"][0], "image")
    model = CVH(4).fit(*data["train"])
    with pytest.raises(ValueError, match="modality"):
        model.encode(data["query"][0], "audio")
    with pytest.raises(ValueError, match="30 features but the model was fit on 20"):
        model.encode(data["query"][1], "image")
