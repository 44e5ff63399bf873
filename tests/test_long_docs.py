"""Long rows in segments (spacy_seqlab.crf.long_rows) give the one-row results, and
crf_ner never puts a whitespace token inside a span."""
import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example

from spacy_seqlab.crf import (
    ChainPotentials,
    TransitionMask,
    clamp_emissions,
    forward_backward,
    log_messages,
    long_rows,
    viterbi,
)
from spacy_seqlab.layers.crf import CRFScores, potentials_of

from .crf_brute_force import brute_force, random_problem
from .tiny_pipelines import fit, record_batches, span_examples


@pytest.fixture
def short_segments(monkeypatch):
    """Rows longer than 40 tokens run in segments of at least 7."""
    monkeypatch.setattr(long_rows, "LONG_ROW", 40)
    monkeypatch.setattr(long_rows, "MIN_SEGMENT", 7)


def assert_same_marginals(E, lengths, pot, dtype="float64"):
    rtol = 1e-10 if dtype == "float64" else 1e-6  # float32: the one-row results' rounding
    for counts in ("sequence", "batch", None):
        one = forward_backward(numpy, E, lengths, pot, counts=counts, dtype=dtype)
        split = long_rows.forward_backward(numpy, E, lengths, pot, counts=counts, dtype=dtype)
        numpy.testing.assert_allclose(split.log_z, one.log_z, rtol=rtol)
        numpy.testing.assert_allclose(split.nodes, one.nodes, atol=rtol * 10)
        if counts is not None:
            numpy.testing.assert_allclose(split.transitions, one.transitions,
                                          rtol=rtol * 10, atol=rtol * 10)
    one, split = log_messages(numpy, E, lengths, pot), long_rows.log_messages(numpy, E, lengths, pot)
    numpy.testing.assert_allclose(split.log_z, one.log_z, rtol=1e-10)
    reached = numpy.isfinite(one.log_alpha)
    assert (numpy.isfinite(split.log_alpha) == reached).all()
    numpy.testing.assert_allclose(split.log_alpha[reached], one.log_alpha[reached], rtol=1e-10)
    both = reached & numpy.isfinite(one.log_beta)
    numpy.testing.assert_allclose(split.log_beta[both], one.log_beta[both], rtol=1e-10, atol=1e-9)


