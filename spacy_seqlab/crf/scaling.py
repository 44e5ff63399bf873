"""Where the scaled forward-backward is exact, decided from the scores before it runs.

The scaled recursion (``forward_backward._scaled``) multiplies factors in [0, 1]:
``exp(A - max A)``, ``exp(E_t - max E_t)`` (the start scores folded into t = 0) and
``exp(e - max e)``, and renormalizes the forward vector at every step. Nothing is lost
as long as every nonzero factor and message stays above the dtype's smallest normal
number ``exp(-R)``. With ``S`` the spread of the finite transition scores, ``G_t`` the
gap between the best and the worst finite emission of a position, ``L`` labels:

* No forbidden transition: the best label of step t-1 (forward message >= 1/L)
  reaches every label, so every nonzero forward message is at least
  ``exp(-(S + G_t + 2 log L))``; backward messages stay within ``L exp(S)`` of 1, and
  the start and end factors cost their spreads once. Exact when every position of a
  row has ``G_t + S + spread(start) + spread(end) + 2 log L + MARGIN <= R``.
* Forbidden transitions: a label may be fed only by labels far below the best, so
  small forward messages can shrink step after step (and later dominate). The row
  must then also keep every nonzero forward message above ``exp(-R / 2)`` (the
  first one below it is still exact, so ``_scaled`` checks the forward messages before
  its backward pass), with the gap budget halved so that one step from that floor
  cannot underflow. Labels no prefix reaches pass nothing back.

A row outside these bounds runs in float64, then in log space.
"""
import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy

from .batching import label_reduce

NEG_INF = float("-inf")
MARGIN = 4.0  # nats of headroom for rounding in the bounds above


@dataclass
class Budget:
    """How far below its best a finite emission may lie (``gap``, nats) for the scaled
    recursion in ``dtype`` to be exact, and the floor of the nonzero forward messages
    (``floor``; None without forbidden transitions)."""

    dtype: str
    gap: float
    floor: Optional[float]


def exp_range(dtype: str) -> float:
    """R: -log of the smallest normal number of ``dtype``."""
    return -math.log(float(numpy.finfo(dtype).tiny))


def spread(xp, scores) -> float:
    """max - min of the finite entries (0 if there are none)."""
    finite = scores[xp.isfinite(scores)]
    return float(finite.max() - finite.min()) if finite.shape[0] else 0.0


def budget(xp, A, s, e, dtype: str) -> Budget:
    """The gap budget of the scaled recursion in ``dtype`` for masked potentials."""
    R = exp_range(dtype)
    forbidden = not bool(xp.isfinite(A).all())
    if forbidden:
        R /= 2
    cost = spread(xp, A) + spread(xp, s) + spread(xp, e) + 2 * math.log(A.shape[0]) + MARGIN
    return Budget(dtype, R - cost, math.exp(-R) if forbidden else None)


def gaps(xp, E, peak, lengths) -> Any:
    """G (B, T): best minus worst finite emission of each position; 0 at padding and
    where every label is excluded. ``peak`` is the max over labels (B, T)."""
    valid = xp.arange(E.shape[1])[None, :] < lengths[:, None]
    with numpy.errstate(invalid="ignore"):
        low = label_reduce(xp, "minimum", E)
        live = valid & (peak > NEG_INF)
        excluded = live & (low == NEG_INF)
        if bool(excluded.any()):  # clamped positions: the worst of the allowed labels
            b, t = xp.nonzero(excluded)
            rows = E[b, t]
            low[b, t] = xp.where(rows > NEG_INF, rows, numpy.inf).min(axis=1)
        return xp.where(live, peak - low, 0.0)
