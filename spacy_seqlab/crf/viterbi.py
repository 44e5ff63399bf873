"""Viterbi decoding for a batch of linear-chain CRFs, with vectorized backtrace."""
from typing import Any, Tuple

import numpy

from .forward_backward import _active_rows, _check_lengths
from .potentials import ChainPotentials


def viterbi(xp, emissions, lengths, potentials: ChainPotentials) -> Tuple[Any, Any]:
    """Best label sequence of each row of ``emissions`` (B, T, L).

    Returns the paths (B, T) as int64 with -1 at padding, and their scores (B,).
    Forbidden transitions (the potentials' mask) and -inf emissions are never chosen
    while any allowed path exists.
    """
    E = xp.asarray(emissions, dtype="float32")
    lengths = xp.asarray(lengths, dtype="int64")
    _check_lengths(xp, E, lengths)
    B, T, L = E.shape
    A, s, e = potentials.masked(xp, dtype="float32")
    order = xp.argsort(-lengths, kind="stable")
    E, len_sorted = E[order], lengths[order]
    n_at = _active_rows(xp, len_sorted, T)
    back = xp.zeros((B, T, L), dtype="int64")
    with numpy.errstate(invalid="ignore"):
        score = s[None, :] + E[:, 0]
        for t in range(1, T):
            n = n_at[t]
            # cand[b, i, j]: best path ending in i at t-1, then i -> j
            cand = score[:n, :, None] + A[None]
            best_prev = cand.argmax(axis=1)
            back[:n, t] = best_prev
            best = xp.take_along_axis(cand, best_prev[:, None, :], axis=1)[:, 0]
            score[:n] = best + E[:n, t]
        final = score + e[None, :]
    last = final.argmax(axis=1)
    best_score = final.max(axis=1)
    rows = xp.arange(B)
    paths = xp.full((B, T), -1, dtype="int64")
    current = last
    for t in range(T - 1, -1, -1):
        current = xp.where(len_sorted - 1 == t, last, current)
        running = t < len_sorted
        paths[:, t] = xp.where(running, current, -1)
        current = back[rows, t, xp.where(running, current, 0)]
    inverse = xp.empty_like(order)
    inverse[order] = xp.arange(B)
    return paths[inverse], best_score[inverse]