def assert_same_viterbi(E, lengths, pot):
    paths, scores = viterbi(numpy, E, lengths, pot)
    split_paths, split_scores = long_rows.viterbi(numpy, E, lengths, pot)
    numpy.testing.assert_array_equal(split_paths, paths)
    numpy.testing.assert_allclose(split_scores, scores, rtol=1e-9 if E.dtype == numpy.float64 else 1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_random_rows_match_one_row(short_segments, seed):
    """Long rows (not multiples of the segment size) next to short ones, with and
    without a transition mask, with clamped positions."""
    rng = numpy.random.default_rng(seed)
    lengths = [int(rng.integers(41, 300)), int(rng.integers(1, 40)), int(rng.integers(41, 300)), 3]
    E, lengths, pot = random_problem(seed, int(rng.integers(2, 9)), lengths, with_mask=seed % 2 == 1)
    if seed % 3 == 0:
        allowed = rng.random(E.shape) > 0.3
        allowed[..., 0] = True
        E = clamp_emissions(numpy, E, allowed)
    assert_same_viterbi(E, lengths, pot)
    assert_same_marginals(E, lengths, pot)
    assert_same_marginals(E.astype("float32"), lengths, pot, dtype="float32")


def test_viterbi_ties_and_pruning(short_segments):
    """Small integer scores are exact in float32, so ties abound: the lowest label wins
    as in ``viterbi``. Confident emissions over 20 labels take the pruned step."""
    rng = numpy.random.default_rng(0)
    ties = rng.integers(-2, 3, size=(2, 400, 6)).astype("float32")
    pot = ChainPotentials(rng.integers(-1, 2, size=(6, 6)), numpy.zeros(6), numpy.ones(6))
    assert_same_viterbi(ties, numpy.asarray([400, 257]), pot)
    confident = rng.normal(size=(1, 500, 20)) * 8
    small = ChainPotentials(rng.normal(size=(20, 20)) * 0.3, rng.normal(size=20), rng.normal(size=20))
    assert_same_viterbi(confident, numpy.asarray([500]), small)
    assert_same_viterbi(confident.astype("float32"), numpy.asarray([500]), small)


def test_segments_that_never_forget_their_start(short_segments):
    """Two label blocks that cannot reach each other: each segment's messages depend on
    its incoming message to the end, so the sweeps run through every segment."""
    rng = numpy.random.default_rng(1)
    L = 4
    blocks = numpy.kron(numpy.eye(2, dtype=bool), numpy.ones((2, 2), dtype=bool))
    everywhere = numpy.ones(L, dtype=bool)
    pot = ChainPotentials(rng.normal(size=(L, L)), numpy.asarray([0.0, 0.0, 0.3, 0.0]),
                          numpy.zeros(L), TransitionMask(blocks, everywhere, everywhere))
    E = rng.normal(size=(1, 333, L)) * 0.5
    assert_same_viterbi(E, numpy.asarray([333]), pot)
    assert_same_marginals(E, numpy.asarray([333]), pot)


def test_rows_beyond_the_scaled_range_run_whole(short_segments):
    """Emission gaps beyond float64's exp range: the row takes the exact one-row path,
    which agrees with brute force on a short stretch."""
    rng = numpy.random.default_rng(2)
    E = rng.normal(size=(1, 60, 3))
    E[0, 5] = [0.0, -2000.0, -4000.0]
    pot = ChainPotentials(rng.normal(size=(3, 3)), numpy.zeros(3), numpy.zeros(3))
    assert_same_marginals(E, numpy.asarray([60]), pot)
    log_z = long_rows.forward_backward(numpy, E[:, :6], numpy.asarray([6]), pot).log_z
    numpy.testing.assert_allclose(log_z, brute_force(E[0, :6], 6, pot.transitions, pot.start, pot.end)[0])


def test_bad_scores_name_the_batch_row(short_segments):
    E = numpy.zeros((3, 60, 2))
    E[2, 50, 1] = numpy.nan
    with pytest.raises(ValueError, match="batch row 2, position 50"):
        long_rows.viterbi(numpy, E, numpy.asarray([10, 60, 60]), ChainPotentials(
            numpy.zeros((2, 2)), numpy.zeros(2), numpy.zeros(2)))


TRAIN = [
    ("Who is Shaka Khan in London ?", [(2, 4, "PER"), (5, 6, "LOC")]),
    ("I like London and New York .", [(2, 3, "LOC"), (4, 6, "LOC")]),
    ("Angela Merkel visited Paris today .", [(0, 2, "PER"), (3, 4, "LOC")]),
]


@pytest.fixture(scope="module")
def ner():
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_ner")
    return fit(nlp, span_examples(nlp, TRAIN), 30)


@pytest.fixture(scope="module")
def tagger():
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_tagger")
    words = [text.split() for text, _ in TRAIN]
    examples = [
        Example.from_dict(Doc(nlp.vocab, words=w), {"words": w, "tags": [x[:2].upper() for x in w]})
        for w in words
    ]
    return fit(nlp, examples, 30)


def long_words(n):
    words = " ".join(text for text, _ in TRAIN).split()
    return (words * (n // len(words) + 1))[:n]


def test_long_doc_through_components_matches_one_row(monkeypatch, tagger, ner):
    words = long_words(2500)
    one_row = {}
    monkeypatch.setattr(long_rows, "LONG_ROW", 10**9)
    doc = tagger(Doc(tagger.vocab, words=words))
    one_row["tags"] = [(t.tag_, t._.tag_confidence) for t in doc]
    doc = ner(Doc(ner.vocab, words=words))
    one_row["ents"] = [(e.start, e.end, e.label_, e._.crf_confidence) for e in doc.ents]
    monkeypatch.setattr(long_rows, "LONG_ROW", 1000)
    doc = tagger(Doc(tagger.vocab, words=words))
    tags = [(t.tag_, t._.tag_confidence) for t in doc]
    assert [t for t, _ in tags] == [t for t, _ in one_row["tags"]]
    # the one-row path runs in float32 here; the float64 marginals are the reference
    numpy.testing.assert_allclose([c for _, c in tags], [c for _, c in one_row["tags"]], atol=1e-4)
    pipe = tagger.get_pipe("crf_tagger")
    scores = pipe.scores([doc])
    nodes = forward_backward(numpy, scores.emissions, scores.lengths, scores.potentials, dtype="float64").nodes
    ids = [pipe.labels.index(t) for t, _ in tags]
    numpy.testing.assert_allclose([c for _, c in tags], nodes[0, numpy.arange(len(ids)), ids], atol=1e-6)
    doc = ner(Doc(ner.vocab, words=words))
    ents = [(e.start, e.end, e.label_, e._.crf_confidence) for e in doc.ents]
    assert ents and [e[:3] for e in ents] == [e[:3] for e in one_row["ents"]]
    numpy.testing.assert_allclose([e[3] for e in ents], [e[3] for e in one_row["ents"]], atol=1e-9)


@pytest.mark.parametrize("spans_key", [None, "chunks"])
def test_whitespace_tokens_are_never_inside_spans(ner, spans_key, monkeypatch):
    """Scores that put "Angela \\n Merkel" in one PER entity: the whitespace token is O
    and each span's confidence is its probability under that constraint (brute force)."""
    pipe = ner.get_pipe("crf_ner")
    monkeypatch.setitem(pipe.cfg, "spans_key", spans_key)
    words = ["Angela", "\n", "Merkel", "spoke"]
    doc = Doc(ner.vocab, words=words, spaces=[True, False, True, False])
    tags = pipe.output_labels
    E = numpy.zeros((1, 4, len(tags)), dtype="float32")
    for t, tag in enumerate(["B-PER", "I-PER", "L-PER", "O"]):
        E[0, t, tags.index(tag)] = 6.0
    E[0, 0, tags.index("U-PER")] = 3.0
    E[0, 2, tags.index("U-PER")] = 4.0
    potentials = potentials_of(pipe.model.get_ref("crf"))
    monkeypatch.setattr(pipe, "scores", lambda docs: CRFScores(E, numpy.asarray([4]), potentials))
    pipe.set_annotations([doc], pipe.predict([doc]))
    spans = list(doc.ents) if spans_key is None else list(doc.spans[spans_key])
    assert [(s.start, s.end, s.label_) for s in spans] == [(0, 1, "PER"), (2, 3, "PER")]
    allowed = numpy.ones((4, len(tags)), dtype=bool)
    allowed[1] = numpy.arange(len(tags)) == tags.index("O")
    A, s, e = (numpy.asarray(x, dtype="float64")
               for x in (potentials.transitions, potentials.start, potentials.end))
    log_z = brute_force(E[0], 4, A, s, e, allowed, potentials.mask)[0]
    for span in spans:
        exact = allowed.copy()
        exact[span.start] = numpy.arange(len(tags)) == tags.index("U-PER")
        expected = numpy.exp(brute_force(E[0], 4, A, s, e, exact, potentials.mask)[0] - log_z)
        assert span._.crf_confidence == pytest.approx(expected, rel=1e-5)


def test_pipe_predicts_long_docs_alone(monkeypatch, tagger):
    """A long doc in a batch of short ones is scored alone (the batch's padded scores
    would otherwise grow with docs x longest doc), with the same results, in order."""
    monkeypatch.setattr(long_rows, "LONG_ROW", 1000)
    batches = record_batches(monkeypatch, tagger.get_pipe("crf_tagger"))
    texts = [long_words(7), long_words(1500), long_words(12), long_words(3)]
    docs = list(tagger.pipe((Doc(tagger.vocab, words=w) for w in texts), batch_size=10))
    assert [len(doc) for doc in docs] == [7, 1500, 12, 3]
    assert batches == [[3, 7, 12], [1500]]  # short docs by length, then each long one
    for doc, words in zip(docs, texts):
        alone = tagger(Doc(tagger.vocab, words=words))
        assert [t.tag_ for t in doc] == [t.tag_ for t in alone]
