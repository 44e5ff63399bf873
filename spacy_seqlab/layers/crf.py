"""The CRF output layer: owns the transition, start and end scores of a linear chain.

``forward`` pads the per-doc emissions into a ``CRFScores`` batch; ``crf_loss`` turns
that batch and the gold labels into the loss and a ``CRFGradient``; ``backprop``
accumulates the transition gradients and hands the emission gradients back per doc.
``crf_decode`` gives Viterbi paths and the posterior marginal of each chosen label.
"""
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

from thinc.api import Model, Ops, registry
from thinc.types import Floats1d, Floats2d, Floats3d, Ints1d

from ..crf import (
    ChainPotentials,
    clamp_emissions,
    forward_backward,
    gold_counts,
    sequence_scores,
)
from ..crf.decode import decode
from ..crf.batching import check_emissions

InT = List[Floats2d]


@dataclass
class CRFScores:
    """A padded batch: emissions (B, T, L), lengths (B,), and the chain potentials."""

    emissions: Floats3d
    lengths: Ints1d
    potentials: ChainPotentials


@dataclass
class CRFGradient:
    """d loss / d scores: emissions (B, T, L), transitions (L, L), start and end (L,)."""

    emissions: Floats3d
    transitions: Floats2d
    start: Floats1d
    end: Floats1d


@registry.layers("spacy_seqlab.CRF.v1")
def CRF(nO: Optional[int] = None) -> Model[InT, CRFScores]:
    """Linear-chain CRF over per-token label scores (one (T, nO) array per doc).

    ``model.attrs["transition_mask"]`` may hold a ``TransitionMask`` of allowed
    bigrams (set by components that decode label schemes such as BILUO).
    """
    return Model(
        "crf",
        forward,
        init=init,
        dims={"nO": nO},
        params={"transitions": None, "start": None, "end": None},
        attrs={"transition_mask": None},
    )


def init(model: Model[InT, CRFScores], X: Optional[InT] = None, Y: Optional[Any] = None):
    """Infer ``nO`` from a sample if unset; zero transition, start (and end) scores."""
    if not model.has_dim("nO"):
        sample = X if X else Y
        if sample:
            model.set_dim("nO", sample[0].shape[1])
    n = model.get_dim("nO")
    model.set_param("transitions", model.ops.alloc2f(n, n))
    for name in ("start", "end"):
        if name in model.param_names:
            model.set_param(name, model.ops.alloc1f(n))
    return model


def potentials_of(model: Model) -> ChainPotentials:
    return ChainPotentials(
        model.get_param("transitions"),
        model.get_param("start"),
        model.get_param("end"),
        model.attrs["transition_mask"],
    )


def pad_emissions(ops: Ops, X: InT, n_labels: int) -> Tuple[Floats3d, Ints1d]:
    """Per-doc (T_i, L) scores padded to (B, T, L), and the lengths; a batch of empty
    docs gets one padding step so the arrays keep their rank. Scores that are not
    finite raise ValueError naming the doc (batch row) and token (position)."""
    lengths = ops.asarray1i([len(x) for x in X])
    if not sum(len(x) for x in X):
        return ops.alloc3f(len(X), 1, n_labels), lengths
    emissions = ops.pad(X)
    if not all(bool(ops.xp.isfinite(x).all()) for x in X):  # then say where
        check_emissions(ops.xp, emissions, ops.xp.asarray(lengths), allow_excluded=False)
    return emissions, lengths


def forward(
    model: Model[InT, CRFScores], X: InT, is_train: bool
) -> Tuple[CRFScores, Callable]:
    ops = model.ops
    emissions, lengths = pad_emissions(ops, X, model.get_dim("nO"))
    scores = CRFScores(emissions, lengths, potentials_of(model))

    def backprop(dY: CRFGradient) -> InT:
        model.inc_grad("transitions", ops.asarray2f(dY.transitions))
        model.inc_grad("start", ops.asarray1f(dY.start))
        model.inc_grad("end", ops.asarray1f(dY.end))
        d_emissions = ops.asarray3f(dY.emissions)
        return [d_emissions[i, : len(x)] for i, x in enumerate(X)]

    return scores, backprop


