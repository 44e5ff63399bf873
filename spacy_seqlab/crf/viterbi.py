"""Viterbi decoding for a batch of linear-chain CRFs, with vectorized backtrace."""
from typing import Any, Tuple

import numpy

from .batching import (
    active_rows,
    check_emissions,
    check_lengths,
    inverse_permutation,
    sort_by_length,
)
from .potentials import ChainPotentials, sequence_scores


def viterbi(xp, emissions, lengths, potentials: ChainPotentials) -> Tuple[Any, Any]:
    """Best label sequence of each row of ``emissions`` (B, T, L).

    Returns the paths (B, T) as int64 with -1 at padding, and their scores (B,).
    Forbidden transitions (the potentials' mask) and -inf emissions are never chosen
    while any allowed path exists (a row without one scores -inf). NaN and +inf
    emissions inside a row raise ValueError. Runs in float32 unless the emissions are
    float64; the scores are summed in float64.

    Scores are kept batch-last, ``(T, L, B)``, so each step's max over the previous
    label reduces the outer axis of a contiguous ``(L, L, n)`` block, which numpy
    vectorizes. Only the best scores are stored: the backtrace recovers each
    backpointer with one ``(L, n)`` argmax per step.
    """
    E = xp.asarray(emissions)
    dtype = "float64" if E.dtype == xp.float64 else "float32"
    E = E.astype(dtype, copy=False)
    lengths = xp.asarray(lengths, dtype="int64")
    check_lengths(xp, E, lengths)
    check_emissions(xp, E, lengths)
    B, T_padded, L = E.shape
    A, s, e = potentials.masked(xp, dtype=dtype, n_labels=L)
    if B == 0:
        return xp.zeros((0, T_padded), dtype="int64"), xp.zeros((0,), dtype="float64")
    A_col = xp.ascontiguousarray(A[:, :, None])  # (L_prev, L, 1)
    unsorted = E
    order, E, len_sorted = sort_by_length(xp, E, lengths)
    T = int(len_sorted[0])  # steps past the longest row are all padding
    E_t = xp.ascontiguousarray(E[:, :T].transpose(1, 2, 0))  # (T, L, B)
    n_at = active_rows(len_sorted, T)
    best = xp.empty((T, L, B), dtype=dtype)  # best score of a path ending in (t, j)
    buffer = xp.empty(L * L * B, dtype=dtype)
    # A previous label i can only be the best predecessor of some j if its score is
    # within the spread of the transition scores of the best one: the rest are pruned
    # (exactly), which leaves few candidates once the emissions are confident.
    spread = float(A.max() - A.min()) if bool(xp.isfinite(A).all()) else None
    with numpy.errstate(invalid="ignore"):
        best[0] = s[:, None] + E_t[0]
        for t in range(1, T):
            n = n_at[t]
            prev = best[t - 1, :, :n]
            k = L
            if spread is not None:
                k = int((prev >= prev.max(axis=0) - spread).sum(axis=0).max())
            if 4 * k <= L:
                top = xp.argpartition(prev, L - k, axis=0)[L - k :]  # (k, n) best labels
                values = xp.take_along_axis(prev, top, axis=0)
                cand = values[:, None, :] + A[top].transpose(0, 2, 1)  # (k, L, n)
            else:
                cand = buffer[: L * L * n].reshape(L, L, n)  # cand[i, j, b]: via i -> j
                xp.add(prev[:, None, :], A_col, out=cand)
            xp.add(cand.max(axis=0), E_t[t, :, :n], out=best[t, :, :n])
        rows = xp.arange(B)
        final = best[len_sorted - 1, :, rows] + e[None, :]  # (B, L)
        last = final.argmax(axis=1)
        paths = xp.full((B, T_padded), -1, dtype="int64")
        current = last.copy()
        for t in range(T - 1, -1, -1):
            n = n_at[t]
            current = xp.where(len_sorted - 1 == t, last, current)
            paths[:n, t] = current[:n]
            if t > 0:
                current[:n] = (best[t - 1, :, :n] + A[:, current[:n]]).argmax(axis=0)
    inverse = inverse_permutation(xp, order)
    paths = paths[inverse]
    # the chosen paths' scores summed in float64 (a float32 recursion rounds them)
    return paths, sequence_scores(xp, unsorted, lengths, paths, potentials)
