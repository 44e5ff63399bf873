"""n-best Viterbi: the n highest-scoring label sequences of one linear chain."""
from typing import Any, Tuple

import numpy

from .batching import check_emissions
from .potentials import ChainPotentials


def nbest(xp, emissions, potentials: ChainPotentials, n: int) -> Tuple[Any, Any]:
    """The ``n`` best paths (k, T) of ``emissions`` (T, L) and their scores (k,), best
    first; k < n when fewer sequences are allowed (forbidden ones are never returned).
    ``n`` must be a positive int; NaN and +inf emissions raise ValueError.

    Each (step, label) keeps its n best partial paths as (previous label, rank)
    backpointers; extending them all and keeping the n best again is exact, because
    any prefix of an n-best path is among the n best prefixes ending in its label.
    """
    if isinstance(n, bool) or not isinstance(n, (int, numpy.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer (at least 1), got {n!r}")
    n = int(n)
    E = xp.asarray(emissions, dtype="float64")
    if E.ndim != 2:
        raise ValueError(f"Expected emissions (length, n_labels), got shape {E.shape}")
    T, L = E.shape
    if T == 0:
        return xp.zeros((1, 0), dtype="int64"), xp.zeros((1,), dtype="float64")
    check_emissions(xp, E[None], xp.asarray([T]))
    A, s, e = potentials.masked(xp, n_labels=L)
    scores = xp.full((L, n), -numpy.inf)
    scores[:, 0] = s + E[0]
    back = xp.zeros((T, L, n), dtype="int64")  # flat index prev_label * n + prev_rank
    with numpy.errstate(invalid="ignore"):
        for t in range(1, T):
            cand = (scores[:, None, :] + A[:, :, None]).transpose(1, 0, 2).reshape(L, L * n)
            top = xp.argsort(-cand, axis=1, kind="stable")[:, :n]
            scores = xp.take_along_axis(cand, top, axis=1) + E[t][:, None]
            back[t] = top
        final = (scores + e[:, None]).reshape(-1)
        best = xp.argsort(-final, kind="stable")[:n]
        best = best[xp.isfinite(final[best])]
    paths = xp.empty((best.shape[0], T), dtype="int64")
    label, rank = best // n, best % n
    for t in range(T - 1, -1, -1):
        paths[:, t] = label
        prev = back[t, label, rank]
        label, rank = prev // n, prev % n
    return paths, final[best]
