"""Segment probabilities and n-best decoding against exhaustive enumeration."""
import itertools

import numpy
import pytest

from spacy_seqlab.crf import log_messages, nbest, segment_log_probs

from .crf_brute_force import enumerate_sequences, random_problem

xp = numpy


def _posterior(E, n, pot):
    A, s, e = pot.transitions, pot.start, pot.end
    seqs, scores = enumerate_sequences(E[:n], n, A, s, e, mask=pot.mask)
    return seqs, scores, numpy.exp(scores - numpy.logaddexp.reduce(scores))


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_segment_probs_equal_enumeration(seed, with_mask):
    L = 3
    E, lens, pot = random_problem(seed, L, [4, 1, 3], with_mask=with_mask)
    messages = log_messages(xp, E, lens, pot)
    rows, starts, paths, expected = [], [], [], []
    for b, n in enumerate(lens.tolist()):
        seqs, _, probs = _posterior(E[b], n, pot)
        for start in range(n):
            for size in range(1, n - start + 1):
                for path in itertools.product(range(L), repeat=size):
                    rows.append(b)
                    starts.append(start)
                    paths.append(list(path) + [-1] * (4 - size))
                    expected.append(
                        sum(p for y, p in zip(seqs, probs) if tuple(y[start : start + size]) == path)
                    )
    got = numpy.exp(segment_log_probs(xp, messages, E, pot, rows, starts, numpy.asarray(paths)))
    numpy.testing.assert_allclose(got, expected, atol=1e-10)


def test_segments_outside_their_row_are_refused():
    E, lens, pot = random_problem(0, 3, [2, 1])
    messages = log_messages(xp, E, lens, pot)
    with pytest.raises(ValueError, match="inside its row"):
        segment_log_probs(xp, messages, E, pot, [0], [1], numpy.asarray([[0, 1]]))


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("seed,n_labels,length", [(0, 3, 4), (1, 4, 3), (2, 2, 1), (3, 3, 5)])
def test_nbest_equals_exhaustive_top_n(seed, n_labels, length, with_mask):
    E, lens, pot = random_problem(seed, n_labels, [length], with_mask=with_mask)
    seqs, scores, _ = _posterior(E[0], length, pot)
    ranked = sorted(
        ((score, y) for y, score in zip(seqs, scores) if numpy.isfinite(score)),
        key=lambda item: -item[0],
    )
    for n in (1, 5, len(seqs) + 3):
        paths, got = nbest(xp, E[0], pot, n)
        want = ranked[:n]
        assert len(got) == len(want)
        numpy.testing.assert_allclose(got, [score for score, _ in want], atol=1e-9)
        assert [tuple(p) for p in paths.tolist()] == [y for _, y in want]


def test_nbest_rejects_n_below_one():
    E, _, pot = random_problem(0, 2, [3])
    with pytest.raises(ValueError, match="at least 1"):
        nbest(xp, E[0], pot, 0)
