"""Forward-backward for a batch of linear-chain CRFs: log Z, node marginals and
expected transition counts.

The fast path is Rabiner's scaled forward-backward in probability space: each step is
one ``(n, L) @ (L, L)`` matrix product; the log of each step's normalizer is kept so
log Z stays exact for sequences of any length, and the backward pass reuses the
forward normalizers so ``alpha * beta`` are the node marginals. It runs only on the
rows it represents exactly, decided from their scores (``scaling``): in the requested
dtype, else in float64; the remaining rows take the float64 log-space recursion.

Sequences are processed longest first, so at step ``t`` only the prefix of rows still
running takes part: the work is proportional to the number of tokens, not to
``B * max_length``.
"""
from dataclasses import dataclass
from typing import Any, List, Optional

import numpy

from .batching import (
    active_rows,
    check_emissions,
    check_lengths,
    inverse_permutation,
    sort_by_length,
)
from .potentials import ChainPotentials
from .scaling import Budget, budget, gaps

NEG_INF = float("-inf")
# Rows per matrix product when summing transition counts: small products stay on one
# BLAS thread, which avoids stalls when OpenBLAS splits tiny GEMMs across busy cores.
GEMM_ROWS = 96
COUNT_MODES = ("sequence", "batch", None)


@dataclass
class Marginals:
    """``log_z`` (B,), ``nodes`` (B, T, L) with zeros at padding, and ``transitions``:
    expected label bigram counts per sequence (B, L, L) with ``counts="sequence"``,
    summed over the batch (L, L) with ``counts="batch"``, or None. A row that no label
    sequence satisfies has log Z = -inf and zero marginals."""

    log_z: Any
    nodes: Any
    transitions: Any


@dataclass
class Messages:
    """Log forward messages ``log_alpha`` (B, T, L), log backward messages
    ``log_beta`` (B, T, L), ``log_z`` (B,) and the ``lengths`` (B,). ``log_beta`` is
    exact wherever ``log_alpha`` is finite (elsewhere it may be -inf)."""

    log_alpha: Any
    log_beta: Any
    log_z: Any
    lengths: Any


def forward_backward(
    xp,
    emissions,
    lengths,
    potentials: ChainPotentials,
    *,
    counts: Optional[str] = "sequence",
    dtype: str = "float64",
) -> Marginals:
    """Marginals of the CRF over padded ``emissions`` (B, T, L) with ``lengths`` (B,).

    Emissions of -inf exclude a label at a position (see ``clamp_emissions``); NaN
    and +inf inside a row raise ValueError, padding is ignored. Every length must be
    at least 1. ``counts`` picks the transition counts returned ("batch" is what a
    gradient needs; None skips them, for decoding). ``dtype`` is the precision of the
    recursion where it is exact (rows it cannot represent run in float64); log Z is
    always accumulated in float64.
    """
    if counts not in COUNT_MODES:
        raise ValueError(f"counts must be one of {COUNT_MODES}, got {counts!r}")
    batch = _prepare(xp, emissions, lengths, potentials)
    B, T, L = batch.E.shape
    parts = _solve(xp, batch, counts, dtype)
    if len(parts) == 1 and parts[0].complete(B, T):  # the common case: no copies
        part = parts[0]
        nodes, log_z, transitions = part.nodes(xp).astype(dtype, copy=False), part.log_z, part.transitions
    else:
        nodes = xp.zeros((B, T, L), dtype=dtype)
        log_z = xp.empty((B,), dtype="float64")
        transitions = None if counts is None else xp.zeros((B, L, L) if counts == "sequence" else (L, L))
        for part in parts:
            nodes[part.rows, : part.steps] = part.nodes(xp)
            log_z[part.rows] = part.log_z
            if counts == "sequence":
                transitions[part.rows] = part.transitions
            elif counts == "batch":
                transitions += part.transitions
    if batch.sorted:
        return Marginals(log_z, nodes, transitions)
    inverse = inverse_permutation(xp, batch.order)
    if counts == "sequence":
        transitions = transitions[inverse]
    return Marginals(log_z[inverse], nodes[inverse], transitions)