def crf_loss(
    ops: Ops, scores: CRFScores, allowed: List[Any], *, dtype: str = "float32"
) -> Tuple[float, CRFGradient]:
    """Negative log-likelihood of the allowed labels, summed over the batch.

    ``allowed[i]`` is a (T_i, L) bool array: the labels that agree with the gold
    annotation at each token: one label where the tag is known, all where it is
    missing (the loss marginalizes over those), all but one for a negative label.
    The gradient is the classic one: marginals minus the (clamped) gold marginals.
    Sequences with no information (every label allowed everywhere) are skipped.
    ``dtype`` is the precision of the forward-backward recursions.
    """
    xp = ops.xp
    B, T, L = scores.emissions.shape
    lengths = xp.asarray(scores.lengths, dtype="int64")
    valid = xp.arange(T)[None, :] < lengths[:, None]
    if [len(a) for a in allowed] != lengths.tolist():
        raise ValueError(f"Expected one (length, {L}) allowed-labels array per doc, of the "
                         f"docs' lengths {lengths.tolist()}, got {[len(a) for a in allowed]}")
    mask = xp.ones((B, T, L), dtype=bool)
    for i, a in enumerate(allowed):
        mask[i, : len(a)] = xp.asarray(a, dtype=bool)
    n_allowed = mask.sum(axis=2)
    informative = ((n_allowed < L) & valid).any(axis=1)
    if not bool(informative.any()):
        d_emissions = xp.zeros((B, T, L), dtype="float32")
        return 0.0, _gradient(ops, d_emissions, xp.zeros((L, L)), lengths)
    rows = xp.nonzero(informative)[0]
    E, lengths, mask, n_allowed, valid = (
        _take(x, rows) for x in (scores.emissions, lengths, mask, n_allowed, valid)
    )
    full = forward_backward(xp, E, lengths, scores.potentials, counts="batch", dtype=dtype)
    loss = float(full.log_z.sum())
    d_trans = full.transitions
    d_rows = full.nodes.astype("float32", copy=False)  # d loss / d emissions of ``rows``
    # the clamped CRF: gold counts where every token is labeled, forward-backward else
    labeled = ((n_allowed == 1) | ~valid).all(axis=1)
    if bool(labeled.any()):
        sel = xp.nonzero(labeled)[0]
        gold = _take(mask, sel).argmax(axis=2)
        nodes, trans = gold_counts(xp, _take(lengths, sel), gold, L)
        loss -= float(sequence_scores(xp, _take(E, sel), _take(lengths, sel), gold, scores.potentials).sum())
        _subtract_rows(d_rows, sel, nodes)
        d_trans = d_trans - trans
    if not bool(labeled.all()):
        sel = xp.nonzero(~labeled)[0]
        clamped = forward_backward(
            xp, clamp_emissions(xp, E[sel], mask[sel]), lengths[sel], scores.potentials,
            counts="batch", dtype=dtype,
        )
        loss -= float(clamped.log_z.sum())
        _subtract_rows(d_rows, sel, clamped.nodes)
        d_trans = d_trans - clamped.transitions
    if rows.shape[0] == B:
        d_emissions = d_rows
    else:
        d_emissions = xp.zeros((B, T, L), dtype="float32")
        d_emissions[rows] = d_rows
    return loss, _gradient(ops, d_emissions, d_trans, scores.lengths)


def _take(x, rows):
    """``x[rows]``, without a copy when ``rows`` are all of x's rows in order."""
    return x if rows.shape[0] == x.shape[0] else x[rows]


def _subtract_rows(x, rows, values) -> None:
    """``x[rows] -= values`` (in place on x itself when ``rows`` are all its rows)."""
    if rows.shape[0] == x.shape[0]:
        x -= values
    else:
        x[rows] -= values


def _gradient(ops: Ops, d_emissions, d_trans, lengths) -> CRFGradient:
    """Pack the emission and transition gradients; start and end gradients are the
    emission gradients at each sequence's first and last token."""
    xp = ops.xp
    nonempty = xp.nonzero(lengths > 0)[0]
    d_start = d_emissions[nonempty, 0].sum(axis=0)
    d_end = d_emissions[nonempty, lengths[nonempty] - 1].sum(axis=0)
    return CRFGradient(
        ops.asarray3f(d_emissions),
        ops.asarray2f(d_trans.astype("float32")),
        ops.asarray1f(d_start),
        ops.asarray1f(d_end),
    )


def crf_decode(ops: Ops, scores: CRFScores) -> Tuple[List[Ints1d], List[Floats1d]]:
    """Viterbi label ids per doc, and the posterior marginal of each chosen label in
    [0, 1] (empty arrays for empty docs). Long docs run in segments (``long_rows``)."""
    return decode_per_doc(ops, scores, lambda *args: decode(*args, marginals=True))


def crf_viterbi(ops: Ops, scores: CRFScores) -> List[Ints1d]:
    """Viterbi label ids per doc (an empty array for an empty doc); long docs run in
    segments (``long_rows``)."""
    return decode_per_doc(ops, scores, lambda *args: decode(*args, marginals=False))[0]


def decode_per_doc(
    ops: Ops, scores: CRFScores, decode: Callable
) -> Tuple[List[Ints1d], List[Floats1d]]:
    """Run ``decode(xp, emissions, lengths, potentials) -> (paths, values or None)``,
    both (B, T), once over the non-empty docs of ``scores`` (longest first), and cut
    its output per doc, in batch order: empty arrays for empty docs."""
    batch = _nonempty_longest_first(ops, scores)
    paths_out = [ops.alloc1i(0) for _ in range(batch.size)]
    values_out = [ops.alloc1f(0) for _ in range(batch.size)]
    if not batch.rows:
        return paths_out, values_out
    paths, values = decode(ops.xp, batch.emissions, batch.lengths, scores.potentials)
    for k, (i, n) in enumerate(zip(batch.rows, batch.lengths.tolist())):
        paths_out[i] = paths[k, :n]
        if values is not None:
            values_out[i] = values[k, :n]
    return paths_out, values_out


@dataclass
class _Batch:
    """The non-empty rows of a ``CRFScores`` batch, longest first: their indices in the
    batch, emissions and lengths; ``size`` is the size of the whole batch."""

    size: int
    rows: List[int]
    emissions: Floats3d
    lengths: Ints1d


def _nonempty_longest_first(ops: Ops, scores: CRFScores) -> _Batch:
    # sorting once here spares Viterbi and forward-backward a copy each
    xp = ops.xp
    lengths = xp.asarray(scores.lengths, dtype="int64")
    order = xp.argsort(-lengths, kind="stable")
    order = order[lengths[order] > 0]
    return _Batch(lengths.shape[0], order.tolist(), scores.emissions[order], lengths[order])
