"""Single-modal classic hashing baselines: LSH, SH, ITQ (unsupervised), SDH (supervised).

KSH lives in :mod:`hashrepro.baselines.ksh`.
"""

from __future__ import annotations

import numpy as np

from hashrepro.baselines.base import (
    HashingBaseline,
    RBFAnchorFeatures,
    check_num_bits,
    itq_rotation,
    pca_basis,
)


class LSH(HashingBaseline):
    """Locality-sensitive hashing by random hyperplanes (Charikar 2002).

    Codes are ``(x - mean) @ W`` with W i.i.d. standard Gaussian (D, K); centring on the training
    mean makes the bits roughly balanced.
    """

    def _fit(self, x: np.ndarray, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        self.mean_ = x.mean(axis=0)  # (D,)
        self.projection_ = rng.standard_normal((x.shape[1], self.num_bits))  # (D, K)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) @ self.projection_  # (M, K)


class SH(HashingBaseline):
    """Spectral Hashing (Weiss, Torralba & Fergus, NIPS 2008).

    PCA to ``min(K, D)`` directions, a uniform distribution fitted to each direction's training
    range [lo, hi], and the K one-dimensional eigenfunctions ``cos(k pi (p - lo) / (hi - lo))``
    (k >= 1) with the smallest eigenvalues, i.e. smallest ``(k / (hi - lo))^2``: the standard mode
    selection of the paper's code, which never picks products of modes. Needs no labels.
    """

    def _fit(self, x: np.ndarray, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        self.mean_ = x.mean(axis=0)  # (D,)
        xc = x - self.mean_
        self.basis_ = pca_basis(xc, min(self.num_bits, x.shape[1]))  # (D, P)
        proj = xc @ self.basis_  # (N, P)
        eps = np.finfo(np.float64).eps
        self.low_ = proj.min(axis=0) - eps  # (P,)
        ranges = proj.max(axis=0) + eps - self.low_  # (P,)
        # Candidate modes k = 1..max_k per direction; enough so the K best are always among them.
        max_k = np.ceil((self.num_bits + 1) * ranges / ranges.max()).astype(int)
        dims = np.concatenate([np.full(m, i) for i, m in enumerate(max_k)])  # (n_cand,)
        ks = np.concatenate([np.arange(1, m + 1) for m in max_k])  # (n_cand,)
        omegas = ks * np.pi / ranges[dims]  # (n_cand,) eigenvalue grows with omega^2
        keep = np.argsort(omegas, kind="stable")[: self.num_bits]
        self.mode_dims_, self.omegas_ = dims[keep], omegas[keep]  # (K,), (K,)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        proj = (x - self.mean_) @ self.basis_  # (M, P)
        shifted = proj[:, self.mode_dims_] - self.low_[self.mode_dims_]  # (M, K)
        return np.sin(np.pi / 2 + self.omegas_ * shifted)  # (M, K)


class ITQ(HashingBaseline):
    """PCA-ITQ (Gong & Lazebnik, CVPR 2011): PCA to K dims, then ``n_iter`` Procrustes rotations.

    Args (beyond the base):
        n_iter: alternating quantisation/rotation updates (50 as in the paper).
    """

    def __init__(self, num_bits: int, seed: int = 0, *, n_iter: int = 50) -> None:
        super().__init__(num_bits, seed)
        self.n_iter = n_iter

    def _fit(self, x: np.ndarray, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        check_num_bits(self.num_bits, min(x.shape), "PCA to num_bits dims needs <= min(N, D)")
        self.mean_ = x.mean(axis=0)  # (D,)
        xc = x - self.mean_
        basis = pca_basis(xc, self.num_bits)  # (D, K)
        rot = itq_rotation(xc @ basis, self.n_iter, rng)  # (K, K)
        self.projection_ = basis @ rot  # (D, K)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) @ self.projection_  # (M, K)


class SDH(HashingBaseline):
    """Supervised Discrete Hashing (Shen, Shen, Liu & Shen, CVPR 2015).

    Minimises ``||Y - B W||^2 + lam ||W||^2 + nu ||B - phi(X) P||^2`` over B in {-1, 1}^(N, K):
    W by ridge regression (G-step), P by ridge regression of B on the RBF anchor features phi
    (F-step) and B by discrete cyclic coordinate descent, one bit column at a time (B-step).
    B starts as the sign of a Gaussian matrix; a final F-step fits P to the last B.
    Out-of-sample codes are ``phi(x) P``.

    Defaults are the authors' (``SDH.m`` and its demo): 1,000 anchors, ``lam = 1``,
    ``nu = 1e-5``, F-step ridge 1e-2, 5 outer iterations, each B-step restarting from B = 0
    and sweeping all bits up to 10 times (stopping early when a sweep changes no bit), RBF
    features with a constant column appended. The demo fixes ``sigma = 0.4`` "for normalized
    data"; on raw features we use the rule its code offers as the alternative (commented out
    there), ``sigma = sqrt(mean squared training-to-anchor distance)``. The better-scoring
    settings of this project's earlier default are options (see ``docs/methods.md``).

    Args (beyond the base):
        n_anchors: number of RBF anchors (1000, or N if fewer).
        sigma: RBF width, or the rule ``"rms"`` (above) or ``"mean"`` (mean distance).
        lam: ridge weight of the label regression W (1).
        nu: weight of the hash-function fitting term (1e-5).
        proj_ridge: ridge weight of the F-step regression for P (authors' 1e-2; 1e-4 scored
            higher here).
        n_outer: outer (G, F, B) iterations (5).
        n_dcc: most coordinate-descent sweeps over all bits per B-step (10).
        dcc_warm_start: start each B-step from the current B instead of from 0 (authors').
        bias_column: append a constant feature to the uncentred RBF features (authors'); False
            centres the features on their training mean instead.
    """

    supervised = True

    def __init__(
        self,
        num_bits: int,
        seed: int = 0,
        *,
        n_anchors: int = 1000,
        sigma: float | str = "rms",
        lam: float = 1.0,
        nu: float = 1e-5,
        proj_ridge: float = 1e-2,
        n_outer: int = 5,
        n_dcc: int = 10,
        dcc_warm_start: bool = False,
        bias_column: bool = True,
    ) -> None:
        super().__init__(num_bits, seed)
        self.n_anchors = n_anchors
        self.sigma = sigma
        self.lam = lam
        self.nu = nu
        self.proj_ridge = proj_ridge
        self.n_outer = n_outer
        self.n_dcc = n_dcc
        self.dcc_warm_start = dcc_warm_start
        self.bias_column = bias_column

    def _design(self, centred: np.ndarray) -> np.ndarray:
        """The F-step's inputs from (N, m) centred kernel features: (N, m + 1) or (N, m)."""
        if not self.bias_column:
            return centred
        return np.hstack([centred + self.kernel_.mean, np.ones((len(centred), 1))])

    def _fit(self, x: np.ndarray, labels: np.ndarray | None, rng: np.random.Generator) -> None:
        self.kernel_ = RBFAnchorFeatures(x, self.n_anchors, rng, self.sigma)
        phi = self._design(self.kernel_.train_features)  # (N, m')
        m, k = phi.shape[1], self.num_bits
        # P = (phi^T phi + ridge I)^-1 phi^T B for any B: precompute the (m', N) solve once.
        reg_phi = np.linalg.solve(phi.T @ phi + self.proj_ridge * np.eye(m), phi.T)  # (m', N)
        b = np.where(rng.standard_normal((len(x), k)) >= 0, 1.0, -1.0)  # (N, K)
        for _ in range(self.n_outer):
            w = np.linalg.solve(b.T @ b + self.lam * np.eye(k), b.T @ labels)  # (K, C) G-step
            proj = reg_phi @ b  # (m', K) F-step
            q = labels @ w.T + self.nu * (phi @ proj)  # (N, K)
            start = b if self.dcc_warm_start else np.zeros_like(b)
            b = discrete_ccd(start, q, w, self.n_dcc)
        self.projection_ = reg_phi @ b  # (m', K)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return self._design(self.kernel_(x)) @ self.projection_  # (M, K)


def discrete_ccd(b: np.ndarray, q: np.ndarray, w: np.ndarray, n_sweeps: int) -> np.ndarray:
    """SDH B-step: min ||B W||^2 - 2 tr(B^T Q) over B in {-1, 1}, one column at a time.

    With the other columns fixed, column k's optimum is ``sign(q_k - B' W' w_k)`` where ' drops
    bit k; a zero argument keeps the previous entry (so a start of 0 stays 0 there, as MATLAB's
    ``sign``). Stops after ``n_sweeps`` passes or at the first pass that changes nothing.

    Args:
        b: (N, K) start: current codes, or zeros (copied, not modified).
        q: (N, K) linear term ``Y W^T + nu F(X)``.
        w: (K, C) label regression matrix.
        n_sweeps: most passes over all K columns.
    """
    b = b.copy()
    ww = w @ w.T  # (K, K)
    for _ in range(n_sweeps):
        before = b.copy()
        for k in range(b.shape[1]):
            z = q[:, k] - b @ ww[:, k] + b[:, k] * ww[k, k]  # (N,)
            b[:, k] = np.where(z > 0, 1.0, np.where(z < 0, -1.0, b[:, k]))
        if np.array_equal(b, before):
            break
    return b