def log_messages(xp, emissions, lengths, potentials: ChainPotentials) -> Messages:
    """Log forward and backward messages (B, T, L) and log Z (B,), float64.

    ``log_alpha[b, t, j]`` scores every prefix ending in label j at t (emission
    included), ``log_beta[b, t, j]`` every suffix after it (end score included), so
    ``log_alpha + log_beta - log_z`` is the log marginal; -inf at padding.
    """
    batch = _prepare(xp, emissions, lengths, potentials)
    B, T, L = batch.E.shape
    log_alpha = xp.full((B, T, L), NEG_INF)
    log_beta = xp.full((B, T, L), NEG_INF)
    log_z = xp.empty((B,), dtype="float64")
    for part in _solve(xp, batch, None, "float64"):
        part_alpha, part_beta = part.log_messages(xp)
        log_alpha[part.rows, : part.steps] = part_alpha
        log_beta[part.rows, : part.steps] = part_beta
        log_z[part.rows] = part.log_z
    inverse = inverse_permutation(xp, batch.order)
    return Messages(log_alpha[inverse], log_beta[inverse], log_z[inverse], batch.lengths[inverse])


@dataclass
class _Batch:
    """Validated inputs with rows longest first: ``order`` maps them back, ``peak``
    is the max emission of each position (B, T), 0 at padding; A, s, e are masked."""

    order: Any
    sorted: bool
    E: Any
    lengths: Any
    peak: Any
    A: Any
    s: Any
    e: Any


def path_marginals(xp, E, lengths, peak, potentials: ChainPotentials, paths, *, dtype: str = "float32"):
    """The node marginal (B, T) of the label ``paths`` (B, T) takes at each position
    (0 at padding): ``forward_backward(...).nodes`` at the paths alone, for emissions
    that ``check_emissions`` has validated (``peak``: what it returned), without
    checking them again or forming the (B, T, L) marginals."""
    batch = _sorted_batch(xp, E, lengths, peak, potentials)
    idx = xp.maximum(paths if batch.sorted else paths[batch.order], 0)
    out = xp.zeros(idx.shape, dtype=dtype)
    for part in _solve(xp, batch, None, dtype):
        out[part.rows, : part.steps] = part.at(xp, idx[part.rows, : part.steps])
    return out if batch.sorted else out[inverse_permutation(xp, batch.order)]


def _prepare(xp, emissions, lengths, potentials: ChainPotentials) -> _Batch:
    E = xp.asarray(emissions)
    if E.dtype not in (xp.float32, xp.float64):
        E = E.astype("float64")
    lengths = xp.asarray(lengths, dtype="int64")
    check_lengths(xp, E, lengths)
    return _sorted_batch(xp, E, lengths, check_emissions(xp, E, lengths), potentials)


def _sorted_batch(xp, E, lengths, peak, potentials: ChainPotentials) -> _Batch:
    A, s, e = potentials.masked(xp, n_labels=E.shape[2])
    order, E, lengths = sort_by_length(xp, E, lengths)
    in_order = bool((order == xp.arange(order.shape[0])).all())
    return _Batch(order, in_order, E, lengths, peak if in_order else peak[order], A, s, e)


def _solve(xp, batch: _Batch, counts, dtype: str) -> List[Any]:
    """Cover every row: the scaled recursion where it is exact in ``dtype``, then in
    float64, the log-space recursion for the rest. Parts list the rows they hold."""
    B = batch.E.shape[0]
    todo = xp.arange(B)
    parts: List[Any] = []
    if B == 0:
        return parts
    G = gaps(xp, batch.E, batch.peak, batch.lengths).max(axis=1)
    for tier in dict.fromkeys((dtype, "float64")):
        limit = budget(xp, batch.A, batch.s, batch.e, tier)
        rows = todo[G[todo] <= limit.gap]
        if rows.shape[0]:
            part = _scaled(xp, batch, rows, counts, limit)
            if part is not None:
                parts.append(part)
                left = xp.ones((B,), dtype=bool)
                left[part.rows] = False
                todo = todo[left[todo]]
        if not todo.shape[0]:
            return parts
    parts.append(_log_space(xp, batch, todo, counts))
    return parts


