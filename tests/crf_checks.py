"""One CRF problem checked against the float64 log-space reference and, where small
enough, brute force: shared by the property tests and benchmarks/fuzz_crf.py.

``compare(problem)`` runs every function of ``spacy_seqlab.crf`` on the problem and
returns the disagreements as strings (empty: all exact); NaN in an output counts as
its own kind of failure ("silent NaN").
"""
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

import numpy

from spacy_seqlab.crf import (
    ChainPotentials,
    decode,
    TransitionMask,
    clamp_emissions,
    forward_backward,
    log_messages,
    nbest,
    segment_log_probs,
    viterbi,
)

from . import crf_reference as reference
from .crf_brute_force import enumerate_sequences

NAN = "silent NaN"
ENUMERATION_LIMIT = 729  # label sequences, for brute force n-best


@dataclass
class Problem:
    """A padded batch: emissions (B, T, L) in their dtype (anything at padding),
    lengths (B,), float64 potentials, an optional transition mask and optional
    allowed labels (B, T, L) that clamp the emissions."""

    emissions: Any
    lengths: Any
    transitions: Any
    start: Any
    end: Any
    mask: Optional[TransitionMask] = None
    allowed: Any = None
    segments: List[Any] = field(default_factory=list)  # (row, start, labels)

    @property
    def potentials(self) -> ChainPotentials:
        return ChainPotentials(self.transitions, self.start, self.end, self.mask)

    def clamped(self):
        if self.allowed is None:
            return self.emissions
        return clamp_emissions(numpy, self.emissions, self.allowed).astype(self.emissions.dtype)

    def row(self, b: int):
        """Row b's masked float64 scores for the reference: E (n, L), A, s, e."""
        n = int(self.lengths[b])
        m = self.mask
        return reference.masked_scores(
            self.emissions[b, :n], self.transitions, self.start, self.end,
            None if self.allowed is None else self.allowed[b, :n],
            None if m is None else m.transitions, None if m is None else m.start,
            None if m is None else m.end,
        )

    def scale(self) -> float:
        """Magnitude of a path score: tolerances are relative to it."""
        E = self.emissions.astype("float64")
        valid = numpy.arange(E.shape[1])[None, :] < self.lengths[:, None]
        peak = float(numpy.abs(E[valid]).max()) if valid.any() else 0.0
        pot = max(float(numpy.abs(x).max()) for x in (self.transitions, self.start, self.end))
        return 1.0 + (peak + pot) * (int(self.lengths.max()) + 1)


