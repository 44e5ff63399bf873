"""Long rows in parallel segments: Viterbi, marginals and log messages of documents of
any length at the cost of many short ones.

The recursions step through positions in Python, so one 100,000-token row costs
100,000 steps where a batch of 100-token rows costs 100. Here every row longer than
``LONG_ROW`` is cut into segments of about ``sqrt(tokens)`` positions, all run as one
batch. A segment needs the message coming in from the one before it (after it, for
backward messages): the first sweep starts every segment from a guess, and each
further sweep reruns only the segments whose incoming message changed, each only
until its messages equal those of the sweep before (from there on, the rest of the
segment is what it was). Messages are renormalized at every step, so once a segment
has forgotten its start (the best paths from every incoming label have merged; the
scaled messages have contracted) they no longer depend on it: usually the second
sweep stops after a few positions. When the sweeps stop, every segment has run from
the message of its neighbour, so the results are those of the one-row recursion;
the number of sweeps is bounded by the number of segments (then it is the one-row
recursion, run sweep by sweep). Viterbi scores must match bit for bit; scaled
messages within ``MERGED`` (relative), see ``_close``.

Marginals and messages come from the scaled recursion in float64, exact under the
same score bounds as ``forward_backward`` (``scaling``); a row outside them goes to
``forward_backward`` whole. Shorter rows go to ``viterbi`` / ``forward_backward``
as a batch.
"""
import math
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

import numpy

from .forward_backward import (
    COUNT_MODES,
    Marginals,
    Messages,
    _shifted_exp,
    forward_backward as forward_backward_rows,
    log_messages as log_messages_rows,
)
from .batching import check_emissions, check_lengths
from .potentials import ChainPotentials
from .scaling import budget, gaps
from .viterbi import viterbi as viterbi_rows

NEG_INF = float("-inf")
LONG_ROW = 2000  # rows longer than this (tokens) run in segments
MIN_SEGMENT = 64
# relative difference under which two scaled messages count as merged: far below the
# rounding the one-row recursion accumulates over a long row
MERGED = 1e-13

Step = Callable[[Any, Any, Any], Any]


def viterbi(xp, emissions, lengths, potentials: ChainPotentials) -> Tuple[Any, Any]:
    """``viterbi`` (same arguments, results and ties: the lowest label index wins),
    with rows longer than ``LONG_ROW`` decoded in segments."""
    E, lengths, _, long, short = _split(xp, emissions, lengths)
    if not long:
        return viterbi_rows(xp, E, lengths, potentials)
    dtype = "float64" if E.dtype == xp.float64 else "float32"
    paths = xp.full(lengths.shape + (E.shape[1],), -1, dtype="int64")
    scores = xp.empty(lengths.shape, dtype=dtype)
    if short:
        steps = int(lengths[short].max())
        paths[short, :steps], scores[short] = viterbi_rows(
            xp, E[short, :steps], lengths[short], potentials
        )
    layout = _Layout.of(xp, [int(n) for n in lengths[long].tolist()])
    flat = _concat(xp, [E[b, :n] for b, n in zip(long, layout.lengths)]).astype(dtype, copy=False)
    A, s, e = potentials.masked(xp, dtype=dtype, n_labels=E.shape[2])
    row_paths, row_scores = _segmented_viterbi(xp, flat, layout, A, s, e)
    for k, b in enumerate(long):
        paths[b, : layout.lengths[k]] = row_paths[k]
    scores[long] = row_scores
    return paths, scores


