"""The MEMM output layer: a maximum-entropy Markov model over per-token label scores.

``P(y_t | y_{t-1}, x) = softmax_y(E[t, y] + T[y_{t-1}, y])``, with the start scores in
place of ``T[y_{t-1}]`` at the first token. The layer owns ``T`` and the start scores
and outputs the same ``CRFScores`` as the CRF layer (end scores fixed at zero: a
locally normalized chain has none), so the two models differ only in normalization:
``memm_loss`` normalizes each token given its previous label, ``crf_loss`` the whole
sequence. ``memm_decode`` gives Viterbi (or greedy) paths and the local probability of
each chosen label.
"""
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy
from thinc.api import Model, Ops, registry
from thinc.types import Floats1d, Floats2d, Ints1d

from ..crf import ChainPotentials, viterbi
from ..crf.batching import label_reduce
from ..crf.forward_backward import _logsumexp
from ..crf.scaling import exp_range, gaps, spread
from .crf import CRFGradient, CRFScores, decode_per_doc, init, pad_emissions

InT = List[Floats2d]
NEG_INF = float("-inf")


@registry.layers("spacy_seqlab.MEMM.v1")
def MEMM(nO: Optional[int] = None) -> Model[InT, CRFScores]:
    """Locally normalized chain over per-token label scores (one (T, nO) array per doc):
    transition scores (nO, nO) and start scores (nO,); no transition mask."""
    return Model(
        "memm",
        forward,
        init=init,
        dims={"nO": nO},
        params={"transitions": None, "start": None},
    )


def forward(
    model: Model[InT, CRFScores], X: InT, is_train: bool
) -> Tuple[CRFScores, Callable]:
    ops = model.ops
    n_labels = model.get_dim("nO")
    emissions, lengths = pad_emissions(ops, X, n_labels)
    potentials = ChainPotentials(
        model.get_param("transitions"), model.get_param("start"), ops.alloc1f(n_labels)
    )

    def backprop(dY: CRFGradient) -> InT:
        # dY.end is dropped: the end scores are fixed at zero
        model.inc_grad("transitions", ops.asarray2f(dY.transitions))
        model.inc_grad("start", ops.asarray1f(dY.start))
        d_emissions = ops.asarray3f(dY.emissions)
        return [d_emissions[i, : len(x)] for i, x in enumerate(X)]

    return CRFScores(emissions, lengths, potentials), backprop


def memm_loss(ops: Ops, scores: CRFScores, allowed: List[Any]) -> Tuple[float, CRFGradient]:
    """Cross-entropy of the allowed labels given the GOLD previous label (teacher
    forcing), summed over tokens: ``-log sum_{y allowed} P(y | gold y_{t-1}, x)``.

    ``allowed[i]`` is a (T_i, L) bool array as for ``crf_loss``. A token whose own label
    is missing (all allowed) adds nothing; a negative label (all but one allowed) is
    learned as ``-log(1 - P(label))``. A token whose previous label is not known
    exactly (missing or negative) is skipped: it has no gold context to condition on.
    Gradient w.r.t. the local logits: ``P(y | context) - P(y | context, y allowed)``.
    """
    xp = ops.xp
    E = scores.emissions
    B, T, L = E.shape
    mask = xp.ones((B, T, L), dtype=bool)
    for i, a in enumerate(allowed):
        mask[i, : len(a)] = xp.asarray(a, dtype=bool)
    n_allowed = mask.sum(axis=2)
    gold = xp.where(n_allowed == 1, mask.argmax(axis=2), -1)
    prev = _shift_right(xp, gold)
    valid = xp.arange(T)[None, :] < xp.asarray(scores.lengths)[:, None]
    has_context = (xp.arange(T) == 0)[None, :] | (prev >= 0)
    active = valid & has_context & (n_allowed < L)
    z = local_logits(xp, E, prev, scores.potentials)
    z_allowed = xp.where(mask, z, NEG_INF)
    log_z = _logsumexp(xp, z, axis=2)
    log_z_allowed = _logsumexp(xp, z_allowed, axis=2)
    loss = float((log_z - log_z_allowed)[active].sum(dtype="float64"))
    dz = xp.exp(z - log_z[..., None]) - xp.exp(z_allowed - log_z_allowed[..., None])
    dz = xp.where(active[..., None], dz, 0.0).astype("float32")
    # d T[i, :] sums dz over the tokens whose gold previous label is i
    one_hot = (prev[:, 1:, None] == xp.arange(L)).reshape(-1, L).astype("float32")
    d_trans = one_hot.T @ dz[:, 1:].reshape(-1, L)
    return loss, CRFGradient(
        ops.asarray3f(dz),
        ops.asarray2f(d_trans),
        ops.asarray1f(dz[:, 0].sum(axis=0)),
        ops.alloc1f(L),
    )


def local_logits(xp, emissions, prev, potentials: ChainPotentials):
    """Logits of ``P(y_t | y_{t-1} = prev[b, t], x)``: ``E[b, t] + T[prev[b, t]]``, with
    the start scores at t = 0 (where ``prev`` is ignored); (B, T, L)."""
    A, s, _ = potentials.masked(xp, dtype=emissions.dtype)
    context = A[xp.maximum(prev, 0)]
    context[:, 0] = s
    return emissions + context


