"""Viterbi decoding for a batch of linear-chain CRFs, with vectorized backtrace."""
from typing import Any, Optional, Tuple

import numpy

from .batching import (
    active_rows,
    check_emissions,
    check_lengths,
    inverse_permutation,
    sort_by_length,
)
from .potentials import ChainPotentials, sequence_scores

MAX_BOUNDED_LABELS = 128  # the pruning bounds are (L, L), computed in O(L^3)


def viterbi(xp, emissions, lengths, potentials: ChainPotentials) -> Tuple[Any, Any]:
    """Best label sequence of each row of ``emissions`` (B, T, L).

    Returns the paths (B, T) as int64 with -1 at padding, and their scores (B,).
    Forbidden transitions (the potentials' mask) and -inf emissions are never chosen
    while any allowed path exists (a row without one scores -inf). NaN and +inf
    emissions inside a row raise ValueError. Runs in float32 unless the emissions are
    float64; the scores are summed in float64.

    Without forbidden transitions, each step maximizes over the candidate predecessors
    of each row alone (``_sparse_step``): once the emissions are confident, a row has
    one or two. Otherwise the max over the previous label reduces the outer axis of a
    contiguous ``(L, n, L)`` block, which numpy vectorizes. Only the best scores are
    stored: the backtrace recovers each backpointer with one ``(n, L)`` argmax per
    step.
    """
    E = xp.asarray(emissions)
    E = E.astype("float64" if E.dtype == xp.float64 else "float32", copy=False)
    lengths = xp.asarray(lengths, dtype="int64")
    check_lengths(xp, E, lengths)
    check_emissions(xp, E, lengths)
    paths = best_paths(xp, E, lengths, potentials)
    # the chosen paths' scores summed in float64 (a float32 recursion rounds them)
    return paths, sequence_scores(xp, E, lengths, paths, potentials)


def best_paths(xp, E, lengths, potentials: ChainPotentials) -> Any:
    """The paths of ``viterbi`` (B, T) for emissions it has validated (float32 or
    float64, lengths int64), without the checks and the scores."""
    dtype = "float64" if E.dtype == xp.float64 else "float32"
    B, T_padded, L = E.shape
    A, s, e = potentials.masked(xp, dtype=dtype, n_labels=L)
    if B == 0:
        return xp.zeros((0, T_padded), dtype="int64")
    order, E, len_sorted = sort_by_length(xp, E, lengths)
    T = int(len_sorted[0])  # steps past the longest row are all padding
    n_at = active_rows(len_sorted, T)
    best = xp.empty((T, B, L), dtype=dtype)  # best[t, b, j]: of a path ending in j at t
    buffer = xp.empty(L * L * B, dtype=dtype)
    A_rows = xp.ascontiguousarray(A[:, None, :])  # (L_prev, 1, L)
    A_T = xp.ascontiguousarray(A.T)
    bounds = _pruning_bounds(xp, A)
    columns = xp.arange(B)
    with numpy.errstate(invalid="ignore"):
        best[0] = s[None, :] + E[:, 0]
        for t in range(1, T):
            n = n_at[t]
            prev = best[t - 1, :n]
            step = None if bounds is None else _sparse_step(xp, prev, A, bounds, columns)
            if step is None:
                cand = buffer[: L * n * L].reshape(L, n, L)  # cand[i, b, j]: via i -> j
                xp.add(prev.T[:, :, None], A_rows, out=cand)
                step = cand.max(axis=0)
            xp.add(step, E[:n, t], out=best[t, :n])
        final = best[len_sorted - 1, columns] + e[None, :]  # (B, L)
        last = final.argmax(axis=1)
        paths = xp.full((B, T_padded), -1, dtype="int64")
        current = last.copy()
        for t in range(T - 1, -1, -1):
            n = n_at[t]
            current = xp.where(len_sorted - 1 == t, last, current)
            paths[:n, t] = current[:n]
            if t > 0:
                current[:n] = (best[t - 1, :n] + A_T[current[:n]]).argmax(axis=1)
    return paths[inverse_permutation(xp, order)]


def _pruning_bounds(xp, A) -> Optional[Any]:
    """``bounds[i*, i]``: how far below the best previous label i* a label i may lie
    and still beat it as the predecessor of some label, ``max_j A[i, j] - A[i*, j]``
    (further below, it loses to i* whatever comes next), widened by a rounding margin.
    None with forbidden transitions (i* may not reach every label) or more than
    ``MAX_BOUNDED_LABELS`` labels."""
    L = A.shape[0]
    if L > MAX_BOUNDED_LABELS or not bool(xp.isfinite(A).all()):
        return None
    A64 = A.astype("float64")
    bounds = (A64[None, :, :] - A64[:, None, :]).max(axis=2)  # [i*, i]
    return (bounds + 1e-5 * (xp.abs(bounds) + float(xp.abs(A64).max())) + 1e-30).astype(A.dtype)


def _sparse_step(xp, prev, A, bounds, columns) -> Optional[Any]:
    """``max_i prev[b, i] + A[i, j]`` (n, L) over the candidate predecessors of each row
    only: the labels within ``bounds`` of the row's best (the others lose to it, so
    the max is exact). None when the candidates are too many to pay off."""
    n, L = prev.shape
    cols = columns[:n]
    best_label = prev.argmax(axis=1)
    peak = prev[cols, best_label]
    candidate = prev >= peak[:, None] - bounds[best_label]  # -inf rows keep every label
    k = int(candidate.sum(axis=1).max())
    if k == 1:
        return peak[:, None] + A[best_label]
    if 4 * k > L:
        return None
    rank = xp.cumsum(candidate, axis=1) - 1
    rows, labels = xp.nonzero(candidate)
    top = xp.empty((k, n), dtype="int64")
    top[...] = best_label  # rows with fewer candidates repeat their best
    top[rank[rows, labels], rows] = labels
    return (prev[cols, top][:, :, None] + A[top]).max(axis=0)