def forward_backward(
    xp, emissions, lengths, potentials: ChainPotentials, *, counts: Optional[str] = "sequence",
    dtype: str = "float64",
) -> Marginals:
    """``forward_backward`` with rows longer than ``LONG_ROW`` run in segments (in
    float64: their marginals come back in ``dtype``)."""
    if counts not in COUNT_MODES:
        raise ValueError(f"counts must be one of {COUNT_MODES}, got {counts!r}")
    E, lengths, peak, long, short = _split(xp, emissions, lengths)
    if not long:
        return forward_backward_rows(xp, E, lengths, potentials, counts=counts, dtype=dtype)
    B, T, L = E.shape
    nodes = xp.zeros((B, T, L), dtype=dtype)
    log_z = xp.empty((B,), dtype="float64")
    trans = None if counts is None else xp.zeros((B, L, L) if counts == "sequence" else (L, L))
    rest = short
    for b, row in _long_rows(xp, E, peak, lengths, long, potentials):
        if row is None:
            rest = rest + [b]
            continue
        if counts == "sequence":
            trans[b] = row.transitions(xp)
        elif counts == "batch":
            trans += row.transitions(xp)
        row.write_nodes(xp, nodes[b, : int(lengths[b])])
        log_z[b] = row.log_z
    if rest:
        rest.sort()
        steps = int(lengths[rest].max())
        part = forward_backward_rows(
            xp, E[rest, :steps], lengths[rest], potentials, counts=counts, dtype=dtype
        )
        nodes[rest, :steps], log_z[rest] = part.nodes, part.log_z
        if counts == "sequence":
            trans[rest] = part.transitions
        elif counts == "batch":
            trans += part.transitions
    return Marginals(log_z, nodes, trans)


def log_messages(xp, emissions, lengths, potentials: ChainPotentials) -> Messages:
    """``log_messages`` with rows longer than ``LONG_ROW`` run in segments."""
    E, lengths, peak, long, short = _split(xp, emissions, lengths)
    if not long:
        return log_messages_rows(xp, E, lengths, potentials)
    B, T, L = E.shape
    log_alpha = xp.full((B, T, L), NEG_INF)
    log_beta = xp.full((B, T, L), NEG_INF)
    log_z = xp.empty((B,), dtype="float64")
    rest = short
    for b, row in _long_rows(xp, E, peak, lengths, long, potentials):
        if row is None:
            rest = rest + [b]
            continue
        n = int(lengths[b])
        log_alpha[b, :n], log_beta[b, :n] = row.log_messages(xp)
        log_z[b] = row.log_z
    if rest:
        rest.sort()
        steps = int(lengths[rest].max())
        part = log_messages_rows(xp, E[rest, :steps], lengths[rest], potentials)
        log_alpha[rest, :steps], log_beta[rest, :steps] = part.log_alpha, part.log_beta
        log_z[rest] = part.log_z
    return Messages(log_alpha, log_beta, log_z, lengths)


def _split(xp, emissions, lengths) -> Tuple[Any, Any, Any, List[int], List[int]]:
    """Validated emissions and lengths, the max emission of each position (B, T) where
    there are long rows (else None), and the indices of the long and short rows."""
    E = xp.asarray(emissions)
    if E.dtype not in (xp.float32, xp.float64):
        E = E.astype("float64")
    lengths = xp.asarray(lengths, dtype="int64")
    check_lengths(xp, E, lengths)
    is_long = lengths > LONG_ROW
    if not bool(is_long.any()):
        return E, lengths, None, [], []
    peak = check_emissions(xp, E, lengths)  # errors name rows of the whole batch
    return E, lengths, peak, xp.nonzero(is_long)[0].tolist(), xp.nonzero(~is_long)[0].tolist()


def _concat(xp, arrays: List[Any]):
    return arrays[0] if len(arrays) == 1 else xp.concatenate(arrays)


# --- segments ------------------------------------------------------------------------
@dataclass
class _Layout:
    """Rows laid end to end (N positions), cut into S segments: ``start`` (S,) flat
    position of each, ``size`` (S,), ``before`` / ``after`` (S,) the neighbouring
    segment in the same row (-1 at a row's ends); ``offsets`` and ``lengths`` of the
    rows, ``first`` (R,) the first segment of each row."""

    lengths: List[int]
    offsets: List[int]
    start: Any
    size: Any
    before: Any
    after: Any
    first: List[int]

    @classmethod
    def of(cls, xp, lengths: List[int]) -> "_Layout":
        K = max(MIN_SEGMENT, math.isqrt(sum(lengths)))
        start: List[int] = []
        size: List[int] = []
        before: List[int] = []
        after: List[int] = []
        offsets: List[int] = []
        first: List[int] = []
        offset = 0
        for n in lengths:
            offsets.append(offset)
            first.append(len(start))
            cuts = list(range(0, n, K))
            for i, a in enumerate(cuts):
                before.append(len(start) - 1 if i else -1)
                after.append(len(start) + 1 if i + 1 < len(cuts) else -1)
                start.append(offset + a)
                size.append(min(K, n - a))
            offset += n
        as_int = lambda x: xp.asarray(x, dtype="int64")  # noqa: E731
        return cls(
            lengths, offsets, as_int(start), as_int(size), as_int(before), as_int(after), first
        )

    @property
    def end(self):
        """(S,) the last flat position of each segment."""
        return self.start + self.size - 1