def log_normalizers(xp, emissions, potentials: ChainPotentials):
    """``log Z[b, t, i] = log sum_j exp(E[b, t, j] + T[i, j])``: the normalizer of
    position t after label i, (B, T, L) float64.

    One (L, L) product per token, both factors shifted by their max: the largest term
    is at least exp(-(G + S)), G the token's emission gap and S the spread of ``T``,
    so terms lost to underflow are negligible while G + S stays within half of
    float64's exp range; the tokens beyond it take the exact log-sum-exp.
    """
    A = potentials.masked(xp)[0]
    E = xp.asarray(emissions, dtype="float64")
    B, T, L = E.shape
    m = label_reduce(xp, "maximum", E)
    m = xp.where(m > float("-inf"), m, 0.0)  # every label excluded: log Z = -inf
    a = A.max(axis=1)
    with numpy.errstate(divide="ignore", invalid="ignore", under="ignore"):
        out = xp.log(xp.exp(E - m[..., None]) @ xp.exp(A - a[:, None]).T) + m[..., None] + a
    G = gaps(xp, E, m, xp.full((B,), T))
    far = xp.nonzero(G + spread(xp, A) > exp_range("float64") / 2)
    if far[0].shape[0]:
        out[far] = _logsumexp(xp, E[far][:, None, :] + A[None], axis=2)
    return out


def local_log_probs(xp, emissions, potentials: ChainPotentials):
    """``log P(y_t = j | y_{t-1} = i, x)`` as (B, T, L_prev, L), float64; at t = 0 every
    row i holds ``log P(y_0 = j | x)``. For inspection: it takes B * T * L * L memory."""
    A, s, _ = potentials.masked(xp)
    E = xp.asarray(emissions, dtype="float64")
    log_p = E[:, :, None, :] + A[None, None] - log_normalizers(xp, E, potentials)[..., None]
    first = s + E[:, 0]
    log_p[:, 0] = (first - _logsumexp(xp, first, axis=1)[:, None])[:, None, :]
    return log_p


def memm_viterbi(xp, emissions, lengths, potentials: ChainPotentials):
    """Paths (B, T) maximizing ``sum_t log P(y_t | y_{t-1}, x)``, -1 at padding.

    ``-log Z_t(y_{t-1})`` depends only on the previous label, so it is folded into the
    previous position's emissions; the CRF Viterbi then runs with the same transition
    and start scores. Every length must be at least 1.
    """
    T = emissions.shape[1]
    log_z = log_normalizers(xp, emissions, potentials)
    has_next = xp.arange(1, T)[None, :] < xp.asarray(lengths)[:, None]
    folded = xp.asarray(emissions, dtype="float64").copy()
    folded[:, :-1] -= xp.where(has_next[..., None], log_z[:, 1:], 0.0)
    return viterbi(xp, folded, lengths, potentials)[0]


def memm_greedy(xp, emissions, lengths, potentials: ChainPotentials):
    """Paths (B, T) of the most probable label at each position given the label chosen
    before it, -1 at padding."""
    A, s, _ = potentials.masked(xp, dtype="float32")
    B, T, _ = emissions.shape
    paths = xp.empty((B, T), dtype="int64")
    context = s[None, :]
    for t in range(T):
        paths[:, t] = (emissions[:, t] + context).argmax(axis=1)
        context = A[paths[:, t]]
    valid = xp.arange(T)[None, :] < xp.asarray(lengths)[:, None]
    return xp.where(valid, paths, -1)


DECODERS: Dict[str, Callable] = {"viterbi": memm_viterbi, "greedy": memm_greedy}


def memm_decode(
    ops: Ops, scores: CRFScores, decoding: str = "viterbi"
) -> Tuple[List[Ints1d], List[Floats1d]]:
    """Label ids per doc (``decoding``: "viterbi" or "greedy") and the local
    probability ``P(y_t | y_{t-1}, x)`` of each chosen label, in [0, 1] (empty arrays
    for empty docs)."""
    if decoding not in DECODERS:
        raise ValueError(f"decoding must be one of {sorted(DECODERS)}, got {decoding!r}")

    def paths_and_probs(xp, emissions, lengths, potentials):
        paths = DECODERS[decoding](xp, emissions, lengths, potentials)
        z = local_logits(xp, emissions, _shift_right(xp, paths), potentials)
        chosen = xp.take_along_axis(z, xp.maximum(paths, 0)[..., None], axis=2)[..., 0]
        return paths, xp.clip(xp.exp(chosen - _logsumexp(xp, z, axis=2)), 0.0, 1.0)

    return decode_per_doc(ops, scores, paths_and_probs)


def _shift_right(xp, labels):
    """``labels[:, t - 1]`` at each position t (B, T); -1 at t = 0."""
    prev = xp.full_like(labels, -1)
    prev[:, 1:] = labels[:, :-1]
    return prev
