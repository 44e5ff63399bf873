"""Probabilities of fixed label segments under the CRF posterior (constrained
forward-backward): the mass of every sequence that runs through a given path."""
import numpy

from .forward_backward import Messages
from .potentials import ChainPotentials

NEG_INF = float("-inf")


def segment_log_probs(xp, messages: Messages, emissions, potentials: ChainPotentials, rows, starts, paths):
    """log P(y[s_k : s_k + n_k] == paths[k] | x) for K segments, float64 (K,).

    Segment k lies in batch row ``rows[k]``, starts at token ``starts[k]`` and has the
    labels ``paths[k]`` (K, N), padded with -1 after its n_k >= 1 labels. With the
    forward and backward messages this is
    ``log_alpha[s, y_0] + sum_i (A[y_i-1, y_i] + E[s + i, y_i]) + log_beta[s + n - 1, y_n-1] - log Z``,
    and -inf (probability 0) in a row that no label sequence satisfies.
    """
    rows = xp.asarray(rows, dtype="int64")
    starts = xp.asarray(starts, dtype="int64")
    paths = xp.asarray(paths, dtype="int64").reshape(rows.shape[0], -1)
    K, N = paths.shape
    if K == 0:
        return xp.zeros((0,), dtype="float64")
    valid = paths >= 0
    n = valid.sum(axis=1)
    T, L = emissions.shape[1:]
    B = messages.lengths.shape[0]
    if bool(((rows < 0) | (rows >= B)).any()):
        raise ValueError(f"segment rows must lie in [0, {B}), got {int(rows[(rows < 0) | (rows >= B)][0])}")
    if bool((valid[:, 1:] & ~valid[:, :-1]).any()) or bool((paths >= L).any()):
        raise ValueError(f"segment labels must lie in [0, {L}), padded with -1 at the end")
    if bool((n < 1).any()) or bool((starts < 0).any()) or bool((starts + n > messages.lengths[rows]).any()):
        raise ValueError("every segment needs at least one label and must lie inside its row")
    A = potentials.masked(xp, n_labels=L)[0]
    y = xp.where(valid, paths, 0)
    positions = xp.minimum(starts[:, None] + xp.arange(N)[None, :], T - 1)
    last = xp.arange(K), n - 1
    log_z = messages.log_z[rows]
    with numpy.errstate(invalid="ignore"):  # -inf - -inf where no path exists
        total = messages.log_alpha[rows, starts, y[:, 0]]
        total = total + messages.log_beta[rows, positions[last], y[last]]
        total = total - log_z
        if N > 1:
            inner = A[y[:, :-1], y[:, 1:]] + emissions[rows[:, None], positions[:, 1:], y[:, 1:]]
            total = total + xp.where(valid[:, 1:], inner, 0.0).sum(axis=1)
    return xp.where(log_z > NEG_INF, total, NEG_INF)