def _shifted_exp(xp, x, axis: int = -1):
    """exp(x - max) and the max, with the max taken as 0 where every entry is -inf."""
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    return xp.exp(x - m), xp.squeeze(m, axis=axis)


@dataclass
class _Scaled:
    """The scaled recursion over sorted ``rows`` of the batch: messages (alpha * beta is
    the node marginal) over the first ``steps`` positions, the log normalizer of each
    step ``log_c`` (n, steps), log Z and the transition counts."""

    rows: Any
    lengths: Any
    steps: int
    alpha: Any
    beta: Any
    log_c: Any
    log_z: Any
    transitions: Any

    def complete(self, B: int, T: int) -> bool:
        return self.rows.shape[0] == B and self.steps == T

    def nodes(self, xp):
        nodes = self.alpha
        nodes *= self.beta
        return nodes

    def at(self, xp, labels):
        """The node marginals at ``labels`` (n, steps) of each position."""
        return _take_labels(xp, self.alpha, labels) * _take_labels(xp, self.beta, labels)

    def log_messages(self, xp):
        log_c = self.log_c.cumsum(axis=1)[..., None]
        with numpy.errstate(divide="ignore", invalid="ignore"):
            log_alpha = xp.log(self.alpha) + log_c
            log_beta = xp.log(self.beta) + (self.log_z[:, None, None] - log_c)
        valid = (xp.arange(self.steps)[None, :] < self.lengths[:, None])[..., None]
        return xp.where(valid, log_alpha, NEG_INF), xp.where(valid, log_beta, NEG_INF)


def _scaled(xp, batch: _Batch, rows, counts, limit: Budget) -> Optional[_Scaled]:
    """Scaled forward-backward over the sorted ``rows`` of ``batch``, in
    ``limit.dtype``. With forbidden transitions, rows whose forward messages fall
    below ``limit.floor`` are dropped before the backward pass (``rows`` of the result
    lists the rows kept; None if none is)."""
    dtype = limit.dtype
    everything = rows.shape[0] == batch.E.shape[0]
    E = batch.E if everything else batch.E[rows]
    lengths = batch.lengths if everything else batch.lengths[rows]
    A, s, e = batch.A, batch.s, batch.e
    T = int(lengths[0])
    B, L = E.shape[0], E.shape[2]
    E = E[:, :T]
    with numpy.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        expA, amax = _shifted_exp(xp, A.reshape(-1))
        expA = expA.reshape(L, L).astype(dtype)
        # emit[b, t] = exp(E[b, t] - m[b, t]); the start scores are folded into t = 0
        m = (batch.peak if everything else batch.peak[rows])[:, :T]
        m = xp.where(xp.isfinite(m), m, 0.0)
        work = numpy.promote_types(E.dtype, dtype)  # E - m rounded once, in the finer dtype
        emit = xp.empty((B, T, L), dtype=dtype)  # filled by _forward, never at padding
        shift = m.astype(work)
        m = m.astype("float64")
        first, m[:, 0] = _shifted_exp(xp, s[None, :] + E[:, 0])
        emit[:, 0] = first
        m[:, 1:] += amax
        alpha, c = _forward(xp, emit, E, shift, expA, lengths)
        if limit.floor is not None:
            keep = ~((alpha > 0) & (alpha < limit.floor)).any(axis=(1, 2))
            if not bool(keep.all()):
                rows, emit, lengths, alpha, c, m = (
                    x[keep] for x in (rows, emit, lengths, alpha, c, m)
                )
                if not rows.shape[0]:
                    return None
            # a label no prefix reaches passes nothing back (its backward message
            # could overflow where it is forbidden to continue)
            emit *= alpha > 0
        B = rows.shape[0]
        n_at = active_rows(lengths, T)
        last = xp.arange(B), lengths - 1
        end_exp, emax = _shifted_exp(xp, e)
        c_end = alpha[last].astype("float64") @ end_exp
        valid = xp.arange(T)[None, :] < lengths[:, None]
        log_c = xp.where(valid, xp.log(c.astype("float64")) + m, 0.0)
        log_z = log_c.sum(axis=1) + xp.log(c_end) + emax
        beta = xp.zeros((B, T, L), dtype=dtype)
        # no path at all (c_end = 0): zero backward messages, hence zero marginals
        beta[last] = xp.where(c_end[:, None] > 0, end_exp[None, :] / c_end[:, None], 0.0)
        transitions = _backward(xp, emit, expA, alpha, beta, c, n_at, counts)
    return _Scaled(rows, lengths, T, alpha, beta, log_c, log_z, transitions)


