"""The baselines take the label forms the retrieval metrics take, and refuse bad ones."""

from __future__ import annotations

import numpy as np
import pytest

from hashrepro.baselines import KSH, LSH, SDH, SCMSeq
from hashrepro.baselines.base import check_labels

IDS = np.array([0, 2, 1, 2, 0, 1] * 10)  # 60 items, 3 classes


def test_forms_give_the_same_multi_hot() -> None:
    one_hot = np.eye(3)[IDS]
    for form in (IDS, IDS[:, None], IDS.astype(np.uint8), one_hot, one_hot.astype(bool)):
        np.testing.assert_array_equal(check_labels(form, 60, True), one_hot)
    # an (N, 1) column is class ids: class 0 keeps its label (not "no label")
    assert check_labels(IDS[:, None], 60, True)[0].tolist() == [1, 0, 0]
    # multi-hot: positive means "has the label"
    np.testing.assert_array_equal(check_labels(one_hot * 3, 60, True), one_hot)


@pytest.mark.parametrize(
    "codes",
    [
        lambda x, y: KSH(6, n_anchors=20, n_labelled=40).fit(x, y).encode(x),
        lambda x, y: SDH(6, n_anchors=20).fit(x, y).encode(x),
        lambda x, y: SCMSeq(4).fit(x, x[:, ::-1] ** 2, y).encode(x, "image"),
    ],
    ids=["ksh", "sdh", "scm_seq"],
)
def test_supervised_fits_agree_across_forms(codes) -> None:
    x = np.random.default_rng(0).standard_normal((60, 5)) + IDS[:, None]
    ref = codes(x, np.eye(3)[IDS])
    for labels in (IDS, IDS[:, None]):
        np.testing.assert_array_equal(codes(x, labels), ref)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.where(IDS == 1, np.nan, 1.0)[:, None].repeat(2, 1), "NaN"),
        (np.full((60, 3), np.inf), "NaN or inf"),
        (-np.eye(3)[IDS], "must be >= 0"),
        (IDS - 1, "class ids must be >= 0, got -1"),
        (np.eye(3)[IDS] * 1j, "complex"),
        (IDS.astype(float), "must be integers, got float64"),
        (IDS[:, None].astype(float), "must be integers"),
        (IDS.astype(str), "numeric"),
        (IDS[:50], "N=60"),
        (np.zeros((60, 0)), "got shape"),
        (np.zeros((60, 2, 2)), "got shape"),
        (None, "supervised"),
    ],
)
def test_bad_labels_raise_one_line(labels, match: str) -> None:
    x = np.random.default_rng(0).standard_normal((60, 5))
    with pytest.raises(ValueError, match=match) as err:
        SDH(4, n_anchors=20).fit(x, labels)
    assert "\n" not in str(err.value)


def test_unsupervised_check_labels_they_are_given() -> None:
    x = np.random.default_rng(0).standard_normal((60, 5))
    LSH(4).fit(x, IDS)
    with pytest.raises(ValueError, match="class ids must be >= 0"):
        LSH(4).fit(x, IDS - 1)
