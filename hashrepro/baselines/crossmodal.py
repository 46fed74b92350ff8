"""Cross-modal classic hashing baselines: CCA-ITQ, CVH, CMFH (unsupervised) and SCM-seq.

All methods centre each modality with its training mean; codes are linear projections
``(x - mean_m) @ W_m`` of either modality into one shared K-bit space.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import eigh

from hashrepro.baselines.base import CrossModalBaseline, check_num_bits, itq_rotation

#: How a ridge is added to a covariance: ``reg * I`` or ``reg`` times the mean variance.
REG_SCALES = ("absolute", "relative")


def ridge_cov(xc: np.ndarray, reg: float, scale: str = "relative") -> np.ndarray:
    """Covariance (D, D) of centred (N, D) data plus a ridge on the diagonal.

    Args:
        xc: (N, D) centred data.
        reg: ridge weight.
        scale: ``"absolute"`` adds ``reg * I``; ``"relative"`` adds ``reg`` times the mean
            variance ``trace(cov) / D``.
    """
    if scale not in REG_SCALES:
        raise ValueError(f"reg_scale must be one of {REG_SCALES}, got {scale!r}")
    cov = xc.T @ xc / len(xc)  # (D, D)
    if scale == "absolute":
        return cov + reg * np.eye(len(cov))
    return cov + reg * np.trace(cov) / len(cov) * np.eye(len(cov))


def inv_sqrt(cov: np.ndarray) -> np.ndarray:
    """Inverse square root of a symmetric positive definite matrix."""
    vals, vecs = np.linalg.eigh(cov)
    return (vecs / np.sqrt(vals)) @ vecs.T


class _LinearCrossModal(CrossModalBaseline):
    """Shared storage: per-modality training means and (D_m, K) projections."""

    def _center(self, x_image: np.ndarray, x_text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.means_ = {"image": x_image.mean(axis=0), "text": x_text.mean(axis=0)}
        return x_image - self.means_["image"], x_text - self.means_["text"]

    def _encode(self, x: np.ndarray, modality: str) -> np.ndarray:
        return (x - self.means_[modality]) @ self.projections_[modality]  # (M, K)


class CCAITQ(_LinearCrossModal):
    """CCA-ITQ for cross-modal retrieval (Gong, Lazebnik, Gordo & Perronnin, TPAMI 2013).

    Regularised CCA gives the top-K canonical directions of each modality, via the SVD of the
    whitened cross-covariance; projections are scaled by ``corr ** corr_power``. One ITQ
    rotation (``n_iter`` iterations) is then learned on the image and text projections stacked
    together and shared by both modalities.

    Defaults follow Gong's code (``cca.m``): projections scaled by the canonical correlations
    (``corr_power = 1``), ITQ with 50 iterations, and a ridge on both covariances that the code
    says is "usually set by validation" (its 0.0001, on its features, is an absolute value). On
    the Multiple Features validation split (16-64 bits, seeds 0-2) the validation mAP rose with
    the ridge up to 10 times the mean variance and fell beyond (100, 1000), so ``reg = 10``,
    ``reg_scale = "relative"``; Gong's absolute 1e-4 scores far lower here (the text covariance
    is singular; see ``docs/methods.md``). The covariance is normalised by N (Gong: N - 1).
    This project's earlier default (``reg=1.0, corr_power=4``, the power Gong et al. use for
    their multi-view embeddings) stays an option.

    Args (beyond the base):
        reg: ridge on both covariances (10).
        reg_scale: ``"relative"`` (times the mean variance) or ``"absolute"`` (``reg * I``, as
            Gong's code).
        corr_power: exponent of the canonical-correlation scaling (1; 0 = none).
        n_iter: ITQ iterations (50).
    """

    def __init__(
        self,
        num_bits: int,
        seed: int = 0,
        *,
        reg: float = 10.0,
        reg_scale: str = "relative",
        corr_power: float = 1.0,
        n_iter: int = 50,
    ) -> None:
        super().__init__(num_bits, seed)
        self.reg = reg
        self.reg_scale = reg_scale
        self.corr_power = corr_power
        self.n_iter = n_iter

    def _fit(
        self,
        x_image: np.ndarray,
        x_text: np.ndarray,
        labels: np.ndarray | None,
        rng: np.random.Generator,
    ) -> None:
        limit = min(x_image.shape[1], x_text.shape[1], len(x_image))
        check_num_bits(self.num_bits, limit, "CCA gives at most min(Di, Dt, N) directions")
        xc, yc = self._center(x_image, x_text)
        cxx = ridge_cov(xc, self.reg, self.reg_scale)
        wx, wy = inv_sqrt(cxx), inv_sqrt(ridge_cov(yc, self.reg, self.reg_scale))
        u, corr, vt = np.linalg.svd(wx @ (xc.T @ yc / len(xc)) @ wy)
        scale = corr[: self.num_bits] ** self.corr_power  # (K,)
        proj_x = wx @ u[:, : self.num_bits] * scale  # (Di, K)
        proj_y = wy @ vt[: self.num_bits].T * scale  # (Dt, K)
        rot = itq_rotation(np.vstack([xc @ proj_x, yc @ proj_y]), self.n_iter, rng)  # (K, K)
        self.projections_ = {"image": proj_x @ rot, "text": proj_y @ rot}


class CVH(_LinearCrossModal):
    """Cross-View Hashing (Kumar & Udupa, IJCAI 2011), for two views with paired data only.

    CVH minimises ``sum_ij W_ij d(y_i, y_j)`` over all view pairs, relaxed to a generalised
    eigenproblem. With the similarity W = I (only an item's own two views are similar, no labels)
    and two views this is: minimise ``sum_i ||A_x^T x_i - A_y^T y_i||^2`` subject to
    ``A_x^T C_xx A_x + A_y^T C_yy A_y = I``, i.e. the K smallest eigenpairs of

        [[C_xx, -C_xy], [-C_yx, C_yy]] a = lambda [[C_xx, 0], [0, C_yy]] a,

    with ``C_mm`` ridge-regularised. This special case is CCA-like (lambda = 1 - canonical
    correlation); unlike CCA-ITQ there is no rotation.

    The paper has no ridge and the authors published no code. A ridge is needed here (the
    Multiple Features text covariance is singular); ``reg = 1`` times the mean variance was
    picked on a Multiple Features validation split (see ``docs/methods.md`` for a small one).

    Args (beyond the base):
        reg: ridge on both covariances (1.0).
        reg_scale: ``"relative"`` (times the mean variance) or ``"absolute"`` (``reg * I``).
    """

    def __init__(
        self, num_bits: int, seed: int = 0, *, reg: float = 1.0, reg_scale: str = "relative"
    ) -> None:
        super().__init__(num_bits, seed)
        self.reg = reg
        self.reg_scale = reg_scale

    def _fit(
        self,
        x_image: np.ndarray,
        x_text: np.ndarray,
        labels: np.ndarray | None,
        rng: np.random.Generator,
    ) -> None:
        di, dt = x_image.shape[1], x_text.shape[1]
        check_num_bits(self.num_bits, min(di, dt, len(x_image)), "needs <= min(Di, Dt, N)")
        xc, yc = self._center(x_image, x_text)
        cxx, cyy = ridge_cov(xc, self.reg, self.reg_scale), ridge_cov(yc, self.reg, self.reg_scale)
        cxy = xc.T @ yc / len(xc)  # (Di, Dt)
        rhs = np.zeros((di + dt, di + dt))
        rhs[:di, :di], rhs[di:, di:] = cxx, cyy
        lhs = rhs.copy()
        lhs[:di, di:], lhs[di:, :di] = -cxy, -cxy.T
        _, vecs = eigh(lhs, rhs, subset_by_index=[0, self.num_bits - 1])  # (Di + Dt, K)
        self.projections_ = {"image": vecs[:di], "text": vecs[di:]}


class SCMSeq(_LinearCrossModal):
    """Semantic Correlation Maximization, sequential variant (Zhang & Li, AAAI 2014).

    Target similarity ``S = 2 L~ L~^T - 1`` with row-normalised labels L~ (cosine similarity, in
    [-1, 1]); the paper's trick keeps every product D_x x D_t and never forms the N x N S:
    ``X^T S Y = 2 (X^T L~)(L~^T Y) - (X^T 1)(1^T Y)``. Bit t maximises ``w_x^T C_t w_y`` subject to
    ``w_m^T (C_mm + ridge) w_m = 1`` (top singular pair of the whitened C_t), where
    ``C_1 = K X^T S Y`` and ``C_{t+1} = C_t - (X^T b_x)(Y^T b_y)^T`` removes what bit t's binary
    training codes already explain of ``||B_x B_y^T - K S||^2``.

    Default: the authors' public code (``trainSCM_seq.m``), whose ridge is ``1e-6 I`` added to
    ``X^T X``. Its fallback to plain CCA directions for the remaining bits when a bit's
    correlation rises above the previous one ("rarely happens", says the code) is not
    implemented; ``singular_values_`` records each bit's correlation so that it can be checked.

    Args (beyond the base):
        reg: ridge weight (1e-6).
        reg_scale: ``"absolute"``: ``reg * I`` added to ``X^T X`` (authors'); ``"relative"``:
            ``reg`` times the mean variance added to the covariance (as CCA-ITQ and CVH here;
            ``reg=1e-2`` was this project's earlier default and scored higher).

    Attributes:
        singular_values_: (K,) the top singular value of each bit's whitened ``C_t``.
    """

    supervised = True

    def __init__(
        self, num_bits: int, seed: int = 0, *, reg: float = 1e-6, reg_scale: str = "absolute"
    ) -> None:
        super().__init__(num_bits, seed)
        self.reg = reg
        self.reg_scale = reg_scale

    def _whitening(self, xc: np.ndarray) -> np.ndarray:
        """Inverse square root of the ridged covariance of centred (N, D) data."""
        if self.reg_scale == "relative":
            return inv_sqrt(ridge_cov(xc, self.reg))
        return inv_sqrt(xc.T @ xc + self.reg * np.eye(xc.shape[1]))

    def _fit(
        self,
        x_image: np.ndarray,
        x_text: np.ndarray,
        labels: np.ndarray | None,
        rng: np.random.Generator,
    ) -> None:
        if self.reg_scale not in REG_SCALES:
            raise ValueError(f"reg_scale must be one of {REG_SCALES}, got {self.reg_scale!r}")
        xc, yc = self._center(x_image, x_text)
        norms = np.linalg.norm(labels, axis=1, keepdims=True)
        lt = labels / np.where(norms > 0, norms, 1.0)  # (N, C)
        wx, wy = self._whitening(xc), self._whitening(yc)
        corr = 2 * (xc.T @ lt) @ (lt.T @ yc) - np.outer(xc.sum(axis=0), yc.sum(axis=0))
        corr *= self.num_bits  # (Di, Dt) C_1 = K X^T S Y
        proj_x = np.zeros((xc.shape[1], self.num_bits))  # (Di, K)
        proj_y = np.zeros((yc.shape[1], self.num_bits))  # (Dt, K)
        self.singular_values_ = np.zeros(self.num_bits)  # (K,)
        for t in range(self.num_bits):
            u, sv, vt = np.linalg.svd(wx @ corr @ wy)
            self.singular_values_[t] = sv[0]
            proj_x[:, t], proj_y[:, t] = wx @ u[:, 0], wy @ vt[0]
            bx = np.where(xc @ proj_x[:, t] >= 0, 1.0, -1.0)  # (N,)
            by = np.where(yc @ proj_y[:, t] >= 0, 1.0, -1.0)  # (N,)
            corr -= np.outer(xc.T @ bx, yc.T @ by)
        self.projections_ = {"image": proj_x, "text": proj_y}


class CMFH(_LinearCrossModal):
    """Collective Matrix Factorization Hashing (Ding, Guo & Zhou, CVPR 2014).

    With rows as samples, minimises over the unified latent codes V (N, K)

        lam ||X - V U_x||^2 + (1 - lam) ||Y - V U_y||^2
        + mu (||V - X P_x||^2 + ||V - Y P_y||^2) + gamma (||U_x||^2 + ||U_y||^2 + ||P_x||^2
        + ||P_y||^2 + ||V||^2)

    by alternating the closed-form ridge updates of U_x, U_y, P_x, P_y and V (V initialised
    Gaussian), until the objective the authors' code monitors (the same terms as Frobenius
    norms, not squared) falls by less than ``tol`` in a round, or ``n_iter`` rounds. Codes of
    either modality are ``(x - mean) @ P_m``.

    Defaults are the paper's and its code's (``lam = 0.5``, ``mu = 100``, ``gamma = 0.01``,
    stop at a fall below 0.01). The updates are the exact minimisers of the objective above;
    the authors' ``solveCMFH.m`` uses ``gamma`` where these use ``gamma / lam``,
    ``gamma / (1 - lam)`` and ``gamma / mu``, and starts from uniform noise. Their loop has no
    cap; ours stops after ``n_iter`` rounds (with ``mu = 100`` on Multiple Features the rule
    had not fired after 1,000). ``mu = 1``, this project's earlier default, converges faster
    and scored higher on Multiple Features (see ``docs/methods.md``).

    Args (beyond the base):
        lam: weight of the image reconstruction (text gets 1 - lam) (0.5).
        mu: weight of the modality-to-latent projection terms (100).
        gamma: ridge weight (0.01).
        n_iter: most alternating rounds (1000).
        tol: stop when the monitored objective falls by less than this in a round (0.01;
            0 runs all ``n_iter`` rounds).

    Attributes:
        n_iter_: rounds run.
    """

    def __init__(
        self,
        num_bits: int,
        seed: int = 0,
        *,
        lam: float = 0.5,
        mu: float = 100.0,
        gamma: float = 1e-2,
        n_iter: int = 1000,
        tol: float = 1e-2,
    ) -> None:
        super().__init__(num_bits, seed)
        self.lam = lam
        self.mu = mu
        self.gamma = gamma
        self.n_iter = n_iter
        self.tol = tol

    def _fit(
        self,
        x_image: np.ndarray,
        x_text: np.ndarray,
        labels: np.ndarray | None,
        rng: np.random.Generator,
    ) -> None:
        if not 0 < self.lam < 1:
            raise ValueError(f"lam must be in (0, 1), got {self.lam}")
        xc, yc = self._center(x_image, x_text)
        k, eye = self.num_bits, np.eye(self.num_bits)
        # P_m = (X^T X + gamma / mu I)^-1 X^T V for any V: precompute both (D_m, N) solves.
        solve_x = np.linalg.solve(xc.T @ xc + self.gamma / self.mu * np.eye(xc.shape[1]), xc.T)
        solve_y = np.linalg.solve(yc.T @ yc + self.gamma / self.mu * np.eye(yc.shape[1]), yc.T)
        v = rng.standard_normal((len(xc), k))  # (N, K)
        self.n_iter_, last = 0, np.inf
        for _ in range(self.n_iter):
            vtv = v.T @ v  # (K, K)
            u_x = np.linalg.solve(vtv + self.gamma / self.lam * eye, v.T @ xc)  # (K, Di)
            u_y = np.linalg.solve(vtv + self.gamma / (1 - self.lam) * eye, v.T @ yc)  # (K, Dt)
            p_x, p_y = solve_x @ v, solve_y @ v  # (Di, K), (Dt, K)
            lhs = self.lam * u_x @ u_x.T + (1 - self.lam) * u_y @ u_y.T
            lhs += (2 * self.mu + self.gamma) * eye  # (K, K)
            rhs = self.lam * xc @ u_x.T + (1 - self.lam) * yc @ u_y.T
            rhs += self.mu * (xc @ p_x + yc @ p_y)  # (N, K)
            v = np.linalg.solve(lhs, rhs.T).T  # lhs is symmetric
            self.n_iter_ += 1
            p_x, p_y = solve_x @ v, solve_y @ v  # the P-step after V, as the authors' loop
            cost = self._code_objective(xc, yc, u_x, u_y, p_x, p_y, v)
            if last - cost < self.tol:
                break
            last = cost
        self.projections_ = {"image": solve_x @ v, "text": solve_y @ v}

    def _code_objective(self, xc: np.ndarray, yc: np.ndarray, *factors: np.ndarray) -> float:
        """The objective ``solveCMFH.m`` monitors: the terms' Frobenius norms, not squared.

        ``factors`` are ``U_x, U_y, P_x, P_y, V`` (``U_m``: (K, D_m), ``P_m``: (D_m, K)).
        """
        u_x, u_y, p_x, p_y, v = factors
        fro = np.linalg.norm
        return float(
            self.lam * fro(xc - v @ u_x)
            + (1 - self.lam) * fro(yc - v @ u_y)
            + self.mu * (fro(v - xc @ p_x) + fro(v - yc @ p_y))
            + self.gamma * (fro(u_x) + fro(u_y) + fro(v) + fro(p_x) + fro(p_y))
        )
