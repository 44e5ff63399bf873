"""Property-based tests of the CRF math (hypothesis) against an independent float64
log-space reference (tests/crf_reference.py) and brute force (tests/crf_brute_force.py).

Profiles: "ci" (default, 150 examples per test, well within a minute) and "long"
(10,000 examples per test):

    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/test_crf_properties.py

``benchmarks/fuzz_crf.py`` runs the same checks on larger random problems and counts
the outcomes.
"""
import os

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from thinc.api import NumpyOps

from spacy_seqlab.crf import (
    ChainPotentials,
    TransitionMask,
    forward_backward,
    log_messages,
    nbest,
    segment_log_probs,
    viterbi,
)
from spacy_seqlab.layers.crf import CRFScores, crf_decode

from . import crf_reference as reference
from .crf_brute_force import brute_force
from .crf_checks import CLAMPS, GARBAGE, MASKS, compare, invalid_call, random_problem

_COMMON = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=150, derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=10_000, **_COMMON)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

xp = numpy


@st.composite
def problems(draw, *, max_labels=5, max_length=7, max_batch=4, min_exp=-3.0, max_exp=4.0):
    """Random padded batches: sizes, dtype, magnitude (10 ** [min_exp, max_exp]),
    cancellation depth, masks, clamping and padding garbage drawn by hypothesis, the
    numbers from a drawn seed."""
    choices = dict(
        n_labels=draw(st.integers(1, max_labels)),
        lengths=draw(st.lists(st.integers(1, max_length), min_size=1, max_size=max_batch)),
        pad=draw(st.integers(0, 2)),
        dtype=draw(st.sampled_from(["float64", "float32"])),
        scale=10 ** draw(st.floats(min_exp, max_exp)),
        cancel=draw(st.sampled_from([0.0, 0.0, 100.0, 800.0, 3000.0])),
        mask=draw(st.sampled_from(MASKS)),
        clamp=draw(st.sampled_from(CLAMPS)),
        garbage=draw(st.sampled_from(GARBAGE)),
    )
    seed = draw(st.integers(0, 2**32 - 1))
    return random_problem(numpy.random.default_rng(seed), **choices)


@settings(PROFILE)
@given(problems())
def test_every_function_matches_the_reference(problem):
    """log Z, node and pair marginals (float64 and float32 recursions), log messages,
    segment probabilities, Viterbi and n-best (brute force) on one problem."""
    assert compare(problem) == []


@settings(PROFILE)
@given(problems(max_labels=4, max_length=5, max_batch=2, min_exp=2.0, max_exp=4.0))
def test_extreme_magnitudes_match_the_reference(problem):
    """Scores of 1e2 to 1e4 (and labels dominant by transitions or end scores although
    their emissions lie beyond exp's range) stay exact."""
    assert compare(problem) == []


@settings(PROFILE)
@given(problems(max_labels=3, max_length=4, max_batch=2))
def test_reference_equals_brute_force(problem):
    """The reference itself, against enumeration of every label sequence."""
    for b in range(len(problem.lengths)):
        E, A, s, e = problem.row(b)
        log_z, nodes, counts = reference.marginals(E, A, s, e)
        with numpy.errstate(invalid="ignore"):
            want = brute_force(E, E.shape[0], A, s, e)
        if want[0] == -numpy.inf:  # no valid sequence: zero by definition
            assert log_z == -numpy.inf and not nodes.any() and not counts.any()
            assert reference.viterbi_score(E, A, s, e) == -numpy.inf
            continue
        assert log_z == pytest.approx(want[0], rel=1e-12, abs=1e-9)
        numpy.testing.assert_allclose(nodes, want[1], atol=1e-12)
        numpy.testing.assert_allclose(counts, want[2], atol=1e-12)
        assert reference.viterbi_score(E, A, s, e) == pytest.approx(want[4], rel=1e-12)


@settings(PROFILE)
@given(problems(), st.integers(0, 2**32 - 1))
def test_invalid_input_raises_a_clear_error(problem, seed):
    call, expected = invalid_call(numpy.random.default_rng(seed), problem)
    with pytest.raises(ValueError, match=expected):
        call()


@settings(PROFILE)
@given(problems(max_length=12, max_labels=6))
def test_decoded_confidences_are_probabilities(problem):
    """crf_decode's token confidences lie in [0, 1] and equal the float64 marginals."""
    E = problem.clamped().astype("float32")
    scores = CRFScores(E, problem.lengths, problem.potentials)
    paths, confidences = crf_decode(NumpyOps(), scores)
    for b, conf in enumerate(confidences):
        assert ((conf >= 0.0) & (conf <= 1.0)).all()
        _, nodes, _ = reference.marginals(*reference.masked_scores(
            E[b, : len(conf)], *problem.row(b)[1:]))
        numpy.testing.assert_allclose(conf, nodes[numpy.arange(len(conf)), paths[b]], atol=2e-4)


