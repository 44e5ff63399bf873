"""crf_ner: schemes, constrained decoding, span probabilities, n-best, partial
annotation, training and serialization."""
import itertools
import subprocess
import sys

import numpy
import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from thinc.api import fix_random_seed

from spacy_seqlab.components.crf_ner import CONFIDENCE_EXTENSION
from spacy_seqlab.crf import ChainPotentials, viterbi
from spacy_seqlab.layers.crf import CRFScores
from spacy_seqlab.schemes import (
    allowed_transitions,
    spans_to_tags,
    tag_names,
    tags_to_spans,
)
from spacy_seqlab.scorers import span_score

TRAIN = [
    ("Who is Shaka Khan in London ?", [(2, 4, "PER"), (5, 6, "LOC")]),
    ("I like London and New York .", [(2, 3, "LOC"), (4, 6, "LOC")]),
    ("Angela Merkel visited Paris today .", [(0, 2, "PER"), (3, 4, "LOC")]),
    ("The New York Times hired John .", [(0, 4, "ORG"), (5, 6, "PER")]),
]


def make_examples(nlp, spans_key=None, data=TRAIN):
    examples = []
    for text, spans in data:
        ref = Doc(nlp.vocab, words=text.split())
        gold = [Span(ref, s, e, label=label) for s, e, label in spans]
        if spans_key is None:
            ref.set_ents(gold, default="outside")
        else:
            ref.spans[spans_key] = gold
        examples.append(Example(Doc(nlp.vocab, words=text.split()), ref))
    return examples


def train(nlp, examples, steps=60):
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(steps):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
    return losses


def valid(scheme, tags):
    mask = allowed_transitions(scheme, tag_names(scheme, ["A", "B"]))
    names = tag_names(scheme, ["A", "B"])
    ids = [names.index(t) for t in tags]
    return (
        mask.start[ids[0]]
        and mask.end[ids[-1]]
        and all(mask.transitions[a, b] for a, b in zip(ids, ids[1:]))
    )


# --- schemes ----------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
def test_spans_tags_round_trip(scheme):
    spans = [(0, 1, "PER"), (2, 5, "LOC-X"), (5, 6, "LOC-X")]
    tags = spans_to_tags(scheme, 7, spans)
    assert tags_to_spans(tags) == spans
    assert valid_under_mask(scheme, tags)


def valid_under_mask(scheme, tags):
    labels = sorted({t[2:] for t in tags if t != "O"})
    names = tag_names(scheme, labels)
    mask = allowed_transitions(scheme, names)
    ids = [names.index(t) for t in tags]
    return bool(
        mask.start[ids[0]] and mask.end[ids[-1]]
        and all(mask.transitions[a, b] for a, b in zip(ids, ids[1:]))
    )


@pytest.mark.parametrize(
    "scheme,tags,ok",
    [
        ("BILUO", ["O", "I-A"], False),
        ("BILUO", ["B-A", "L-B"], False),
        ("BILUO", ["B-A", "O"], False),
        ("BILUO", ["B-A", "I-A", "L-A", "U-B"], True),
        ("BILUO", ["L-A"], False),
        ("BIO", ["O", "I-A"], False),
        ("BIO", ["B-A", "I-B"], False),
        ("BIO", ["B-A", "I-A", "B-A", "O", "B-B"], True),
        ("BIO", ["I-A"], False),
    ],
)
def test_allowed_transitions_from_tag_names(scheme, tags, ok):
    assert valid(scheme, tags) == ok


def test_spans_to_tags_refuses_overlaps_and_bad_tags():
    with pytest.raises(ValueError, match="overlaps"):
        spans_to_tags("BIO", 4, [(0, 2, "A"), (1, 3, "B")])
    with pytest.raises(ValueError, match="scheme must be one of"):
        tag_names("IOB3", ["A"])
    with pytest.raises(ValueError, match="not a span tag"):
        tags_to_spans(["X-A"])


def test_conll_iob1_converts_to_the_right_spans(tmp_path):
    """CoNLL-2003 is IOB1: I- opens a span after O, B- only splits adjacent spans of one
    type, and the corpus has B-MISC after O ("the Atlanta Games"): all read right."""
    text = (
        "-DOCSTART- -X- -X- O\n\n"
        "the DT B-NP O\nAtlanta NNP I-NP B-MISC\nGames NNPS I-NP I-MISC\nin IN B-PP O\n"
        "Peter NNP B-NP I-PER\nBlackburn NNP I-NP I-PER\nJohn NNP I-NP B-PER\n. . O O\n\n"
    )
    src = tmp_path / "eng.sample"
    src.write_text(text, encoding="utf8")
    out = tmp_path / "sample.spacy"
    subprocess.run(
        [sys.executable, "scripts/convert_conll.py", str(src), str(out)], check=True,
        capture_output=True,
    )
    nlp = spacy.blank("en")
    (doc,) = DocBin().from_disk(out).get_docs(nlp.vocab)
    assert [t.text for t in doc] == ["the", "Atlanta", "Games", "in", "Peter", "Blackburn", "John", "."]
    assert [(e.text, e.label_) for e in doc.ents] == [
        ("Atlanta Games", "MISC"), ("Peter Blackburn", "PER"), ("John", "PER")
    ]
    assert [t.tag_ for t in doc][:2] == ["DT", "NNP"]