def _sweep(
    xp, layout: _Layout, values, step: Step, guess, same: Callable[[Any, Any], Any], *,
    reverse: bool = False,
) -> None:
    """Fill ``values`` (N, L) with the messages of a recursion run over every segment
    in parallel, left to right (right to left if ``reverse``), until the segments agree.

    ``step(prev, pos, edge)`` returns the messages (n, L) at flat positions ``pos``
    (n,) from those of the position before them in the row, ``prev`` (n, L); where
    ``edge`` (n,) is set, ``pos`` starts its row (ends it, if ``reverse``) and ``prev``
    is to be ignored. The first sweep starts the other segments from ``guess`` (L,).
    ``same(x, y)`` (n,) says which rows of two (n, L) message arrays count as equal.
    """
    S = layout.start.shape[0]
    link = layout.after if reverse else layout.before
    exit_pos = layout.start if reverse else layout.end  # where a segment hands over
    first_pos = layout.end if reverse else layout.start
    direction = -1 if reverse else 1
    edge = link < 0
    incoming = xp.repeat(xp.asarray(guess, dtype=values.dtype)[None, :], S, axis=0)
    rows = xp.arange(S)
    again = False
    while rows.shape[0]:
        prev = incoming[rows]
        for k in range(int(layout.size[rows].max())):
            running = layout.size[rows] > k
            if not bool(running.all()):
                rows, prev = rows[running], prev[running]
            pos = first_pos[rows] + direction * k
            new = step(prev, pos, edge[rows] & (k == 0))
            if again:  # stop where the messages are those of the sweep before
                changed = ~same(new, values[pos])
                values[pos] = new
                rows, new = rows[changed], new[changed]
                if not rows.shape[0]:
                    break
            else:
                values[pos] = new
            prev = new
        handed = values[exit_pos[xp.maximum(link, 0)]]
        moved = ~edge & ~same(handed, incoming)
        rows = xp.nonzero(moved)[0]
        incoming[rows] = handed[rows]
        again = True


def _identical(x, y):
    return (x == y).all(axis=1)


def _close(x, y):
    """Nonnegative messages within ``MERGED`` of each other, entry by entry (zeros
    alike). The scaled steps are nonnegative linear maps and a normalization, which
    never increase the Hilbert projective distance of two messages: what follows from
    either stays as close, and so do the log normalizers' sums (log Z is off by at
    most about 2 * MERGED per segment)."""
    return (abs(x - y) <= MERGED * (x + y)).all(axis=1)


