"""Forward-backward for a batch of linear-chain CRFs: log Z, node marginals and
expected transition counts.

The fast path is Rabiner's scaled forward-backward in probability space: each step is
one ``(n, L) @ (L, L)`` matrix product, and the log of each step's normalizer is kept so
log Z stays exact for sequences of any length. Rows whose normalizer underflows (score
ranges beyond float64's exp range) are recomputed in log space.

Sequences are processed longest first, so at step ``t`` only the prefix of rows still
running takes part: the work is proportional to the number of tokens, not to
``B * max_length``.
"""
from dataclasses import dataclass
from typing import Any, Tuple

import numpy

from .potentials import ChainPotentials

NEG_INF = float("-inf")


@dataclass
class Marginals:
    """``log_z`` (B,), ``nodes`` (B, T, L) with zeros at padding, and ``transitions``:
    the expected count of each label bigram, per sequence (B, L, L) or, with
    ``sum_batch``, summed over the batch (L, L)."""

    log_z: Any
    nodes: Any
    transitions: Any


def forward_backward(
    xp, emissions, lengths, potentials: ChainPotentials, *, sum_batch: bool = False
) -> Marginals:
    """Marginals of the CRF over padded ``emissions`` (B, T, L) with ``lengths`` (B,).

    Emissions of -inf exclude a label at a position (see ``clamp_emissions``). Every
    length must be at least 1. ``sum_batch`` sums the transition counts over the batch
    (what a gradient needs) in one matrix product.
    """
    E = xp.asarray(emissions, dtype="float64")
    lengths = xp.asarray(lengths, dtype="int64")
    _check_lengths(xp, E, lengths)
    A, s, e = potentials.masked(xp)
    order = xp.argsort(-lengths, kind="stable")
    E_sorted, len_sorted = E[order], lengths[order]
    with numpy.errstate(divide="ignore", invalid="ignore", over="ignore"):
        result, underflow = _scaled(xp, E_sorted, len_sorted, A, s, e, sum_batch)
        if bool(underflow.any()):
            rows = xp.nonzero(underflow)[0]
            exact = _log_space(xp, E_sorted[rows], len_sorted[rows], A, s, e)
            result.log_z[rows] = exact.log_z
            result.nodes[rows] = exact.nodes
            if sum_batch:
                result.transitions += exact.transitions.sum(axis=0)
            else:
                result.transitions[rows] = exact.transitions
    inverse = xp.empty_like(order)
    inverse[order] = xp.arange(order.shape[0])
    transitions = result.transitions if sum_batch else result.transitions[inverse]
    return Marginals(result.log_z[inverse], result.nodes[inverse], transitions)


def _check_lengths(xp, E, lengths) -> None:
    if E.ndim != 3 or lengths.shape != (E.shape[0],):
        raise ValueError(
            f"Expected emissions (batch, length, n_labels) and lengths (batch,), "
            f"got {E.shape} and {lengths.shape}"
        )
    if E.shape[0] and (int(lengths.min()) < 1 or int(lengths.max()) > E.shape[1]):
        raise ValueError(
            f"Sequence lengths must lie in [1, {E.shape[1]}], got "
            f"[{int(lengths.min())}, {int(lengths.max())}]"
        )


def _active_rows(xp, lengths, T: int):
    """n_t: how many of the length-sorted rows are still running at step t."""
    host = numpy.asarray(lengths.get() if hasattr(lengths, "get") else lengths)
    return [int((host > t).sum()) for t in range(T)]


def _shifted_exp(xp, x, axis: int = -1) -> Tuple[Any, Any]:
    """exp(x - max) and the max, with the max taken as 0 where every entry is -inf."""
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    return xp.exp(x - m), xp.squeeze(m, axis=axis)


def _scaled(xp, E, lengths, A, s, e, sum_batch: bool) -> Tuple[Marginals, Any]:
    """Scaled forward-backward over length-sorted rows; flags rows that underflow."""
    B, T, L = E.shape
    n_at = _active_rows(xp, lengths, T)
    rows = xp.arange(B)
    valid = xp.arange(T)[None, :] < lengths[:, None]
    expA, amax = _shifted_exp(xp, A.reshape(-1))
    expA = expA.reshape(L, L)
    expA_T = xp.ascontiguousarray(expA.T)
    # emit[b, t] = exp(E[b, t] - m[b, t]); the start scores are folded into t = 0
    emit, m = _shifted_exp(xp, E)
    emit[:, 0], m[:, 0] = _shifted_exp(xp, s[None, :] + E[:, 0])
    m[:, 1:] += amax
    # forward: alpha_t = normalize((alpha_{t-1} @ exp(A)) * emit_t), c_t the normalizer
    alpha = xp.zeros((B, T, L))
    c = xp.ones((B, T))
    xp.sum(emit[:, 0], axis=1, out=c[:, 0])
    xp.divide(emit[:, 0], c[:, 0, None], out=alpha[:, 0])
    for t in range(1, T):
        n = n_at[t]
        a = alpha[:n, t]
        xp.matmul(alpha[:n, t - 1], expA, out=a)
        a *= emit[:n, t]
        c_t = xp.sum(a, axis=1, out=c[:n, t])
        a /= c_t[:, None]
    end_exp, emax = _shifted_exp(xp, e)
    c_end = alpha[rows, lengths - 1] @ end_exp
    log_z = xp.where(valid, xp.log(c) + m, 0.0).sum(axis=1) + xp.log(c_end) + emax
    # backward, normalized at each step; the scale cancels in the marginals
    beta = xp.zeros((B, T, L))
    beta[rows, lengths - 1] = end_exp / max(float(end_exp.sum()), 1e-300)
    weighted = xp.empty((B, L))
    for t in range(T - 2, -1, -1):
        n = n_at[t + 1]
        w = xp.multiply(emit[:n, t + 1], beta[:n, t + 1], out=weighted[:n])
        b = beta[:n, t]
        xp.matmul(w, expA_T, out=b)
        b /= b.sum(axis=1)[:, None]
    nodes = alpha * beta
    node_sums = nodes.sum(axis=2)
    nodes /= xp.where(valid, node_sums, 1.0)[..., None]
    underflow = ~xp.isfinite(log_z) | ~(xp.where(valid, node_sums, 1.0) > 0).all(axis=1)
    nodes[underflow] = 0.0
    # xi_t(i, j) = alpha_{t-1}(i) exp(A)(i, j) emit_t(j) beta_t(j) / norm_t, where
    # norm_t = c_t * node_sums_t; v holds the right factor, zero at t = 0 and padding
    norm = xp.where(valid & ~underflow[:, None], c * node_sums, xp.inf)
    norm[:, 0] = xp.inf
    v = emit * beta / norm[..., None]
    if sum_batch:
        # consecutive rows of the flattened arrays pair (t - 1, t); v is 0 across rows
        flat_alpha = alpha.reshape(-1, L)[:-1]
        transitions = (flat_alpha.T @ v.reshape(-1, L)[1:]) * expA
    else:
        transitions = (alpha[:, :-1].transpose(0, 2, 1) @ v[:, 1:]) * expA
    return Marginals(log_z, nodes, transitions), underflow


def _logsumexp(xp, x, axis: int):
    shifted, m = _shifted_exp(xp, x, axis=axis)
    return xp.log(shifted.sum(axis=axis)) + m


def _log_space(xp, E, lengths, A, s, e) -> Marginals:
    """The textbook log-space recursion; exact where the scaled form underflows."""
    B, T, L = E.shape
    n_at = _active_rows(xp, lengths, T)
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
    return Marginals(log_z, nodes, transitions)