# --- CRF math under scheme masks ---------------------------------------------------
def random_scores(ner, n_tokens, seed, scale=2.0):
    rng = numpy.random.default_rng(seed)
    L = len(ner.output_labels)
    mask = ner.transition_mask()
    pot = ChainPotentials(rng.normal(size=(L, L)), rng.normal(size=L), rng.normal(size=L), mask)
    E = rng.normal(size=(1, n_tokens, L)) * scale
    return CRFScores(E.astype("float32"), numpy.asarray([n_tokens]), pot)


def enumerate_valid(ner, scores):
    """Every valid tag sequence with its probability."""
    E = scores.emissions[0].astype("float64")
    pot = scores.potentials
    n, L = E.shape
    mask = pot.mask
    seqs, logits = [], []
    for y in itertools.product(range(L), repeat=n):
        if not (mask.start[y[0]] and mask.end[y[-1]]):
            continue
        if not all(mask.transitions[a, b] for a, b in zip(y, y[1:])):
            continue
        score = pot.start[y[0]] + pot.end[y[-1]] + sum(E[t, y[t]] for t in range(n))
        score += sum(pot.transitions[a, b] for a, b in zip(y, y[1:]))
        seqs.append(y)
        logits.append(score)
    logits = numpy.asarray(logits)
    return seqs, logits, numpy.exp(logits - numpy.logaddexp.reduce(logits))


def bare_ner(scheme, labels=("A", "B")):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("crf_ner", config={"scheme": scheme})
    for label in labels:
        ner.add_label(label)
    return ner


@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
@pytest.mark.parametrize("seed", range(3))
def test_span_probabilities_equal_enumeration(scheme, seed):
    ner = bare_ner(scheme)
    n = 4
    scores = random_scores(ner, n, seed)
    seqs, _, probs = enumerate_valid(ner, scores)
    tags = ner.output_labels
    expected = {}
    for y, p in zip(seqs, probs):
        for span in tags_to_spans([tags[i] for i in y]):
            expected[span] = expected.get(span, 0.0) + p
    candidates = [(s, e, label) for s in range(n) for e in range(s + 1, n + 1) for label in "AB"]
    got = ner._span_probabilities(scores, [candidates])[0]
    for span, p in zip(candidates, got):
        assert p == pytest.approx(expected.get(span, 0.0), abs=1e-6), span


@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
def test_viterbi_never_decodes_an_invalid_sequence(scheme):
    ner = bare_ner(scheme, labels=("A", "B", "C"))
    tags = ner.output_labels
    rng = numpy.random.default_rng(0)
    for trial in range(200):
        lengths = rng.integers(1, 9, size=5)
        scores = random_scores(ner, int(lengths.max()), trial, scale=5.0)
        E = rng.normal(size=(5, int(lengths.max()), len(tags))) * 5
        pot = scores.potentials
        pot.transitions = rng.normal(size=pot.transitions.shape) * 10
        paths, _ = viterbi(numpy, E, lengths, pot)
        for path, n in zip(paths, lengths):
            assert valid_under_mask(scheme, [tags[i] for i in path[:n]])


# --- training, prediction, serialization -------------------------------------------
@pytest.fixture(scope="module", params=[None, "chunks"], ids=["ents", "spans"])
def trained(request):
    spans_key = request.param
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_ner", config={"spans_key": spans_key})
    examples = make_examples(nlp, spans_key)
    losses = train(nlp, examples)
    return nlp, spans_key, losses


def predicted_spans(nlp, spans_key, text):
    doc = nlp(Doc(nlp.vocab, words=text.split()))
    spans = doc.ents if spans_key is None else doc.spans[spans_key]
    return [(s.start, s.end, s.label_) for s in spans], doc