def compare(problem: Problem, *, brute_force: bool = True) -> List[str]:
    """Every disagreement of the package with the reference on ``problem``."""
    errors: List[str] = []
    E, lengths, pot = problem.clamped(), problem.lengths, problem.potentials
    B, T, L = E.shape
    valid = numpy.arange(T)[None, :] < lengths[:, None]
    refs = [reference.marginals(*problem.row(b)) for b in range(B)]
    single = E.dtype == numpy.float32
    # a float32 recursion sums T float32 terms: error up to ~T ulps of the path scale
    eps = problem.scale() * (6e-8 * (T + 2) if single else 1e-12)

    for dtype, counts, tol in (("float64", "sequence", 1e-9), ("float32", "batch", 2e-4)):
        out = forward_backward(numpy, E, lengths, pot, counts=counts, dtype=dtype)
        where = f"forward_backward({dtype}, {counts})"
        if _has_nan(out.log_z, out.nodes, out.transitions):
            errors.append(f"{NAN}: {where}")
            continue
        for b, (log_z, nodes, trans) in enumerate(refs):
            n = int(lengths[b])
            slack = (2e-6 * n + 1e-7 * abs(log_z)) if dtype == "float32" else 0.0
            if not _close(out.log_z[b], log_z, eps + slack):
                errors.append(f"{where} log Z row {b}: {out.log_z[b]!r} != {log_z!r}")
            if numpy.abs(out.nodes[b, :n] - nodes).max() > tol:
                errors.append(f"{where} nodes row {b}: max diff {numpy.abs(out.nodes[b, :n] - nodes).max():.3g}")
            if counts == "sequence" and numpy.abs(out.transitions[b] - trans).max() > tol * n:
                errors.append(f"{where} transition counts row {b}")
        if numpy.abs(out.nodes[~valid]).max(initial=0.0) != 0.0:
            errors.append(f"{where}: nonzero marginals at padding")
        if counts == "batch":
            want = sum(trans for _, _, trans in refs)
            if numpy.abs(out.transitions - want).max() > tol * max(1, int(lengths.sum())):
                errors.append(f"{where}: summed transition counts")

    messages = log_messages(numpy, E, lengths, pot)
    if _has_nan(messages.log_z) or _has_nan(messages.log_alpha[valid], messages.log_beta[valid]):
        errors.append(f"{NAN}: log_messages")
    else:
        for b, (log_z, nodes, _) in enumerate(refs):
            n = int(lengths[b])
            if not _close(messages.log_z[b], log_z, eps):
                errors.append(f"log_messages log Z row {b}")
            la, lb = messages.log_alpha[b, :n], messages.log_beta[b, :n]
            ref_alpha = reference.forward(*problem.row(b)[:3])
            with numpy.errstate(invalid="ignore"):
                same = (la == ref_alpha) | (numpy.abs(la - ref_alpha) <= eps)
            if not same.all():
                errors.append(f"log_messages log alpha row {b}")
            if log_z > -numpy.inf:
                with numpy.errstate(invalid="ignore"):
                    marg = numpy.exp(la + lb - messages.log_z[b])
                if numpy.abs(numpy.nan_to_num(marg, nan=2.0) - nodes).max() > 1e-9:
                    errors.append(f"log_messages marginals row {b}")
        errors += _check_segments(problem, E, pot, messages)

    errors += _check_viterbi(problem, E, lengths, pot, eps)
    errors += _check_decode(E, lengths, pot, refs)
    if brute_force:
        errors += _check_nbest(problem, E, pot, eps)
    return errors


def _check_segments(problem: Problem, E, pot, messages) -> List[str]:
    if not problem.segments:
        return []
    rows = [r for r, _, _ in problem.segments]
    starts = [s for _, s, _ in problem.segments]
    width = max(len(p) for _, _, p in problem.segments)
    paths = numpy.full((len(rows), width), -1)
    for k, (_, _, labels) in enumerate(problem.segments):
        paths[k, : len(labels)] = labels
    got = numpy.exp(segment_log_probs(numpy, messages, E, pot, rows, starts, paths))
    errors = [f"{NAN}: segment_log_probs"] if _has_nan(got) else []
    for k, (row, start, labels) in enumerate(problem.segments):
        want = reference.segment_prob(*problem.row(row), start, list(labels))
        if not abs(got[k] - want) <= 1e-9:
            errors.append(f"segment {k} (row {row}, start {start}, {labels}): {got[k]!r} != {want!r}")
    return errors


def _check_viterbi(problem: Problem, E, lengths, pot, eps: float) -> List[str]:
    paths, scores = viterbi(numpy, E, lengths, pot)
    errors = [f"{NAN}: viterbi"] if _has_nan(scores) else []
    for b in range(E.shape[0]):
        n = int(lengths[b])
        row = problem.row(b)
        best = reference.viterbi_score(*row)
        if (paths[b, n:] != -1).any():
            errors.append(f"viterbi row {b}: padding not -1")
        if best == -numpy.inf:
            if scores[b] != -numpy.inf:
                errors.append(f"viterbi row {b}: a score for a row without valid path")
            continue
        got = reference.path_score(*row, paths[b, :n].tolist())
        if not (_close(scores[b], best, eps) and _close(got, best, eps)):
            errors.append(f"viterbi row {b}: path scores {got!r} (reported {scores[b]!r}), best {best!r}")
    return errors


