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

    The forward pass keeps only the best score per (row, step, label); the backtrace
    recovers each backpointer from those with one (B, L) argmax per step, instead of
    storing a (B, T, L) argmax over a (B, L, L) tensor at every step.
    """
    E = xp.asarray(emissions, dtype="float32")
    lengths = xp.asarray(lengths, dtype="int64")
    _check_lengths(xp, E, lengths)
    B, T, L = E.shape
    A, s, e = potentials.masked(xp, dtype="float32")
    A_T = xp.ascontiguousarray(A.T)  # A_T[j, i]: score of i -> j
    order = xp.argsort(-lengths, kind="stable")
    E, len_sorted = E[order], lengths[order]
    n_at = _active_rows(xp, len_sorted, T)
    history = xp.zeros((B, T, L), dtype="float32")  # best score of a path ending in (t, j)
    buffer = xp.empty((B, L, L), dtype="float32")
    with numpy.errstate(invalid="ignore"):
        history[:, 0] = s[None, :] + E[:, 0]
        for t in range(1, T):
            n = n_at[t]
            cand = xp.add(history[:n, t - 1, None, :], A_T[None], out=buffer[:n])
            history[:n, t] = cand.max(axis=2) + E[:n, t]
        rows = xp.arange(B)
        final = history[rows, len_sorted - 1] + e[None, :]
        last = final.argmax(axis=1)
        best_score = final[rows, last]
        paths = xp.full((B, T), -1, dtype="int64")
        current = last
        for t in range(T - 1, -1, -1):
            n = n_at[t]
            current = xp.where(len_sorted - 1 == t, last, current)
            paths[:n, t] = current[:n]
            if t > 0:
                prev = (history[:n, t - 1] + A_T[current[:n]]).argmax(axis=1)
                current = xp.concatenate([prev, current[n:]])
    inverse = xp.empty_like(order)
    inverse[order] = xp.arange(B)
    return paths[inverse], best_score[inverse]