# --- Viterbi ---------------------------------------------------------------------------
def _segmented_viterbi(xp, E, layout: _Layout, A, s, e) -> Tuple[List[Any], Any]:
    """Best paths (one per row) and their scores (R,) of the rows laid out in ``E``
    (N, L). Scores are renormalized at every step (the max is kept in ``shift``)."""
    N, L = E.shape
    dtype = E.dtype
    delta = xp.empty((N, L), dtype=dtype)  # best score of a path ending in (t, j), minus shift
    back = xp.zeros((N, L), dtype="int32")  # back[t, j]: the label at t-1 of that path
    shift = xp.zeros((N,), dtype="float64")
    A_T = xp.ascontiguousarray(A.T)
    # as in ``viterbi``: only labels within the transition spread of the best one can
    # be the best predecessor of any label (exact pruning)
    spread = float(A.max() - A.min()) if bool(xp.isfinite(A).all()) else None

    def step(prev, pos, edge):
        # prev (n, L_prev) is renormalized; the predecessor axis is last for argmax,
        # candidates in label order, so that ties go to the lowest label
        k = L
        if spread is not None:
            k = max(1, int((prev >= prev.max(axis=1, keepdims=True) - spread).sum(axis=1).max()))
        if k == 1:
            top = prev.argmax(axis=1)
            bp = xp.repeat(top[:, None], L, axis=1)
            d = prev[xp.arange(top.shape[0]), top][:, None] + A[top] + E[pos]
        else:
            if 4 * k <= L:
                top = xp.sort(xp.argpartition(prev, L - k, axis=1)[:, L - k :], axis=1)  # (n, k)
                cand = xp.take_along_axis(prev, top, axis=1)[:, None, :] + A[top].transpose(0, 2, 1)
                pick = cand.argmax(axis=2)  # (n, L)
                bp = xp.take_along_axis(top, pick, axis=1)
            else:
                cand = prev[:, None, :] + A_T[None]  # (n, L, L_prev)
                bp = pick = cand.argmax(axis=2)
            d = xp.take_along_axis(cand, pick[..., None], axis=2)[..., 0] + E[pos]
        if bool(edge.any()):
            d[edge] = s[None, :] + E[pos[edge]]
        m = d.max(axis=1)
        m = xp.where(m > NEG_INF, m, 0.0)
        d -= m[:, None]
        back[pos] = bp
        shift[pos] = m
        return d

    with numpy.errstate(invalid="ignore"):
        _sweep(xp, layout, delta, step, xp.zeros((L,), dtype=dtype), _identical)
        ends = layout.end
        # the label at each segment's first position on the best path into (end, j)
        origin = xp.repeat(xp.arange(L)[None, :], ends.shape[0], axis=0)
        for k in range(int(layout.size.max()) - 1):
            rows = xp.nonzero(layout.size > k + 1)[0]
            origin[rows] = back[(ends[rows] - k)[:, None], origin[rows]]
        # where the best path leaves each segment: from the end of each row, backwards
        last = xp.empty(ends.shape, dtype="int64")
        origin_h, back_h = origin.tolist(), back[layout.start].tolist()
        before, after = layout.before.tolist(), layout.after.tolist()
        scores = []
        for first, o, n in zip(layout.first, layout.offsets, layout.lengths):
            seg = first
            while after[seg] >= 0:
                seg = after[seg]
            final = delta[int(ends[seg])] + e
            label = int(final.argmax())
            scores.append(float(final[label]) + float(shift[o : o + n].sum()))
            while seg >= 0:
                last[seg] = label
                label = back_h[seg][origin_h[seg][label]]
                seg = before[seg]
        path = xp.empty((N,), dtype="int64")
        path[ends] = last
        current = last.copy()
        for k in range(int(layout.size.max()) - 1):
            rows = xp.nonzero(layout.size > k + 1)[0]
            pos = ends[rows] - k
            current[rows] = back[pos, current[rows]]
            path[pos - 1] = current[rows]
    paths = [path[o : o + n] for o, n in zip(layout.offsets, layout.lengths)]
    return paths, xp.asarray(scores, dtype=dtype)


# --- marginals ---------------------------------------------------------------------------
@dataclass
class _Row:
    """One long row's scaled messages in float64: ``alpha`` and ``beta`` (n, L), each
    normalized to sum 1 at every position, with the log of the true messages' scale
    ``log_a`` and ``log_b`` (n,); ``emit = exp(E - peak)`` with ``peak`` (n,) the max
    emission of each position."""

    alpha: Any
    beta: Any
    log_a: Any
    log_b: Any
    log_z: float
    emit: Any
    peak: Any
    expA: Any
    amax: float

    def log_messages(self, xp) -> Tuple[Any, Any]:
        with numpy.errstate(divide="ignore"):
            log_alpha = xp.log(self.alpha) + self.log_a[:, None]
            return log_alpha, xp.log(self.beta) + self.log_b[:, None]

    def write_nodes(self, xp, out) -> None:
        """Write the node marginals (n, L) to ``out`` (this overwrites ``alpha``)."""
        xp.multiply(self.alpha, self.beta, out=self.alpha)
        xp.multiply(self.alpha, xp.exp(self.log_a + self.log_b - self.log_z)[:, None], out=out)

    def transitions(self, xp):
        """Expected bigram counts (L, L): sum over t of
        alpha_{t-1}(i) exp(A)(i, j) exp(E_t(j)) beta_t(j) / Z, as one matrix product."""
        scale = xp.exp(self.log_a[:-1] + self.peak[1:] + self.amax + self.log_b[1:] - self.log_z)
        nxt = self.emit[1:] * self.beta[1:]
        return ((self.alpha[:-1] * scale[:, None]).T @ nxt) * self.expA


