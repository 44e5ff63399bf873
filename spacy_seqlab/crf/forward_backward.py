"""Forward-backward for a batch of linear-chain CRFs: log Z, node marginals and
expected transition counts.

The fast path is Rabiner's scaled forward-backward in probability space: each step is
one ``(n, L) @ (L, L)`` matrix product; the log of each step's normalizer is kept so
log Z stays exact for sequences of any length, and the backward pass reuses the
forward normalizers so ``alpha * beta`` are the node marginals. Rows whose scaled
recursion underflows (score gaps beyond the dtype's exp range) are recomputed in
float64 log space.

Sequences are processed longest first, so at step ``t`` only the prefix of rows still
running takes part: the work is proportional to the number of tokens, not to
``B * max_length``.
"""
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy

from .batching import active_rows, check_lengths, inverse_permutation, sort_by_length
from .potentials import ChainPotentials

NEG_INF = float("-inf")
# Rows per matrix product when summing transition counts: small products stay on one
# BLAS thread, which avoids stalls when OpenBLAS splits tiny GEMMs across busy cores.
GEMM_ROWS = 96
COUNT_MODES = ("sequence", "batch", None)


@dataclass
class Marginals:
    """``log_z`` (B,), ``nodes`` (B, T, L) with zeros at padding, and ``transitions``:
    expected label bigram counts per sequence (B, L, L) with ``counts="sequence"``,
    summed over the batch (L, L) with ``counts="batch"``, or None."""

    log_z: Any
    nodes: Any
    transitions: Any


@dataclass
class Messages:
    """Log forward messages ``log_alpha`` (B, T, L), log backward messages
    ``log_beta`` (B, T, L), and ``log_z`` (B,)."""

    log_alpha: Any
    log_beta: Any
    log_z: Any


@dataclass
class _Scaled:
    """Scaled messages (alpha * beta is the node marginal), the log normalizer of each
    step ``log_c`` (B, T), log Z, transition counts, and rows that underflowed."""

    alpha: Any
    beta: Any
    log_c: Any
    log_z: Any
    transitions: Any
    underflow: Any


