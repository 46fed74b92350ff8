"""Every baseline follows scikit-learn's estimator conventions."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import check_no_attributes_set_in_init
from sklearn.utils.validation import check_is_fitted

from hashrepro.baselines import CROSSMODAL_BASELINES, SINGLE_BASELINES, CrossModalBaseline

ALL = {**SINGLE_BASELINES, **CROSSMODAL_BASELINES}
SMALL = {"KSH": {"n_anchors": 20, "n_labelled": 40}, "SDH": {"n_anchors": 20}}


def fit(model, rng: np.random.Generator):
    x, y = rng.standard_normal((60, 6)), np.eye(3)[np.arange(60) % 3]
    if isinstance(model, CrossModalBaseline):
        return model.fit(x, rng.standard_normal((60, 5)), y)
    return model.fit(x, y)


@pytest.mark.parametrize("cls", list(ALL.values()), ids=list(ALL))
def test_params_are_stored_once_as_given(cls) -> None:
    model = cls(4, seed=2, **SMALL.get(cls.__name__, {}))
    check_no_attributes_set_in_init(cls.__name__, model)
    params = model.get_params()
    assert set(params) == set(inspect.signature(cls).parameters)
    assert params["num_bits"] == 4 and params["seed"] == 2
    assert vars(model) == params  # nothing else is stored by __init__


@pytest.mark.parametrize("cls", list(ALL.values()), ids=list(ALL))
def test_clone_set_params_and_fitted_state(cls) -> None:
    model = cls(4, **SMALL.get(cls.__name__, {}))
    with pytest.raises(NotFittedError, match="not fitted"):
        check_is_fitted(model)
    before = model.get_params()
    fit(model, np.random.default_rng(0))
    check_is_fitted(model)
    after = model.get_params()
    assert all(after[k] is before[k] for k in before)  # fit changes no hyperparameter
    copy = clone(model)
    assert copy.get_params() == before
    with pytest.raises(NotFittedError):
        check_is_fitted(copy)
    copy.set_params(num_bits=3, seed=5)
    assert (copy.num_bits, copy.seed) == (3, 5) and model.num_bits == 4
    assert repr(copy).startswith(f"{cls.__name__}(") and "num_bits=3" in repr(copy)


def test_refit_with_other_params_after_set_params() -> None:
    model = SINGLE_BASELINES["itq"](4)
    rng = np.random.default_rng(0)
    assert fit(model, rng).encode(np.ones((2, 6))).shape == (2, 4)
    assert fit(model.set_params(num_bits=2), rng).encode(np.ones((2, 6))).shape == (2, 2)