def test_smallest_case_of_an_underflowing_dominant_label():
    """2 tokens, 3 labels: label 2's emission lies 800 below the best (exp underflows),
    transitions and end scores make it dominant. log Z is 51.10, not 1.10."""
    E = numpy.array([[[0.0, 0.0, 0.0], [0.0, -800.0, -800.0]]])
    A = numpy.zeros((3, 3))
    A[:, 2] = 400.0
    pot = ChainPotentials(A, numpy.zeros(3), numpy.array([0.0, 0.0, 450.0]))
    for dtype in ("float64", "float32"):
        out = forward_backward(xp, E, numpy.array([2]), pot, dtype=dtype)
        assert out.log_z[0] == pytest.approx(50 + numpy.log(3), rel=1e-9)
        numpy.testing.assert_allclose(out.nodes[0, 1], [numpy.exp(-50), 0.0, 1.0], atol=1e-7)
    messages = log_messages(xp, E, numpy.array([2]), pot)
    assert messages.log_z[0] == pytest.approx(50 + numpy.log(3), rel=1e-12)
    seg = segment_log_probs(xp, messages, E, pot, [0], [1], numpy.array([[2]]))
    assert numpy.exp(seg[0]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_isolated_label_that_falls_behind_and_recovers(dtype):
    """Two labels that never follow each other: label 1 falls 10 nats behind per token
    for 80 tokens (far past exp's range, in steps the emission bounds allow), then
    gains 20 per token and dominates. log Z is 1600 (not 800) and its marginals 1."""
    n = 160
    E = numpy.zeros((1, n, 2))
    E[0, :80, 0] = 10.0
    E[0, 80:, 1] = 20.0
    mask = TransitionMask(numpy.eye(2, dtype=bool), numpy.ones(2, bool), numpy.ones(2, bool))
    pot = ChainPotentials(numpy.zeros((2, 2)), numpy.zeros(2), numpy.zeros(2), mask)
    out = forward_backward(xp, E, numpy.array([n]), pot, dtype=dtype)
    assert out.log_z[0] == pytest.approx(1600.0, rel=1e-12)
    numpy.testing.assert_allclose(out.nodes[0, :, 1], 1.0, atol=1e-9)
    assert out.transitions[0, 1, 1] == pytest.approx(n - 1)


@pytest.mark.parametrize("mask", [None, "all", "bio"])
@pytest.mark.parametrize("extra", [0, 3])
def test_any_padded_length_is_accepted(mask, extra):
    """A padded length beyond the longest row (with no mask, an all-True mask or a
    real one) changes nothing."""
    rng = numpy.random.default_rng(extra)
    E = rng.normal(size=(3, 4 + extra, 3)).astype("float32")
    E[:, 4:] = numpy.nan  # padding is never read
    lengths = numpy.array([4, 2, 3])
    pot = ChainPotentials(rng.normal(size=(3, 3)), rng.normal(size=3), rng.normal(size=3))
    if mask == "all":
        pot.mask = TransitionMask(numpy.ones((3, 3), bool), numpy.ones(3, bool), numpy.ones(3, bool))
    elif mask == "bio":
        trans = numpy.ones((3, 3), bool)
        trans[0, 2] = False  # O -> I
        pot.mask = TransitionMask(trans, numpy.array([True, True, False]), numpy.ones(3, bool))
    tight = E[:, :4]
    paths, scores = viterbi(xp, E, lengths, pot)
    assert paths.shape == (3, 4 + extra) and (paths[:, 4:] == -1).all()
    numpy.testing.assert_array_equal(paths[:, :4], viterbi(xp, tight, lengths, pot)[0])
    out = forward_backward(xp, E, lengths, pot)
    want = forward_backward(xp, tight, lengths, pot)
    numpy.testing.assert_allclose(out.log_z, want.log_z)
    numpy.testing.assert_allclose(out.nodes[:, :4], want.nodes)
    assert (out.nodes[:, 4:] == 0).all() and numpy.isfinite(out.transitions).all()
    messages = log_messages(xp, E, lengths, pot)
    numpy.testing.assert_allclose(messages.log_z, want.log_z)
    assert nbest(xp, E[1, :2], pot, 3)[0].shape[1] == 2


def test_no_valid_path_has_zero_probability():
    """Every transition forbidden: a row longer than one token has log Z = -inf, zero
    marginals and counts, zero segment probabilities, and a -inf Viterbi score."""
    rng = numpy.random.default_rng(0)
    E = rng.normal(size=(2, 3, 2))
    mask = TransitionMask(numpy.zeros((2, 2), bool), numpy.ones(2, bool), numpy.ones(2, bool))
    pot = ChainPotentials(numpy.zeros((2, 2)), numpy.zeros(2), numpy.zeros(2), mask)
    lengths = numpy.array([3, 1])
    for dtype, counts in (("float64", "sequence"), ("float32", "batch")):
        out = forward_backward(xp, E, lengths, pot, counts=counts, dtype=dtype)
        assert out.log_z[0] == -numpy.inf and numpy.isfinite(out.log_z[1])
        assert (out.nodes[0] == 0).all() and numpy.isfinite(out.transitions).all()
        assert out.nodes[1, 0].sum() == pytest.approx(1.0)
    messages = log_messages(xp, E, lengths, pot)
    got = segment_log_probs(xp, messages, E, pot, [0, 0, 1], [0, 1, 0], numpy.array([[0], [1], [1]]))
    assert got[0] == got[1] == -numpy.inf and numpy.isfinite(got[2])
    assert viterbi(xp, E, lengths, pot)[1][0] == -numpy.inf
    assert nbest(xp, E[0], pot, 2)[0].shape[0] == 0


@pytest.mark.parametrize("n", [0, -2, True, 1.5, "2", None])
def test_nbest_validates_n(n):
    E, pot = numpy.zeros((3, 2)), ChainPotentials(numpy.zeros((2, 2)), numpy.zeros(2), numpy.zeros(2))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        nbest(xp, E, pot, n)
    assert nbest(xp, E, pot, numpy.int64(2))[0].shape == (2, 3)


COMPONENT_DATA = {
    "crf_tagger": ("She will read", {"tags": ["PRP", "MD", "VB"]}),
    "memm_tagger": ("She will read", {"tags": ["PRP", "MD", "VB"]}),
    "crf_ner": ("Anna visited Paris", {"entities": [(0, 4, "PER"), (13, 18, "LOC")]}),
}


@pytest.mark.parametrize("name", sorted(COMPONENT_DATA))
@pytest.mark.parametrize("broken", ["emissions", "transitions"])
def test_nan_scores_in_a_component_raise_a_clear_error(name, broken):
    """A NaN parameter (the network's, hence the emissions, or the chain's transition
    scores) makes predict and update raise a ValueError that says what and where."""
    import spacy
    from spacy.training import Example

    nlp = spacy.blank("en")
    nlp.add_pipe(name)
    text, annots = COMPONENT_DATA[name]
    examples = [Example.from_dict(nlp.make_doc(text), annots)]
    nlp.initialize(lambda: examples)
    chain = ("crf", "memm")
    for node in nlp.get_pipe(name).model.walk():
        if (node.name in chain) == (broken == "transitions"):
            for param in node.param_names:
                if node.has_param(param) and (broken == "emissions" or param == "transitions"):
                    node.set_param(param, numpy.full_like(node.get_param(param), numpy.nan))
    expected = (r"Emission scores must be finite, got nan at batch row 0, position 0"
                if broken == "emissions" else r"Transition scores must be finite.*got nan at \[0, 0\]")
    with pytest.raises(ValueError, match=expected):
        nlp(text)
    with pytest.raises(ValueError, match=expected):
        nlp.update(examples)


@pytest.mark.parametrize("n", [True, 0, 2.0])
def test_crf_ner_nbest_validates_n(n):
    import spacy
    from spacy.training import Example

    nlp = spacy.blank("en")
    ner = nlp.add_pipe("crf_ner")
    text, annots = COMPONENT_DATA["crf_ner"]
    nlp.initialize(lambda: [Example.from_dict(nlp.make_doc(text), annots)])
    with pytest.raises(ValueError, match="n must be a positive integer"):
        ner.nbest([nlp.make_doc(text)], n=n)


@settings(PROFILE)
@given(problems(max_labels=5, max_length=5, max_batch=2, min_exp=1.0, max_exp=4.0))
def test_memm_local_normalizers_are_exact(problem):
    """log sum_j exp(E[t, j] + T[i, j]) for every previous label i, also where the
    emission gap and the transition spread pass exp's range."""
    from spacy_seqlab.layers.memm import log_normalizers

    E = problem.clamped().astype("float64")
    pot = ChainPotentials(problem.transitions, problem.start, problem.end)
    got = log_normalizers(xp, E, pot)
    for b, n in enumerate(problem.lengths):
        for t in range(n):
            with numpy.errstate(invalid="ignore"):
                want = numpy.logaddexp.reduce(E[b, t][None, :] + problem.transitions, axis=1)
                close = numpy.abs(got[b, t] - want) <= 1e-12 * problem.scale()
            assert ((got[b, t] == want) | close).all()