def _check_decode(E, lengths, pot, refs) -> List[str]:
    """``decode`` (what components predict with): the paths of ``viterbi`` and, at
    them, the reference marginals (float64, and float32 within its rounding)."""
    want, _ = viterbi(numpy, E, lengths, pot)
    errors = []
    for dtype, tol in (("float64", 1e-9), ("float32", 2e-4)):
        paths, chosen = decode(numpy, E, lengths, pot, marginals=True, dtype=dtype)
        if _has_nan(chosen):
            errors.append(f"{NAN}: decode({dtype})")
            continue
        if not (paths == want).all():
            errors.append(f"decode({dtype}): paths differ from viterbi's")
            continue
        for b, (log_z, nodes, _) in enumerate(refs):
            n = int(lengths[b])
            if log_z == -numpy.inf:
                continue
            at_path = numpy.clip(nodes[numpy.arange(n), paths[b, :n]], 0.0, 1.0)  # decode clips rounding past 1
            if numpy.abs(chosen[b, :n] - at_path).max() > tol or (chosen[b, n:] != 0).any():
                errors.append(f"decode({dtype}) marginals row {b}: max diff {numpy.abs(chosen[b, :n] - at_path).max():.3g}")
    paths, chosen = decode(numpy, E, lengths, pot, marginals=False)
    if chosen is not None or not (paths == want).all():
        errors.append("decode without marginals: not viterbi's paths alone")
    return errors


def _check_nbest(problem: Problem, E, pot, eps: float, n: int = 4) -> List[str]:
    length = int(problem.lengths[0])
    L = E.shape[2]
    if L**length > ENUMERATION_LIMIT:
        return []
    Er, A, s, e = problem.row(0)
    _, all_scores = enumerate_sequences(Er, length, A, s, e)
    want = numpy.sort(all_scores[all_scores > -numpy.inf])[::-1][:n]
    paths, got = nbest(numpy, E[0, :length], pot, n)
    if len(got) != len(want) or not all(_close(g, w, eps) for g, w in zip(got, want)):
        return [f"nbest: scores {list(got)} != {list(want)}"]
    true = [reference.path_score(Er, A, s, e, p) for p in paths.tolist()]
    if not all(_close(t, w, eps) for t, w in zip(true, want)):
        return ["nbest: returned paths do not score as reported"]
    return []


def _close(a, b, tol: float) -> bool:
    if a == b:  # equal infinities included
        return True
    return bool(abs(float(a) - float(b)) <= tol)


def _has_nan(*arrays) -> bool:
    return any(a is not None and bool(numpy.isnan(numpy.asarray(a)).any()) for a in arrays)


MASKS = ("none", "random", "bio", "chains")
CLAMPS = ("none", "random", "gold")
GARBAGE = (0.0, 1e6, numpy.nan, numpy.inf, -numpy.inf)


def random_problem(
    rng,
    *,
    n_labels: int,
    lengths: List[int],
    pad: int = 0,
    dtype: str = "float64",
    scale: float = 1.0,
    cancel: float = 0.0,
    mask: str = "none",
    clamp: str = "none",
    garbage: float = 0.0,
    n_segments: int = 2,
) -> Problem:
    """A random problem: normal scores times ``scale`` (emissions, transitions, start
    and end each get their own factor in [scale / 10, scale]); ``cancel`` > 0 sinks one
    label's emissions by that much and lifts its transition and end scores by as much
    (the label dominates although its emission underflows exp); ``pad`` extra steps
    filled with ``garbage``; a transition ``mask`` ("random", "bio": a BIO-like label
    set, "chains": blocks no path leaves) and ``clamp`` (random allowed labels, or
    "gold": one label or all per position)."""
    L, B = n_labels, len(lengths)
    T = max(lengths) + pad
    factors = scale * 10 ** rng.uniform(-1, 0, size=4)
    E = rng.normal(size=(B, T, L)) * factors[0]
    A = rng.normal(size=(L, L)) * factors[1]
    s, e = rng.normal(size=L) * factors[2], rng.normal(size=L) * factors[3]
    if cancel:
        j = int(rng.integers(L))
        split = rng.uniform(0, 1)
        E[:, :, j] -= cancel
        A[:, j] += cancel * split * rng.uniform(1, 1.2)
        e[j] += cancel * (1 - split) * rng.uniform(1, 1.2)
    valid = numpy.arange(T)[None, :] < numpy.asarray(lengths)[:, None]
    E[~valid] = garbage
    problem = Problem(E.astype(dtype), numpy.asarray(lengths), A, s, e)
    problem.mask = _mask(rng, mask, L)
    problem.allowed = _allowed(rng, clamp, B, T, L)
    problem.segments = [_segment(rng, b, int(lengths[b]), L) for b in rng.integers(B, size=n_segments)]
    return problem


