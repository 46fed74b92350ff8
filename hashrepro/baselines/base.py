"""Abstract bases, input checks and shared numerics for the classic hashing baselines.

Every baseline works on plain numpy arrays and returns REAL-VALUED codes whose sign is the hash
(the shared evaluation binarises with ``sign``, 0 -> +1). All randomness comes from
``np.random.default_rng(seed)``, so a fit is deterministic for a given seed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.base import BaseEstimator
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from hashrepro.models.common import MODALITIES, sign

#: BLAS threads during ``fit``. The fits are many small and medium dense ops; on a shared 2-core
#: machine multi-threaded OpenBLAS made them 2-7x slower (KSH, SCM-seq worst), one thread never.
FIT_BLAS_THREADS = 1


def check_features(x: Any, name: str = "x", dim: int | None = None) -> np.ndarray:
    """Return ``x`` as a finite float64 (N, D) array, or raise a one-line ValueError.

    Shape and complex values are checked here (scikit-learn's messages for them span lines);
    :func:`sklearn.utils.check_array` then converts and refuses NaN or inf.
    """
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (N, D) array, got shape {arr.shape}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} is complex ({arr.dtype}); features must be real")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has {arr.shape[1]} features but the model was fit on {dim}")
    return check_array(x, dtype=np.float64, input_name=name)


def check_labels(labels: Any, n: int, required: bool) -> np.ndarray | None:
    """Return labels as a float64 (N, C) 0/1 multi-hot array, or raise a one-line ValueError.

    The forms the retrieval metrics take: (N,) integer class ids, an (N, 1) integer column (read
    as class ids too, not as one multi-hot column), or (N, C) multi-hot, where a positive entry
    means "has the label". NaN, inf, negative, complex and non-numeric labels are refused.

    Args:
        labels: the labels, or None.
        n: the number of training rows they must match.
        required: whether None is an error (supervised methods).

    Returns:
        (N, C) float64 of 0/1, or None when ``labels`` is None and not required.
    """
    if labels is None:
        if required:
            raise ValueError(
                "this method is supervised: give labels as (N,) class ids or (N, C) multi-hot"
            )
        return None
    labels = np.asarray(labels)
    if labels.dtype.kind == "c":
        raise ValueError(f"labels are complex ({labels.dtype}); give class ids or multi-hot")
    if labels.dtype.kind not in "biuf":
        raise ValueError(f"labels must be numeric, got dtype {labels.dtype}")
    if labels.ndim not in (1, 2) or labels.shape[0] != n or 0 in labels.shape:
        raise ValueError(
            f"labels must be (N,) class ids or (N, C) multi-hot with N={n}, got shape "
            f"{labels.shape}"
        )
    if labels.ndim == 1 or labels.shape[1] == 1:
        ids = labels.reshape(-1)
        if ids.dtype.kind not in "iu":
            raise ValueError(
                f"labels of shape {labels.shape} are read as class ids, which must be integers, "
                f"got {labels.dtype} (cast with .astype(int), or give (N, C) multi-hot)"
            )
        if ids.min() < 0:
            raise ValueError(f"class ids must be >= 0, got {ids.min()}")
        return np.eye(int(ids.max()) + 1)[ids]  # (N, C) one-hot
    if not np.all(np.isfinite(labels)):
        raise ValueError("multi-hot labels contain NaN or inf")
    if labels.min() < 0:
        raise ValueError(f"multi-hot labels must be >= 0 (0 = no label), got {labels.min()}")
    return (labels > 0).astype(np.float64)


def check_num_bits(num_bits: int, limit: int, why: str) -> None:
    """Raise ValueError when ``num_bits`` exceeds what the method can produce."""
    if num_bits > limit:
        raise ValueError(
            f"num_bits={num_bits} exceeds {limit}, the most this method allows ({why})"
        )


def pca_basis(xc: np.ndarray, k: int) -> np.ndarray:
    """Top-``k`` principal directions of centred data, sign-fixed for reproducibility.

    Args:
        xc: (N, D) centred data.
        k: number of directions, k <= D.

    Returns:
        (D, k) orthonormal basis, ordered by decreasing variance.
    """
    cov = xc.T @ xc / len(xc)  # (D, D)
    _, vecs = np.linalg.eigh(cov)
    basis = vecs[:, ::-1][:, :k]  # (D, k)
    flip = np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(k)])
    return basis * flip


def random_rotation(k: int, rng: np.random.Generator) -> np.ndarray:
    """A random (k, k) orthogonal matrix (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.standard_normal((k, k)))
    return q * np.sign(np.diag(r))


def itq_rotation(v: np.ndarray, n_iter: int, rng: np.random.Generator) -> np.ndarray:
    """Iterative quantisation (Gong & Lazebnik): rotation R minimising ||sign(VR) - VR||_F.

    Args:
        v: (N, K) zero-centred projected data.
        n_iter: number of alternating (B, R) updates.
        rng: generator for the random initial rotation.

    Returns:
        (K, K) orthogonal rotation.
    """
    rot = random_rotation(v.shape[1], rng)  # (K, K)
    for _ in range(n_iter):
        b = np.where(v @ rot >= 0, 1.0, -1.0)  # (N, K)
        u, _, wt = np.linalg.svd(v.T @ b)  # orthogonal Procrustes: max tr(R^T V^T B)
        rot = u @ wt
    return rot


#: Rules for the RBF width from the training-point-to-anchor distances d.
SIGMA_RULES = ("rms", "mean")


class RBFAnchorFeatures:
    """Zero-centred RBF features against anchors: phi(x)_j = exp(-||x - a_j||^2 / (2 sigma^2)).

    Anchors are sampled from the training data. ``sigma`` is a number or a rule on the distances
    d between training points and anchors: ``"rms"`` = ``sqrt(mean d^2)`` (KSH's authors' code:
    ``exp(-d^2 / (2 mean d^2))``; also the rule SDH's code gives for unnormalised data) or
    ``"mean"`` = ``mean d``.
    """

    def __init__(
        self, x: np.ndarray, n_anchors: int, rng: np.random.Generator, sigma: float | str = "rms"
    ) -> None:
        if isinstance(sigma, str) and sigma not in SIGMA_RULES:
            raise ValueError(
                f"sigma must be a positive number or one of {SIGMA_RULES}, got {sigma!r}"
            )
        idx = np.sort(rng.choice(len(x), size=min(n_anchors, len(x)), replace=False))
        self.anchors = x[idx]  # (m, D)
        dist = cdist(x, self.anchors)  # (N, m)
        if sigma == "rms":
            self.sigma = float(np.sqrt(np.mean(dist**2)))
        elif sigma == "mean":
            self.sigma = float(dist.mean())
        else:
            self.sigma = float(sigma)
        if not self.sigma > 0:
            raise ValueError(
                f"RBF sigma must be positive, got {self.sigma} (are all training points identical?)"
            )
        feats = np.exp(-(dist**2) / (2 * self.sigma**2))  # (N, m)
        self.mean = feats.mean(axis=0)  # (m,)
        self.train_features = feats - self.mean  # (N, m)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Map (M, D) inputs to (M, m) centred kernel features."""
        dist2 = cdist(x, self.anchors, "sqeuclidean")  # (M, m)
        return np.exp(-dist2 / (2 * self.sigma**2)) - self.mean


class _Fittable(BaseEstimator):
    """scikit-learn estimator conventions shared by every baseline.

    ``__init__`` only stores its arguments, under their own names (``get_params``, ``set_params``,
    ``clone`` and the ``repr`` come from :class:`~sklearn.base.BaseEstimator`); they are checked
    in ``fit``. Everything ``fit`` learns ends in ``_``, which is what
    :func:`~sklearn.utils.validation.check_is_fitted` looks for. Subclasses with more
    hyperparameters list them as keyword-only ``__init__`` arguments and store each one as is.
    """

    #: whether ``fit`` requires labels.
    supervised: ClassVar[bool] = False

    def __init__(self, num_bits: int, seed: int = 0) -> None:
        self.num_bits = num_bits
        self.seed = seed

    def _check_params(self) -> None:
        """Raise a one-line ValueError for an invalid bit count or seed (called by ``fit``)."""
        bits = self.num_bits
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits < 1:
            raise ValueError(f"num_bits must be a positive int, got {bits!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"seed must be an int, got {self.seed!r}")

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(int(self.seed))


class HashingBaseline(_Fittable, ABC):
    """Single-modal baseline: ``fit(x, labels)`` then ``encode(x) -> (M, K)`` real codes."""

    def fit(self, x: np.ndarray, labels: np.ndarray | None = None) -> HashingBaseline:
        """Learn the hash functions.

        Args:
            x: (N, D) training features.
            labels: (N,) integer class ids, an (N, 1) column of them, or (N, C) multi-hot
                (see :func:`check_labels`); required for supervised methods, else checked and
                ignored.

        Returns:
            self.
        """
        self._check_params()
        x = check_features(x, "x")
        labels = check_labels(labels, len(x), self.supervised)
        with threadpool_limits(limits=FIT_BLAS_THREADS, user_api="blas"):
            self._fit(x, labels if self.supervised else None, self._rng())
        self.n_features_in_ = x.shape[1]
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Real-valued codes (M, K); ``sign`` gives the hash bits."""
        check_is_fitted(self)
        return self._encode(check_features(x, "x", self.n_features_in_))

    def hash(self, x: np.ndarray) -> np.ndarray:
        """Binary codes (M, K) in {-1, +1} (int8), 0 -> +1."""
        return sign(self.encode(x), np.int8)

    @abstractmethod
    def _fit(self, x: np.ndarray, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        """Method-specific training on validated inputs."""

    @abstractmethod
    def _encode(self, x: np.ndarray) -> np.ndarray:
        """Method-specific encoding of validated (M, D) inputs."""


class CrossModalBaseline(_Fittable, ABC):
    """Cross-modal baseline: ``fit(x_image, x_text, labels)``, ``encode(x, modality)``."""

    def fit(
        self, x_image: np.ndarray, x_text: np.ndarray, labels: np.ndarray | None = None
    ) -> CrossModalBaseline:
        """Learn one hash function per modality from paired training data.

        Args:
            x_image: (N, Di) image-view features.
            x_text: (N, Dt) text-view features, row i paired with ``x_image[i]``.
            labels: (N,) integer class ids, an (N, 1) column of them, or (N, C) multi-hot
                (see :func:`check_labels`); required for supervised methods, else checked and
                ignored.

        Returns:
            self.
        """
        self._check_params()
        x_image = check_features(x_image, "x_image")
        x_text = check_features(x_text, "x_text")
        if len(x_image) != len(x_text):
            raise ValueError(f"x_image has {len(x_image)} rows but x_text has {len(x_text)}")
        labels = check_labels(labels, len(x_image), self.supervised)
        with threadpool_limits(limits=FIT_BLAS_THREADS, user_api="blas"):
            self._fit(x_image, x_text, labels if self.supervised else None, self._rng())
        self.input_dims_ = {"image": x_image.shape[1], "text": x_text.shape[1]}
        return self

    def encode(self, x: np.ndarray, modality: str) -> np.ndarray:
        """Real-valued codes (M, K) for inputs of one modality ("image" or "text")."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        check_is_fitted(self)
        return self._encode(
            check_features(x, f"x ({modality})", self.input_dims_[modality]), modality
        )

    def hash(self, x: np.ndarray, modality: str) -> np.ndarray:
        """Binary codes (M, K) in {-1, +1} (int8), 0 -> +1."""
        return sign(self.encode(x, modality), np.int8)

    @abstractmethod
    def _fit(
        self,
        x_image: np.ndarray,
        x_text: np.ndarray,
        labels: np.ndarray | None,
        rng: np.random.Generator,
    ) -> None:
        """Method-specific training on validated inputs."""

    @abstractmethod
    def _encode(self, x: np.ndarray, modality: str) -> np.ndarray:
        """Method-specific encoding of validated (M, D) inputs."""