@dataclass
class _Exact:
    """What the log-space recursion gives for underflowing rows."""

    log_alpha: Any
    log_beta: Any
    log_z: Any
    nodes: Any
    transitions: Any


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

    Emissions of -inf exclude a label at a position (see ``clamp_emissions``). Every
    length must be at least 1. ``counts`` picks the transition counts returned
    ("batch" is what a gradient needs; None skips them, for decoding). ``dtype`` is
    the precision of the recursion; log Z is always accumulated in float64.
    """
    if counts not in COUNT_MODES:
        raise ValueError(f"counts must be one of {COUNT_MODES}, got {counts!r}")
    run = _run(xp, emissions, lengths, potentials, counts, dtype)
    result = run.scaled
    nodes = result.alpha
    nodes *= result.beta
    if run.exact is not None:  # underflowing rows: the exact log-space results
        bad, exact = run.exact
        nodes[bad] = exact.nodes
        result.log_z[bad] = exact.log_z
        if counts == "sequence":
            result.transitions[bad] = exact.transitions
        elif counts == "batch":
            good = xp.nonzero(~result.underflow)[0]
            with numpy.errstate(all="ignore"):
                clean = _scaled(xp, run.E[good], run.lengths[good], *run.potentials, counts, dtype)
            result.transitions = clean.transitions + exact.transitions.sum(axis=0)
    inverse = inverse_permutation(xp, run.order)
    transitions = result.transitions
    if counts == "sequence":
        transitions = transitions[inverse]
    return Marginals(result.log_z[inverse], nodes[inverse], transitions)


def log_messages(xp, emissions, lengths, potentials: ChainPotentials) -> Messages:
    """Log forward and backward messages (B, T, L) and log Z (B,), float64.

    ``log_alpha[b, t, j]`` scores every prefix ending in label j at t (emission
    included), ``log_beta[b, t, j]`` every suffix after it (end score included), so
    ``log_alpha + log_beta - log_z`` is the log marginal; -inf at padding.
    """
    run = _run(xp, emissions, lengths, potentials, None, "float64")
    scaled = run.scaled
    T = scaled.alpha.shape[1]
    valid = (xp.arange(T)[None, :] < run.lengths[:, None])[..., None]
    log_c = scaled.log_c.cumsum(axis=1)
    with numpy.errstate(divide="ignore"):
        # the scaled messages times the running normalizers give the true messages
        log_alpha = xp.log(scaled.alpha) + log_c[..., None]
        log_beta = xp.log(scaled.beta) + (scaled.log_z[:, None] - log_c)[..., None]
    log_alpha = xp.where(valid, log_alpha, NEG_INF)
    log_beta = xp.where(valid, log_beta, NEG_INF)
    if run.exact is not None:
        bad, exact = run.exact
        log_alpha[bad] = exact.log_alpha
        log_beta[bad] = exact.log_beta
        scaled.log_z[bad] = exact.log_z
    inverse = inverse_permutation(xp, run.order)
    return Messages(log_alpha[inverse], log_beta[inverse], scaled.log_z[inverse])


@dataclass
class _Run:
    """The scaled recursion over length-sorted rows, and the exact log-space results of
    the rows where it underflowed (``exact``: their indices and ``_Exact``)."""

    order: Any
    E: Any
    lengths: Any
    potentials: Tuple[Any, Any, Any]
    scaled: _Scaled
    exact: Optional[Tuple[Any, _Exact]]


def _run(xp, emissions, lengths, potentials, counts, dtype) -> _Run:
    E = xp.asarray(emissions)
    if E.dtype not in (xp.float32, xp.float64):
        E = E.astype("float64")
    lengths = xp.asarray(lengths, dtype="int64")
    check_lengths(xp, E, lengths)
    A, s, e = potentials.masked(xp)
    order, E_sorted, len_sorted = sort_by_length(xp, E, lengths)
    with numpy.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        scaled = _scaled(xp, E_sorted, len_sorted, A, s, e, counts, dtype)
        exact = None
        if bool(scaled.underflow.any()):
            bad = xp.nonzero(scaled.underflow)[0]
            exact = (bad, _log_space(xp, E_sorted[bad].astype("float64"), len_sorted[bad], A, s, e))
    return _Run(order, E_sorted, len_sorted, (A, s, e), scaled, exact)


def _shifted_exp(xp, x, axis: int = -1) -> Tuple[Any, Any]:
    """exp(x - max) and the max, with the max taken as 0 where every entry is -inf."""
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    return xp.exp(x - m), xp.squeeze(m, axis=axis)


def _scaled(xp, E, lengths, A, s, e, counts, dtype) -> _Scaled:
    """Scaled forward-backward over length-sorted rows; flags rows that underflow."""
    B, T, L = E.shape
    n_at = active_rows(lengths, T)
    rows = xp.arange(B)
    valid = xp.arange(T)[None, :] < lengths[:, None]
    expA, amax = _shifted_exp(xp, A.reshape(-1))
    expA = expA.reshape(L, L).astype(dtype)
    expA_T = xp.ascontiguousarray(expA.T)
    # emit[b, t] = exp(E[b, t] - m[b, t]); the start scores are folded into t = 0
    m = E.max(axis=2, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0).astype(E.dtype)
    emit = xp.exp((E - m).astype(dtype, copy=False))
    m = m[..., 0].astype("float64")
    first, m[:, 0] = _shifted_exp(xp, s[None, :] + E[:, 0])
    emit[:, 0] = first
    m[:, 1:] += amax
    # forward: alpha_t = (alpha_{t-1} @ exp(A)) * emit_t / c_t, c_t the normalizer
    alpha = xp.zeros((B, T, L), dtype=dtype)
    c = xp.ones((B, T), dtype=dtype)
    xp.sum(emit[:, 0], axis=1, out=c[:, 0])
    xp.divide(emit[:, 0], c[:, 0, None], out=alpha[:, 0])
    ones = xp.ones((L,), dtype=dtype)
    for t in range(1, T):
        n = n_at[t]
        a = alpha[:n, t]
        xp.matmul(alpha[:n, t - 1], expA, out=a)
        a *= emit[:n, t]
        c_t = xp.matmul(a, ones, out=c[:n, t])
        a /= c_t[:, None]
    end_exp, emax = _shifted_exp(xp, e)
    c_end = alpha[rows, lengths - 1].astype("float64") @ end_exp
    log_c = xp.where(valid, xp.log(c.astype("float64")) + m, 0.0)
    log_z = log_c.sum(axis=1) + xp.log(c_end) + emax
    # backward with the forward normalizers: beta_t = (w_{t+1} @ exp(A).T),
    # w_{t+1} = emit_{t+1} * beta_{t+1} / c_{t+1}; then alpha_t * beta_t is the marginal
    beta = xp.zeros((B, T, L), dtype=dtype)
    beta[rows, lengths - 1] = (end_exp[None, :] / c_end[:, None]).astype(dtype)
    w = xp.empty((B, L), dtype=dtype)
    if counts == "batch":
        transitions = xp.zeros((L, L), dtype=dtype)
    elif counts == "sequence":
        transitions = xp.zeros((B, L, L), dtype=dtype)
    else:
        transitions = None
    for t in range(T - 2, -1, -1):
        n = n_at[t + 1]
        w_t = xp.multiply(emit[:n, t + 1], beta[:n, t + 1], out=w[:n])
        w_t /= c[:n, t + 1, None]
        xp.matmul(w_t, expA_T, out=beta[:n, t])
        # xi_{t,t+1}(i, j) = alpha_t(i) exp(A)(i, j) w_{t+1}(j)
        if counts == "batch":
            for i in range(0, n, GEMM_ROWS):
                j = min(i + GEMM_ROWS, n)
                transitions += alpha[i:j, t].T @ w_t[i:j]
        elif counts == "sequence":
            transitions[:n] += alpha[:n, t, :, None] * w_t[:, None, :]
    underflow = ~xp.isfinite(log_z) | ~xp.isfinite(alpha.sum(axis=(1, 2)))
    underflow |= ~xp.isfinite(beta.sum(axis=(1, 2)))
    underflow |= ~((c > 0) | ~valid).all(axis=1)
    if transitions is not None:
        transitions = transitions.astype("float64") * expA
    return _Scaled(alpha, beta, log_c, log_z, transitions, underflow)


def _logsumexp(xp, x, axis: int):
    shifted, m = _shifted_exp(xp, x, axis=axis)
    return xp.log(shifted.sum(axis=axis)) + m


def _log_space(xp, E, lengths, A, s, e) -> _Exact:
    """The textbook float64 log-space recursion; exact where the scaled form underflows."""
    B, T, L = E.shape
    n_at = active_rows(lengths, T)
    rows = xp.arange(B)
    log_alpha = xp.full((B, T, L), NEG_INF)
    log_beta = xp.full((B, T, L), NEG_INF)
    log_alpha[:, 0] = s[None, :] + E[:, 0]
    for t in range(1, T):
        n = n_at[t]
        prev = log_alpha[:n, t - 1, :, None] + A[None]
        log_alpha[:n, t] = _logsumexp(xp, prev, axis=1) + E[:n, t]
    log_beta[rows, lengths - 1] = e[None, :]
    for t in range(T - 2, -1, -1):
        n = n_at[t + 1]
        nxt = A[None] + (E[:n, t + 1] + log_beta[:n, t + 1])[:, None, :]
        log_beta[:n, t] = _logsumexp(xp, nxt, axis=2)
    log_z = _logsumexp(xp, log_alpha[rows, lengths - 1] + e[None, :], axis=1)
    finite = xp.isfinite(log_z)
    z = xp.where(finite, log_z, 0.0)
    nodes = xp.exp(log_alpha + log_beta - z[:, None, None])
    transitions = xp.zeros((B, L, L))
    for t in range(1, T):
        pair = (
            log_alpha[:, t - 1, :, None]
            + A[None]
            + (E[:, t] + log_beta[:, t])[:, None, :]
        )
        transitions += xp.exp(pair - z[:, None, None])
    nodes = xp.where(finite[:, None, None], nodes, 0.0)
    transitions = xp.where(finite[:, None, None], transitions, 0.0)
    return _Exact(log_alpha, log_beta, log_z, nodes, transitions)