def _forward(xp, emit, E, shift, expA, lengths):
    """alpha_t = (alpha_{t-1} @ exp(A)) * emit_t / c_t, c_t the normalizer (1 at
    padding), with emit_t = exp(E_t - shift_t) computed here for the running rows
    (``emit[:, 0]`` is given) and kept for the backward pass. In a row without any
    allowed prefix c_t = 0: its messages are set to 0 and its normalizers to 1 (from
    there on), so nothing but its log Z (-inf) shows it."""
    B, T, L = emit.shape
    n_at = active_rows(lengths, T)
    alpha = xp.zeros((B, T, L), dtype=emit.dtype)
    c = xp.ones((B, T), dtype=emit.dtype)
    xp.sum(emit[:, 0], axis=1, out=c[:, 0])
    xp.divide(emit[:, 0], c[:, 0, None], out=alpha[:, 0])
    ones = xp.ones((L,), dtype=emit.dtype)
    work = shift.dtype
    for t in range(1, T):
        n = n_at[t]
        e_t = emit[:n, t]
        if work == emit.dtype:
            xp.subtract(E[:n, t], shift[:n, t, None], out=e_t)
        else:  # E - shift rounded once, in the finer dtype
            e_t[...] = E[:n, t].astype(work, copy=False) - shift[:n, t, None]
        xp.exp(e_t, out=e_t)
        a = alpha[:n, t]
        xp.matmul(alpha[:n, t - 1], expA, out=a)
        a *= e_t
        c_t = xp.matmul(a, ones, out=c[:n, t])
        a /= c_t[:, None]
    dead = ~(c > 0)  # 0, or NaN after 0 / 0
    if bool(dead.any()):
        alpha[xp.isnan(alpha)] = 0.0
        c[dead] = 1.0
    return alpha, c


def _backward(xp, emit, expA, alpha, beta, c, n_at, counts):
    """beta_t = w_{t+1} @ exp(A).T with w_{t+1} = emit_{t+1} * beta_{t+1} / c_{t+1}, the
    forward normalizers, so that alpha_t * beta_t is the marginal; fills ``beta`` and
    returns the expected transition counts xi_t(i, j) = alpha_t(i) exp(A)(i, j) w_{t+1}(j).
    ``emit`` is read at the running rows only."""
    B, T, L = alpha.shape
    expA_T = xp.ascontiguousarray(expA.T)
    if counts == "sequence":  # w[:, t] holds w_{t+1}; 0 past each row
        w = xp.zeros((B, T, L), dtype=alpha.dtype)
    else:
        w = xp.empty((B, L), dtype=alpha.dtype)
    transitions = xp.zeros((L, L), dtype=alpha.dtype) if counts == "batch" else None
    for t in range(T - 2, -1, -1):
        n = n_at[t + 1]
        w_t = xp.multiply(emit[:n, t + 1], beta[:n, t + 1], out=w[:n, t] if counts == "sequence" else w[:n])
        w_t /= c[:n, t + 1, None]
        xp.matmul(w_t, expA_T, out=beta[:n, t])
        if counts == "batch":  # small products: one BLAS thread each (see GEMM_ROWS)
            for i in range(0, n, GEMM_ROWS):
                j = min(i + GEMM_ROWS, n)
                transitions += alpha[i:j, t].T @ w_t[i:j]
    if counts == "sequence":  # sum_t alpha_t(i) w_{t+1}(j), one product per row
        transitions = xp.matmul(alpha.transpose(0, 2, 1), w)
    if transitions is not None:
        transitions = transitions.astype("float64") * expA
    return transitions