def test_overfits_and_round_trips(trained, tmp_path):
    nlp, spans_key, losses = trained
    assert losses["crf_ner"] < 0.05
    texts = [text for text, _ in TRAIN]
    before = [predicted_spans(nlp, spans_key, text) for text in texts]
    for (_, gold), (spans, doc) in zip(TRAIN, before):
        assert spans == gold
        conf = [getattr(s._, CONFIDENCE_EXTENSION) for s in (doc.ents if spans_key is None else doc.spans[spans_key])]
        assert all(0.9 < c <= 1.0 for c in conf)
    nlp.to_disk(tmp_path / "model")
    from_disk = spacy.load(tmp_path / "model")
    from_bytes = spacy.load(tmp_path / "model").from_bytes(nlp.to_bytes())
    for loaded in (from_disk, from_bytes):
        after = [predicted_spans(loaded, spans_key, text) for text in texts]
        for (s1, d1), (s2, d2) in zip(before, after):
            assert s1 == s2
            key = "spacy_seqlab.span_confidence"
            assert d1.user_data[key] == pytest.approx(d2.user_data[key])
        # the constraints are rebuilt from the labels, not lost in serialization
        mask = loaded.get_pipe("crf_ner").model.get_ref("crf").attrs["transition_mask"]
        assert mask is not None and not mask.transitions.all()


def test_confidences_survive_docbin(trained):
    nlp, spans_key, _ = trained
    _, doc = predicted_spans(nlp, spans_key, TRAIN[0][0])
    data = DocBin(docs=[doc], store_user_data=True).to_bytes()
    (restored,) = DocBin().from_bytes(data).get_docs(nlp.vocab)
    spans = restored.ents if spans_key is None else restored.spans[spans_key]
    assert [getattr(s._, CONFIDENCE_EXTENSION) for s in spans] == pytest.approx(
        [getattr(s._, CONFIDENCE_EXTENSION) for s in (doc.ents if spans_key is None else doc.spans[spans_key])]
    )


def test_nbest_equals_exhaustive_top_n_of_the_model(trained):
    nlp, spans_key, _ = trained
    ner = nlp.get_pipe("crf_ner")
    doc = Doc(nlp.vocab, words="Shaka Khan in Paris".split())
    scores = ner.model.predict([doc])
    seqs, logits, probs = enumerate_valid(ner, scores)
    order = numpy.argsort(-logits, kind="stable")[:6]
    tags = ner.output_labels
    (analyses,) = ner.nbest([doc], n=6)
    assert len(analyses) == 6
    for analysis, k in zip(analyses, order):
        assert [(s.start, s.end, s.label_) for s in analysis.spans] == tags_to_spans(
            [tags[i] for i in seqs[k]]
        )
        assert analysis.probability == pytest.approx(probs[k], rel=1e-5, abs=1e-9)
        assert analysis.score == pytest.approx(logits[k], rel=1e-5)
    best = predicted_spans(nlp, spans_key, "Shaka Khan in Paris")[0]
    assert [(s.start, s.end, s.label_) for s in analyses[0].spans] == best


