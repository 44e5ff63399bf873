"""An independent float64 log-space reference for the CRF math, one sequence at a time.

Plain textbook recursions with ``numpy.logaddexp``: no scaling, no batching, no code
shared with ``spacy_seqlab.crf``. Inputs are one sequence's emissions ``E`` (n, L),
transitions ``A`` (L, L), start and end scores ``s``, ``e`` (L,), and optional bool
masks (``allowed`` (n, L) labels per position; ``trans``/``start``/``end`` as in a
``TransitionMask``). Forbidden choices score -inf.
"""
from typing import List, Tuple

import numpy

NEG_INF = -numpy.inf


def masked_scores(E, A, s, e, allowed=None, trans=None, start=None, end=None):
    """float64 copies of the scores with -inf where a mask forbids."""
    E, A, s, e = (numpy.array(x, dtype="float64") for x in (E, A, s, e))
    if allowed is not None:
        E = numpy.where(allowed, E, NEG_INF)
    if trans is not None:
        A = numpy.where(trans, A, NEG_INF)
    if start is not None:
        s = numpy.where(start, s, NEG_INF)
    if end is not None:
        e = numpy.where(end, e, NEG_INF)
    return E, A, s, e


def _lse(x, axis):
    with numpy.errstate(invalid="ignore"):
        return numpy.logaddexp.reduce(x, axis=axis)


def forward(E, A, s):
    """log alpha (n, L): log of the summed scores of the prefixes ending in each label."""
    n, L = E.shape
    log_alpha = numpy.empty((n, L))
    log_alpha[0] = s + E[0]
    for t in range(1, n):
        log_alpha[t] = _lse(log_alpha[t - 1][:, None] + A, axis=0) + E[t]
    return log_alpha


def backward(E, A, e):
    """log beta (n, L): log of the summed scores of the suffixes after each label."""
    n, L = E.shape
    log_beta = numpy.empty((n, L))
    log_beta[n - 1] = e
    for t in range(n - 2, -1, -1):
        log_beta[t] = _lse(A + (E[t + 1] + log_beta[t + 1])[None, :], axis=1)
    return log_beta


def log_partition(E, A, s, e) -> float:
    return float(_lse(forward(E, A, s)[-1] + e, axis=0))


def marginals(E, A, s, e) -> Tuple[float, numpy.ndarray, numpy.ndarray]:
    """log Z, node marginals (n, L) and expected transition counts (L, L); zeros (and
    log Z = -inf) when no sequence is allowed."""
    n, L = E.shape
    log_alpha, log_beta = forward(E, A, s), backward(E, A, e)
    log_z = float(_lse(log_alpha[-1] + e, axis=0))
    if log_z == NEG_INF:
        return log_z, numpy.zeros((n, L)), numpy.zeros((L, L))
    nodes = numpy.exp(log_alpha + log_beta - log_z)
    counts = numpy.zeros((L, L))
    for t in range(1, n):
        pair = log_alpha[t - 1][:, None] + A + (E[t] + log_beta[t])[None, :]
        counts += numpy.exp(pair - log_z)
    return log_z, nodes, counts


def segment_prob(E, A, s, e, start: int, labels: List[int]) -> float:
    """P(y[start : start + len(labels)] == labels): the mass of the sequences through
    that path (clamp every other label there to -inf), over Z."""
    log_z = log_partition(E, A, s, e)
    if log_z == NEG_INF:
        return 0.0
    clamped = E.copy()
    for i, label in enumerate(labels):
        keep = clamped[start + i, label]
        clamped[start + i] = NEG_INF
        clamped[start + i, label] = keep
    return float(numpy.exp(log_partition(clamped, A, s, e) - log_z))


def path_score(E, A, s, e, path) -> float:
    """The score of one label sequence (-inf if it is forbidden)."""
    n = len(path)
    total = s[path[0]] + e[path[-1]] + sum(E[t, path[t]] for t in range(n))
    return float(total + sum(A[path[t - 1], path[t]] for t in range(1, n)))


def viterbi_score(E, A, s, e) -> float:
    """The best score of any sequence (max-plus recursion); -inf if none is allowed."""
    best = s + E[0]
    for t in range(1, E.shape[0]):
        best = (best[:, None] + A).max(axis=0) + E[t]
    return float((best + e).max())