def _take_labels(xp, x, labels):
    """``x[b, t, labels[b, t]]`` (n, steps) of ``x`` (n, steps, L)."""
    return xp.take_along_axis(x, labels[..., None], axis=2)[..., 0]


def _logsumexp(xp, x, axis: int):
    shifted, m = _shifted_exp(xp, x, axis=axis)
    return xp.log(shifted.sum(axis=axis)) + m


@dataclass
class _Exact:
    """The float64 log-space recursion over sorted ``rows`` of the batch (first
    ``steps`` positions)."""

    rows: Any
    steps: int
    log_alpha: Any
    log_beta: Any
    log_z: Any
    node_marginals: Any
    transitions: Any

    def complete(self, B: int, T: int) -> bool:
        return self.rows.shape[0] == B and self.steps == T

    def nodes(self, xp):
        return self.node_marginals

    def at(self, xp, labels):
        return _take_labels(xp, self.node_marginals, labels)

    def log_messages(self, xp):
        return self.log_alpha, self.log_beta


def _log_space(xp, batch: _Batch, rows, counts) -> _Exact:
    """The textbook float64 log-space recursion; exact where the scaled form is not."""
    lengths = batch.lengths[rows]
    T = int(lengths[0])
    valid = xp.arange(T)[None, :] < lengths[:, None]
    # padding may hold anything: zero it so that no NaN or inf reaches the sums
    E = xp.where(valid[..., None], batch.E[rows, :T], 0.0).astype("float64")
    A, s, e = batch.A, batch.s, batch.e
    B, L = E.shape[0], E.shape[2]
    n_at = active_rows(lengths, T)
    last = xp.arange(B), lengths - 1
    log_alpha = xp.full((B, T, L), NEG_INF)
    log_beta = xp.full((B, T, L), NEG_INF)
    with numpy.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        log_alpha[:, 0] = s[None, :] + E[:, 0]
        for t in range(1, T):
            n = n_at[t]
            prev = log_alpha[:n, t - 1, :, None] + A[None]
            log_alpha[:n, t] = _logsumexp(xp, prev, axis=1) + E[:n, t]
        log_beta[last] = e[None, :]
        for t in range(T - 2, -1, -1):
            n = n_at[t + 1]
            nxt = A[None] + (E[:n, t + 1] + log_beta[:n, t + 1])[:, None, :]
            log_beta[:n, t] = _logsumexp(xp, nxt, axis=2)
        log_z = _logsumexp(xp, log_alpha[last] + e[None, :], axis=1)
        z = xp.where(xp.isfinite(log_z), log_z, numpy.inf)  # no path: every term is 0
        nodes = xp.exp(log_alpha + log_beta - z[:, None, None])
        transitions = xp.zeros((B, L, L)) if counts is not None else None
        for t in range(1 if counts is not None else T, T):
            n = n_at[t]
            pair = (
                log_alpha[:n, t - 1, :, None]
                + A[None]
                + (E[:n, t] + log_beta[:n, t])[:, None, :]
            )
            transitions[:n] += xp.exp(pair - z[:n, None, None])
    if counts == "batch":
        transitions = transitions.sum(axis=0)
    return _Exact(rows, T, log_alpha, log_beta, log_z, nodes, transitions)
