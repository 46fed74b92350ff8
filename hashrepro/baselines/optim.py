"""Accelerated gradient descent with backtracking: the optimiser of KSH's authors.

KSH (Liu et al., CVPR 2012) refines each bit's projection with Nesterov-style accelerated
gradient descent whose step size is found by backtracking; its authors' MATLAB code
(``OptProjectionFast.m``) fixes the schedule, the line search and the stopping rule. This module
implements that scheme from its description, for any smooth objective.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: ``fun(x) -> (f(x), grad f(x))``.
Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


@dataclass
class DescentResult:
    """What :func:`accelerated_descent` found.

    Attributes:
        x: the last accepted iterate.
        costs: (T + 1,) objective at the start point and after each of the T accepted steps.
        lipschitz: (T,) the curvature estimate L of each accepted step (its step is 1 / L).
        stop: why it stopped: ``"tol"`` (the stopping rule), ``"line_search"`` (no step size was
            accepted) or ``"max_iter"``.
    """

    x: np.ndarray
    costs: np.ndarray
    lipschitz: np.ndarray
    stop: str


def accelerated_descent(
    fun: Objective,
    x0: np.ndarray,
    *,
    value: Callable[[np.ndarray], float] | None = None,
    max_iter: int = 500,
    tol: float = 1e-2,
    scale: float = 1.0,
    lipschitz: float = 1.0,
    max_backtracks: int = 50,
) -> DescentResult:
    """Minimise ``fun`` from ``x0`` by accelerated gradient descent with backtracking.

    With ``x_0 = x_1 = x0`` and the momentum sequence ``d_0 = 0, d_1 = 1,
    d_{t+1} = (1 + sqrt(1 + 4 d_t^2)) / 2``, step t (t = 1, 2, ...):

    1. probe point ``v = x_t + (d_{t-1} - 1) / d_t * (x_t - x_{t-1})``;
    2. for ``L = L_{t-1} * 2^j``, j = 0 .. ``max_backtracks``, take ``z = v - grad f(v) / L`` and
       accept the first z with ``f(z) <= f(v) + grad f(v).(z - v) + L / 2 ||z - v||^2``
       (``L_t = L``; the estimate never shrinks); if none is accepted, stop at ``x_t``;
    3. ``x_{t+1} = z``; stop when ``|f(x_{t+1}) - f(x_t)| / scale <= tol``.

    These are the rules of KSH's ``OptProjectionFast`` (``L_0 = 1``, 50 doublings, ``tol = 1e-2``
    with ``scale`` = the number of labelled points, at most 500 steps).

    Args:
        fun: objective returning ``(value, gradient)``.
        x0: start point.
        value: the objective's value alone, for the line-search trials (saves the gradients
            that would be thrown away); defaults to ``fun(x)[0]``.
        max_iter: most steps.
        tol: stopping threshold on the scaled change of the objective.
        scale: divisor of that change.
        lipschitz: initial curvature estimate ``L_0``.
        max_backtracks: most doublings of L per step.

    Returns:
        The last accepted iterate, the objective trace and the accepted L per step.
    """
    if value is None:
        value = lambda x: fun(x)[0]  # noqa: E731
    prev = cur = np.array(x0, dtype=np.float64)
    costs = [float(value(cur))]
    steps: list[float] = []
    d_prev, d_cur = 0.0, 1.0
    stop = "max_iter"
    for _ in range(max_iter):
        v = cur + (d_prev - 1.0) / d_cur * (cur - prev)
        f_v, g_v = fun(v)
        for j in range(max_backtracks + 1):
            big_l = lipschitz * 2.0**j
            z = v - g_v / big_l
            f_z = float(value(z))
            dz = z - v
            if f_z <= f_v + g_v @ dz + big_l / 2 * (dz @ dz):
                break
        else:  # no step size satisfied the test: keep the last iterate
            stop = "line_search"
            break
        lipschitz = big_l
        prev, cur = cur, z
        steps.append(big_l)
        costs.append(f_z)
        d_prev, d_cur = d_cur, (1.0 + np.sqrt(1.0 + 4.0 * d_cur**2)) / 2.0
        if abs(costs[-1] - costs[-2]) / scale <= tol:
            stop = "tol"
            break
    return DescentResult(cur, np.array(costs), np.array(steps), stop)