def test_nbest_edge_cases(trained):
    nlp, _, _ = trained
    ner = nlp.get_pipe("crf_ner")
    empty, one = Doc(nlp.vocab, words=[]), Doc(nlp.vocab, words=["London"])
    results = ner.nbest([empty, one], n=100)
    assert results[0][0].spans == [] and results[0][0].probability == 1.0
    # one token: O or U-/B- of each label under BILUO; O or B- under BIO
    assert len(results[1]) == 1 + len(ner.labels)
    assert sum(a.probability for a in results[1]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive integer"):
        ner.nbest([one], n=0)


def test_empty_and_long_docs(trained):
    nlp, spans_key, _ = trained
    assert nlp.get_pipe("crf_ner").predict([]) == []
    for words in ([], ["London"], ["London", "and", "Paris"] * 4000):
        doc = nlp(Doc(nlp.vocab, words=words))
        spans = doc.ents if spans_key is None else doc.spans[spans_key]
        assert all(0.0 <= getattr(s._, CONFIDENCE_EXTENSION) <= 1.0 for s in spans)
    assert len(spans) > 1000


def test_existing_entities_are_kept():
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    nlp.add_pipe("crf_ner")
    train(nlp, make_examples(nlp))  # initialize() resets the ruler: add patterns after
    ruler.add_patterns([{"label": "ORG", "pattern": "London"}])
    doc = nlp(Doc(nlp.vocab, words="Who is Shaka Khan in London ?".split()))
    assert [(e.text, e.label_) for e in doc.ents] == [("Shaka Khan", "PER"), ("London", "ORG")]


# --- partial annotation ----------------------------------------------------------
def test_missing_annotation_is_marginalized():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("crf_ner")
    examples = make_examples(nlp)
    # a doc whose tokens are all missing ("-") contributes zero loss
    words = "Shaka Khan likes London".split()
    unknown = Example.from_dict(Doc(nlp.vocab, words=words), {"entities": ["-"] * 4})
    fix_random_seed(0)
    nlp.initialize(lambda: examples)
    scores, _ = ner.model.begin_update([unknown.predicted])
    loss, _ = ner.get_loss([unknown], scores)
    assert loss == 0.0
    # partially annotated docs (every other O token unknown, and in one copy of each
    # doc its first entity unknown too): only the known tokens are supervised
    partial = []
    for copy, (text, spans) in itertools.product(range(2), TRAIN):
        tags = spans_to_tags("BILUO", len(text.split()), spans)
        tags = [t if t != "O" or i % 2 else "-" for i, t in enumerate(tags)]
        if copy:
            start, end, _ = spans[0]
            tags[start:end] = ["-"] * (end - start)
        partial.append(Example.from_dict(Doc(nlp.vocab, words=text.split()), {"entities": tags}))
    assert any(t.ent_iob == 0 for eg in partial for t in eg.reference)
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_ner")
    losses = train(nlp, partial + [unknown], steps=80)
    assert losses["crf_ner"] < 0.5
    # it learns what was annotated: every entity, and no entity over a token known as O
    for text, spans in TRAIN:
        found = predicted_spans(nlp, None, text)[0]
        assert set(spans) <= set(found)
        known_o = [i for i, t in enumerate(spans_to_tags("BILUO", len(text.split()), spans)) if t == "O" and i % 2]
        assert not any(s <= i < e for s, e, _ in found for i in known_o)


# --- scoring ----------------------------------------------------------------------
def test_scorer_matches_hand_computed_prf():
    nlp = spacy.blank("en")
    words = "a b c d e f".split()
    gold = Doc(nlp.vocab, words=words)
    gold.set_ents([Span(gold, 0, 2, "PER"), Span(gold, 3, 4, "LOC"), Span(gold, 5, 6, "LOC")])
    pred = Doc(nlp.vocab, words=words)
    # right PER, LOC with wrong boundary, right last LOC, spurious ORG
    pred.set_ents([Span(pred, 0, 2, "PER"), Span(pred, 2, 4, "LOC"), Span(pred, 5, 6, "LOC")])
    scores = span_score([Example(pred, gold)])
    # 2 of 3 predicted right, 2 of 3 gold found
    assert scores["ents_p"] == pytest.approx(2 / 3)
    assert scores["ents_r"] == pytest.approx(2 / 3)
    assert scores["ents_f"] == pytest.approx(2 / 3)
    assert scores["ents_per_type"]["PER"]["f"] == pytest.approx(1.0)
    assert scores["ents_per_type"]["LOC"]["p"] == pytest.approx(0.5)
    gold.spans["chunks"] = [Span(gold, 0, 2, "NP"), Span(gold, 2, 3, "VP")]
    pred.spans["chunks"] = [Span(pred, 0, 2, "NP"), Span(pred, 2, 3, "NP"), Span(pred, 4, 5, "PP")]
    scores = span_score([Example(pred, gold)], spans_key="chunks")
    assert scores["spans_chunks_p"] == pytest.approx(1 / 3)
    assert scores["spans_chunks_r"] == pytest.approx(1 / 2)
    assert scores["spans_chunks_f"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


# --- bad input --------------------------------------------------------------------
def test_bad_config_and_labels():
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="scheme must be one of"):
        nlp.add_pipe("crf_ner", config={"scheme": "IOB1"})
    with pytest.raises(ValueError, match="spans_key"):
        nlp.add_pipe("crf_ner", name="x", config={"spans_key": ""})
    ner = nlp.add_pipe("crf_ner", name="ok")
    with pytest.raises(ValueError, match="blank or padded"):
        ner.add_label(" PER")
    with pytest.raises(ValueError, match="no labels"):
        ner.predict([Doc(nlp.vocab, words=["a"])])


def test_unknown_training_label_is_a_clear_error():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("crf_ner")
    examples = make_examples(nlp)
    ner.initialize(lambda: examples, nlp=nlp, labels=["PER", "LOC"])
    with pytest.raises(ValueError, match="not among the component's"):
        ner.get_loss(examples, ner.model.predict([eg.predicted for eg in examples]))


def test_overlapping_gold_spans_are_a_clear_error():
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_ner", config={"spans_key": "sc"})
    words = "New York City".split()
    ref = Doc(nlp.vocab, words=words)
    ref.spans["sc"] = [Span(ref, 0, 2, "GPE"), Span(ref, 0, 3, "GPE")]
    with pytest.raises(ValueError, match="non-overlapping"):
        nlp.initialize(lambda: [Example(Doc(nlp.vocab, words=words), ref)])


def test_add_pipe_crf_ner_in_a_fresh_interpreter():
    code = (
        "import spacy\n"
        "nlp = spacy.blank('en')\n"
        "print(type(nlp.add_pipe('crf_ner')).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "CRFEntityRecognizer"