def _mask(rng, kind: str, L: int) -> Optional[TransitionMask]:
    if kind == "none":
        return None
    if kind == "random":
        return TransitionMask(rng.random((L, L)) > 0.4, rng.random(L) > 0.3, rng.random(L) > 0.3)
    if kind == "chains":  # labels in blocks: transitions only inside a block
        block = rng.integers(max(1, L // 2), size=L)
        return TransitionMask(block[:, None] == block[None, :], numpy.ones(L, bool), rng.random(L) > 0.5)
    # "bio": label 0 is O, odd labels B-x, even labels > 0 I-x of the B just before
    inside = (numpy.arange(L) % 2 == 0) & (numpy.arange(L) > 0)
    trans = numpy.ones((L, L), bool)
    for j in numpy.nonzero(inside)[0]:
        trans[:, j] = False
        trans[j - 1, j] = trans[j, j] = True
    return TransitionMask(trans, ~inside, numpy.ones(L, bool))


def _allowed(rng, kind: str, B: int, T: int, L: int):
    if kind == "none":
        return None
    if kind == "random":
        return rng.random((B, T, L)) > 0.5
    gold = rng.integers(L, size=(B, T))
    known = rng.random((B, T)) > 0.5
    return numpy.where(known[..., None], gold[..., None] == numpy.arange(L), True)


def _segment(rng, row: int, n: int, L: int):
    size = int(rng.integers(1, min(n, 3) + 1))
    start = int(rng.integers(n - size + 1))
    return row, start, rng.integers(L, size=size).tolist()


def invalid_call(rng, p: Problem) -> Tuple[Callable[[], Any], str]:
    """A call on an invalid variant of ``p`` (changed in place), and a regex its
    ValueError must match: NaN or inf inside a row, non-finite potentials, a zero
    length, potentials of the wrong size, n-best with a bad ``n``."""
    B, T, L = p.emissions.shape
    kind = rng.integers(5)
    if kind == 0:  # NaN or inf inside a row
        b = int(rng.integers(B))
        t = int(rng.integers(p.lengths[b]))
        p.emissions[b, t, rng.integers(L)] = rng.choice([numpy.nan, numpy.inf])
        fn = rng.choice([forward_backward, viterbi])
        return lambda: fn(numpy, p.emissions, p.lengths, p.potentials), f"batch row {b}, position {t}\\b"
    if kind == 1:  # non-finite transition, start or end scores
        name = str(rng.choice(["transitions", "start", "end"]))
        scores = getattr(p, name)
        scores.reshape(-1)[rng.integers(scores.size)] = rng.choice([numpy.nan, numpy.inf, -numpy.inf])
        label = {"transitions": "Transition", "start": "Start", "end": "End"}[name]
        return lambda: forward_backward(numpy, p.emissions, p.lengths, p.potentials), f"{label} scores must be finite"
    if kind == 2:  # a zero length
        p.lengths[rng.integers(B)] = 0
        return lambda: forward_backward(numpy, p.emissions, p.lengths, p.potentials), "lengths must lie in"
    if kind == 3:  # potentials of the wrong size
        pot = ChainPotentials(numpy.zeros((L + 1, L + 1)), numpy.zeros(L + 1), numpy.zeros(L + 1))
        return lambda: viterbi(numpy, p.emissions, p.lengths, pot), "Expected transition, start and end scores"
    n = [0, -1, True, 2.5, "3"][rng.integers(5)]
    return lambda: nbest(numpy, p.emissions[0, : p.lengths[0]], p.potentials, n), "n must be a positive integer"