def _long_rows(xp, E, peak, lengths, rows: List[int], potentials: ChainPotentials):
    """(row, ``_Row``) for each long row of ``E`` (B, T, L) with max emissions ``peak``
    (B, T); ``_Row`` is None where the scaled recursion is not exact in float64 (the
    caller runs that row whole)."""
    A, s, e = potentials.masked(xp, n_labels=E.shape[2])
    limit = budget(xp, A, s, e, "float64")
    layout = _Layout.of(xp, [int(lengths[b]) for b in rows])
    flat = _concat(xp, [E[b, :n] for b, n in zip(rows, layout.lengths)])
    peak = _concat(xp, [peak[b, :n] for b, n in zip(rows, layout.lengths)])
    G = gaps(xp, flat[None], peak[None], xp.asarray([flat.shape[0]]))[0]
    fits = [float(G[o : o + n].max()) <= limit.gap for o, n in zip(layout.offsets, layout.lengths)]
    if not any(fits):
        return [(b, None) for b in rows]
    messages = _scaled_messages(xp, flat, peak, layout, A, s, e)
    out = []
    for k, b in enumerate(rows):
        row = messages(k) if fits[k] else None
        if row is not None and limit.floor is not None:
            small = lambda x: bool(((x > 0) & (x < limit.floor)).any())  # noqa: E731
            if small(row.alpha) or small(row.beta):
                row = None
        out.append((b, row))
    return out


def _scaled_messages(xp, E, peak, layout: _Layout, A, s, e) -> Callable[[int], Optional[_Row]]:
    """Sweep the scaled forward and backward recursions over the segments of ``E``
    (N, L); returns a function giving row k's ``_Row`` (None if it has no path)."""
    N, L = E.shape
    expA, amax = _shifted_exp(xp, A.reshape(-1))
    expA = expA.reshape(L, L)
    expA_T = xp.ascontiguousarray(expA.T)
    peak = xp.where(peak > NEG_INF, peak, 0.0).astype("float64")
    emit = E.astype("float64")
    emit -= peak[:, None]
    with numpy.errstate(under="ignore"):
        xp.exp(emit, out=emit)
    start_exp, smax = _shifted_exp(xp, s)
    end_exp, emax = _shifted_exp(xp, e)
    alpha = xp.empty((N, L))
    beta = xp.empty((N, L))
    log_c = xp.zeros((N,))  # log of each step's normalizer, shifts included
    log_d = xp.zeros((N,))

    def normalize(x, out, pos, shift):
        total = x.sum(axis=1)
        good = total > 0
        with numpy.errstate(divide="ignore"):
            out[pos] = xp.where(good, xp.log(xp.where(good, total, 1.0)) + shift, NEG_INF)
        return x / xp.where(good, total, 1.0)[:, None]

    def forward(prev, pos, edge):
        a = (prev @ expA) * emit[pos]
        shift = peak[pos] + amax
        if bool(edge.any()):
            a[edge] = start_exp[None, :] * emit[pos[edge]]
            shift[edge] = peak[pos[edge]] + smax
        return normalize(a, log_c, pos, shift)

    def backward(prev, pos, edge):
        nxt = xp.minimum(pos + 1, N - 1)
        u = (emit[nxt] * prev) @ expA_T
        shift = peak[nxt] + amax
        if bool(edge.any()):
            u[edge] = end_exp[None, :]
            shift[edge] = emax
        return normalize(u, log_d, pos, shift)

    with numpy.errstate(invalid="ignore"):
        uniform = xp.full((L,), 1.0 / L)
        _sweep(xp, layout, alpha, forward, uniform, _close)
        _sweep(xp, layout, beta, backward, uniform, _close, reverse=True)

    def row(k: int) -> Optional[_Row]:
        o, n = layout.offsets[k], layout.lengths[k]
        c, d = log_c[o : o + n], log_d[o : o + n]
        if not bool(xp.isfinite(c).all() and xp.isfinite(d).all()):
            return None
        log_a = c.cumsum()
        log_b = d[::-1].cumsum()[::-1]  # beta_t's scale: its normalizer and those after
        log_z = float(log_a[-1] + log_b[-1] + math.log(float(alpha[o + n - 1] @ beta[o + n - 1])))
        return _Row(alpha[o : o + n], beta[o : o + n], log_a, log_b, log_z, emit[o : o + n],
                    peak[o : o + n], expA, amax)

    return row
