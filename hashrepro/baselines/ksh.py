"""KSH (Liu, Wang, Ji, Jiang & Chang, CVPR 2012): kernel-based supervised hashing."""

from __future__ import annotations

import numpy as np
from scipy.linalg import eigh
from scipy.optimize import minimize

from hashrepro.baselines.base import HashingBaseline, RBFAnchorFeatures
from hashrepro.baselines.optim import accelerated_descent

__all__ = ["KSH", "KSH_OPTIMIZERS", "KSHSurrogate", "PairResidual"]


def _phi(z: np.ndarray) -> np.ndarray:
    """KSH's smooth sign surrogate 2 / (1 + exp(-z)) - 1 (= tanh(z / 2))."""
    return np.tanh(z / 2)


#: KSH's per-bit refinement optimisers.
KSH_OPTIMIZERS = ("accelerated", "lbfgs")


class KSH(HashingBaseline):
    """Kernel-based Supervised Hashing (Liu, Wang, Ji, Jiang & Chang, CVPR 2012).

    Bit k is ``sign(a_k . k(x))`` with zero-centred RBF features k(x) against ``n_anchors``
    training anchors. On ``n_labelled`` random training points, ``||B B^T - K S||^2`` with
    ``S = 2 [share a label] - 1`` is minimised greedily bit by bit against the residual
    ``R = K S - sum of the earlier bits' b b^T``: each bit starts from the spectral relaxation
    (the top generalised eigenvector of ``K_l^T R K_l`` against ``K_l^T K_l``, scaled so that
    ``||K_l a||^2 = l``), is refined by minimising the smooth surrogate
    ``-phi(K_l a)^T R phi(K_l a)`` and keeps the refinement only when its binary codes score a
    strictly higher ``b^T R b`` than the start's (all as in the authors' code).

    Defaults are the authors' (``KSH_demo.m``, ``OptProjectionFast.m``): 300 anchors, 2,000
    labelled points, ``sigma^2`` = mean squared training-to-anchor distance, and accelerated
    gradient descent with backtracking (:func:`~hashrepro.baselines.optim.accelerated_descent`,
    at most 500 steps, stopping when the objective changes by <= 1e-2 per labelled point).
    Deviations (see ``docs/methods.md``): a 1e-6 relative ridge on ``K_l^T K_l`` for the
    eigenproblem (numerical safety), and ``sign(0) = +1`` (the authors' code maps 0 to -1).

    Args (beyond the base):
        n_anchors: number of RBF anchors m (300).
        n_labelled: size l of the labelled subset used for the pairwise loss (2000, or all).
        sigma: RBF width, or the rule ``"rms"`` (authors') or ``"mean"`` (mean distance; this
            project's earlier default).
        optimizer: ``"accelerated"`` (authors') or ``"lbfgs"`` (scipy's L-BFGS-B; this project's
            earlier default, with ``max_iter=100``).
        max_iter: most refinement steps per bit (500; L-BFGS iterations for ``"lbfgs"``).
        tol: the accelerated optimiser's stopping threshold (1e-2; unused by L-BFGS).

    Attributes:
        refined_: (K,) bool, whether each bit kept its refined projection (the authors' ``flag``).
    """

    supervised = True

    def __init__(
        self,
        num_bits: int,
        seed: int = 0,
        *,
        n_anchors: int = 300,
        n_labelled: int = 2000,
        sigma: float | str = "rms",
        optimizer: str = "accelerated",
        max_iter: int = 500,
        tol: float = 1e-2,
    ) -> None:
        super().__init__(num_bits, seed)
        self.n_anchors = n_anchors
        self.n_labelled = n_labelled
        self.sigma = sigma
        self.optimizer = optimizer
        self.max_iter = max_iter
        self.tol = tol

    def _fit(self, x: np.ndarray, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        if self.optimizer not in KSH_OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {KSH_OPTIMIZERS}, got {self.optimizer!r}")
        self.kernel_ = RBFAnchorFeatures(x, self.n_anchors, rng, self.sigma)
        idx = np.sort(rng.choice(len(x), size=min(self.n_labelled, len(x)), replace=False))
        kl = self.kernel_.train_features[idx]  # (l, m)
        y = labels[idx]  # (l, C)
        resid = PairResidual(y, self.num_bits)  # R_0 = K S
        self.projection_ = np.zeros((kl.shape[1], self.num_bits))  # (m, K)
        self.refined_ = np.zeros(self.num_bits, dtype=bool)  # (K,)
        self._greedy_bits(kl, resid)

    def _greedy_bits(self, kl: np.ndarray, resid: PairResidual) -> None:
        """Learn the K projections one by one, downdating R and K_l^T R K_l in place."""
        m, n_lab = kl.shape[1], kl.shape[0]
        gram = kl.T @ kl  # (m, m)
        ridged = gram + 1e-6 * np.trace(gram) / m * np.eye(m)  # positive definite
        quad = resid.sandwich(kl)  # (m, m) K_l^T R K_l, downdated after each bit
        for k in range(self.num_bits):
            # Spectral relaxation: max a^T K_l^T R K_l a  s.t.  a^T K_l^T K_l a = l.
            _, vec = eigh(quad, ridged, subset_by_index=[m - 1, m - 1])
            a0 = vec[:, 0] * np.sqrt(n_lab / (vec[:, 0] @ gram @ vec[:, 0]))  # (m,)
            a = self._refine(kl, resid, a0)
            b0 = np.where(kl @ a0 >= 0, 1.0, -1.0)  # (l,)
            b = np.where(kl @ a >= 0, 1.0, -1.0)  # (l,)
            self.refined_[k] = b @ (resid @ b) > b0 @ (resid @ b0)
            if not self.refined_[k]:  # the refinement must strictly improve the discrete fit
                a, b = a0, b0
            self.projection_[:, k] = a
            resid.downdate(b)
            kb = kl.T @ b  # (m,)
            quad -= np.outer(kb, kb)

    def _refine(self, kl: np.ndarray, resid: PairResidual, a0: np.ndarray) -> np.ndarray:
        """Minimise ``-phi(K_l a)^T R phi(K_l a)`` from ``a0``."""
        fun = KSHSurrogate(kl, resid)
        if self.optimizer == "lbfgs":
            opts = {"maxiter": self.max_iter}
            return minimize(fun, a0, jac=True, method="L-BFGS-B", options=opts).x
        found = accelerated_descent(
            fun, a0, value=fun.value, max_iter=self.max_iter, tol=self.tol, scale=len(kl)
        )
        return found.x

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return self.kernel_(x) @ self.projection_  # (M, K)


class KSHSurrogate:
    """KSH's smooth per-bit objective ``f(a) = -phi(K_l a)^T R phi(K_l a)``.

    ``phi(z) = 2 / (1 + exp(-z)) - 1``; calling it gives ``(f(a), grad f(a))`` with
    ``grad f(a) = -K_l^T ((R phi) * (1 - phi^2))``, :meth:`value` gives ``f(a)`` alone.

    Args:
        kl: (l, m) kernel features of the labelled points.
        resid: the symmetric (l, l) residual R (anything with ``R @ p``).
    """

    def __init__(self, kl: np.ndarray, resid: PairResidual | np.ndarray) -> None:
        self.kl, self.resid = kl, resid

    def value(self, a: np.ndarray) -> float:
        p = _phi(self.kl @ a)  # (l,)
        return -float(p @ (self.resid @ p))

    def __call__(self, a: np.ndarray) -> tuple[float, np.ndarray]:
        p = _phi(self.kl @ a)  # (l,)
        rp = self.resid @ p  # (l,)
        return -float(p @ rp), -self.kl.T @ (rp * (1 - p**2))  # d phi / dz = (1 - phi^2) / 2


class PairResidual:
    """KSH's residual ``R = K S - sum_t b_t b_t^T`` over l labelled points, with ``R @ p``.

    ``S = 2 [y_i . y_j > 0] - 1``. When no item has more than one label, ``[y_i . y_j > 0]`` is
    ``Y Y^T`` and R is kept as the rank ``C + 1 + t`` product ``U V^T`` with
    ``U = [2K Y, -K 1, -B]``, ``V = [Y, 1, B]``: ``R @ p`` costs O(l (C + t)) instead of O(l^2),
    which makes the 500-step refinement of every bit affordable. Multi-label data keep the dense
    (l, l) matrix. Both give R up to rounding.

    Args:
        labels: (l, C) 0/1 multi-hot labels.
        num_bits: K, the scale of the target ``K S``.
    """

    def __init__(self, labels: np.ndarray, num_bits: int) -> None:
        n = len(labels)
        self.factored = bool(np.all(labels.sum(axis=1) <= 1))
        if self.factored:
            ones = np.ones((n, 1))
            self.left = np.hstack([2.0 * num_bits * labels, -num_bits * ones])  # (l, r)
            self.right = np.hstack([labels, ones])  # (l, r)
        else:
            self.dense = num_bits * (2.0 * (labels @ labels.T > 0) - 1.0)  # (l, l)

    def __matmul__(self, p: np.ndarray) -> np.ndarray:
        """``R p`` for an (l,) vector or (l, q) matrix p."""
        if self.factored:
            return self.left @ (self.right.T @ p)
        return self.dense @ p

    def sandwich(self, k: np.ndarray) -> np.ndarray:
        """``K^T R K`` for an (l, m) matrix K: (m, m)."""
        if self.factored:
            return (k.T @ self.left) @ (self.right.T @ k)
        return k.T @ self.dense @ k

    def downdate(self, b: np.ndarray) -> None:
        """``R -= b b^T`` for one bit's (l,) codes b."""
        if self.factored:
            self.left = np.hstack([self.left, -b[:, None]])
            self.right = np.hstack([self.right, b[:, None]])
        else:
            self.dense -= np.outer(b, b)

    def toarray(self) -> np.ndarray:
        """The dense (l, l) matrix R."""
        return self.left @ self.right.T if self.factored else self.dense.copy()
