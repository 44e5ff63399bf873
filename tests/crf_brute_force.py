"""Exhaustive reference for the CRF tests: enumerate every label sequence."""
import itertools

import numpy

from spacy_seqlab.crf import ChainPotentials, TransitionMask


def enumerate_sequences(E, n, A, s, e, allowed=None, mask=None):
    """All label sequences of length ``n`` with their scores; forbidden ones score -inf.

    ``allowed`` (n, L) bool restricts labels per position; ``mask`` is a TransitionMask.
    """
    L = A.shape[0]
    seqs, scores = [], []
    for y in itertools.product(range(L), repeat=n):
        score = s[y[0]] + e[y[-1]] + sum(E[t, y[t]] for t in range(n))
        score += sum(A[y[t - 1], y[t]] for t in range(1, n))
        ok = allowed is None or all(allowed[t, y[t]] for t in range(n))
        if mask is not None:
            ok = ok and mask.start[y[0]] and mask.end[y[-1]]
            ok = ok and all(mask.transitions[y[t - 1], y[t]] for t in range(1, n))
        seqs.append(y)
        scores.append(score if ok else -numpy.inf)
    return seqs, numpy.asarray(scores)


def brute_force(E, n, A, s, e, allowed=None, mask=None):
    """log Z, node marginals (n, L), expected transition counts (L, L), best path."""
    L = A.shape[0]
    seqs, scores = enumerate_sequences(E, n, A, s, e, allowed, mask)
    log_z = numpy.logaddexp.reduce(scores)
    probs = numpy.exp(scores - log_z)
    nodes = numpy.zeros((n, L))
    trans = numpy.zeros((L, L))
    for y, p in zip(seqs, probs):
        for t in range(n):
            nodes[t, y[t]] += p
        for t in range(1, n):
            trans[y[t - 1], y[t]] += p
    best = seqs[int(numpy.argmax(scores))]
    return log_z, nodes, trans, list(best), float(scores.max())


def random_problem(seed, n_labels, lengths, scale=2.0, with_mask=False):
    """Random padded emissions (B, T, L), lengths and potentials, optionally masked."""
    rng = numpy.random.default_rng(seed)
    B, T, L = len(lengths), max(lengths), n_labels
    E = rng.normal(size=(B, T, L)) * scale
    pot = ChainPotentials(rng.normal(size=(L, L)), rng.normal(size=L), rng.normal(size=L))
    if with_mask:
        trans = rng.random((L, L)) > 0.35
        trans[:, 0] = True  # keep at least one path alive
        start = rng.random(L) > 0.3
        end = rng.random(L) > 0.3
        start[0] = end[0] = True
        pot.mask = TransitionMask(trans, start, end)
    return E, numpy.asarray(lengths), pot
