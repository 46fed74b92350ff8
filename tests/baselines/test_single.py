"""Single-modal classic baselines (LSH, SH, ITQ, KSH, SDH) on small synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from hashrepro.baselines import ITQ, KSH, LSH, SDH, SH, SINGLE_BASELINES
from hashrepro.baselines.base import pca_basis
from hashrepro.models.common import sign

BITS = 16
# Small anchor / subset sizes keep the supervised fits well under a second each.
CONFIGS = {
    "lsh": (LSH, {}),
    "sh": (SH, {}),
    "itq": (ITQ, {}),
    "ksh": (KSH, {"n_anchors": 100, "n_labelled": 300}),
    "sdh": (SDH, {"n_anchors": 300}),
}
RANDOMISED = ["lsh", "itq", "ksh", "sdh"]  # SH has no random component


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


def clustered(n: int, rng: np.random.Generator, n_classes: int = 5) -> tuple[np.ndarray, ...]:
    """Class clusters in 8 signal dims hidden among 24 larger-variance noise dims."""
    means = np.random.default_rng(123).standard_normal((n_classes, 8)) * 1.5
    y = np.arange(n) % n_classes
    x = np.hstack([means[y] + rng.standard_normal((n, 8)), 3.0 * rng.standard_normal((n, 24))])
    return x, np.eye(n_classes)[y]


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return {"train": clustered(300, rng), "query": clustered(100, rng), "db": clustered(400, rng)}


def make(name: str, seed: int = 0, bits: int = BITS):
    cls, kwargs = CONFIGS[name]
    return cls(bits, seed=seed, **kwargs)


def test_registry_lists_all_methods() -> None:
    assert set(SINGLE_BASELINES) == set(CONFIGS)
    assert all(SINGLE_BASELINES[n] is CONFIGS[n][0] for n in CONFIGS)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_shapes_and_real_codes(name: str, data) -> None:
    x, labels = data["train"]
    model = make(name)
    assert model.fit(x, labels) is model
    codes = model.encode(data["query"][0])
    assert codes.shape == (100, BITS) and codes.dtype == np.float64
    assert np.all(np.isfinite(codes))
    bits = model.hash(data["query"][0])
    assert bits.dtype == np.int8 and set(np.unique(bits)) <= {-1, 1}
    assert np.array_equal(bits, sign(codes, np.int8))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_deterministic_for_a_seed(name: str, data) -> None:
    x, labels = data["train"]
    a = make(name, seed=3).fit(x, labels).encode(data["query"][0])
    b = make(name, seed=3).fit(x, labels).encode(data["query"][0])
    np.testing.assert_array_equal(a, b)
    if name in RANDOMISED:
        c = make(name, seed=4).fit(x, labels).encode(data["query"][0])
        assert not np.allclose(a, c)


@pytest.mark.parametrize("name", ["lsh", "sh", "itq"])
def test_unsupervised_ignore_labels(name: str, data) -> None:
    x, labels = data["train"]
    a = make(name).fit(x, labels).encode(data["query"][0])
    np.testing.assert_array_equal(a, make(name).fit(x).encode(data["query"][0]))


@pytest.mark.parametrize("name", ["ksh", "sdh"])
def test_supervised_beat_lsh(name: str, data) -> None:
    def score(model) -> float:
        model.fit(*data["train"])
        q, db = model.encode(data["query"][0]), model.encode(data["db"][0])
        return mean_average_precision(q, db, data["query"][1], data["db"][1])

    lsh = max(score(make("lsh", seed=s)) for s in range(3))
    assert lsh < 0.4  # the class signal hides in low-variance dims
    assert score(make(name)) > lsh + 0.3


def test_itq_rotation_lowers_quantisation_loss(data) -> None:
    x = data["train"][0]
    model = ITQ(8).fit(x)
    v = model.encode(x)  # (N, 8) rotated PCA projections
    pca = (x - model.mean_) @ pca_basis(x - model.mean_, 8)
    loss = lambda z: np.sum((np.where(z >= 0, 1.0, -1.0) - z) ** 2)  # noqa: E731
    assert loss(v) < loss(pca)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), np.linalg.norm(pca, axis=1))


def test_sh_picks_lowest_modes_and_allows_more_bits_than_dims() -> None:
    x = np.random.default_rng(0).uniform(0, 1, size=(500, 1))
    model = SH(4).fit(x)
    np.testing.assert_allclose(model.omegas_ / model.omegas_[0], [1, 2, 3, 4])
    assert model.encode(x).shape == (500, 4)


def test_mean_average_precision_helper() -> None:
    labels = np.eye(2)[[0, 0, 1, 1]]
    codes = np.array([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]])
    assert mean_average_precision(codes, codes, labels, labels) == 1.0
    # identical codes everywhere: stable ties keep database order
    flat = np.ones((4, 2))
    assert mean_average_precision(flat[:1], flat, labels[2:3], labels) == pytest.approx(
        (1 / 3 + 2 / 4) / 2
    )


@pytest.mark.parametrize(
    ("build", "args", "match"),
    [
        (lambda: LSH(0), (np.ones((5, 3)),), "num_bits"),
        (lambda: LSH(2.5), (np.ones((5, 3)),), "num_bits"),
        (lambda: LSH(4, seed=0.5), (np.ones((5, 3)),), "seed"),
        (lambda: LSH(4), (np.ones((5, 3)) * 1j,), "complex"),
        (lambda: LSH(4), (np.zeros(10),), "2-D"),
        (lambda: LSH(4), (np.full((5, 3), np.nan),), "NaN"),
        (lambda: ITQ(33), (np.ones((50, 32)),), "num_bits=33 exceeds 32"),
        (lambda: KSH(4), (np.ones((50, 3)),), "labels"),
        (lambda: SDH(4), (np.ones((50, 3)),), "labels"),
        (lambda: SDH(4), (np.ones((50, 3)), np.ones((49, 2))), "labels must be"),
        (lambda: SDH(4), (np.ones((50, 3)), np.ones(50)), "class ids, which must be integers"),
    ],
)
def test_bad_inputs_raise(build, args, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        model = build()
        model.fit(*args)


def test_encode_checks_dims_and_fit_state(data) -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        LSH(4).encode(data["query"][0])
    model = LSH(4).fit(data["train"][0])
    with pytest.raises(ValueError, match="31 features but the model was fit on 32"):
        model.encode(np.ones((3, 31)))
