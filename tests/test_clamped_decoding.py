"""Decoding around fixed labels: pre-set tags (``overwrite=False``) and pre-set entities
clamp the CRF, so the rest of the doc is decoded, and every confidence computed, given
them; checked against exhaustive enumeration on tiny docs."""
import numpy
import pytest
import spacy
from spacy.tokens import Doc, Span
from spacy.training import Example

from spacy_seqlab.schemes import tags_to_spans

from .crf_brute_force import enumerate_sequences
from .tiny_pipelines import fit, span_examples

WORDS = "Angela Merkel visited Paris today".split()


def randomized(pipe, seed, scale=2.0):
    """Give an initialized component random emission and chain weights, so that its
    posteriors are far from uniform and every label sequence has its own score."""
    rng = numpy.random.default_rng(seed)
    for ref in ("output_layer", "crf"):
        layer = pipe.model.get_ref(ref)
        for name in layer.param_names:
            shape = layer.get_param(name).shape
            layer.set_param(name, (rng.normal(size=shape) * scale).astype("float32"))
    return pipe


def enumerate_model(pipe, doc, allowed):
    """Every label sequence of ``doc`` allowed by the transition mask and ``allowed``
    (n, L), with its probability given them."""
    scores = pipe.model.predict([doc])
    pot = scores.potentials
    E = scores.emissions[0, : len(doc)].astype("float64")
    seqs, logits = enumerate_sequences(
        E, len(doc), pot.transitions, pot.start, pot.end, allowed=allowed, mask=pot.mask
    )
    probs = numpy.exp(logits - numpy.logaddexp.reduce(logits))
    return seqs, probs


def tagger_pipeline(seed):
    nlp = spacy.blank("en")
    tagger = nlp.add_pipe("crf_tagger")  # overwrite=False by default
    doc = Doc(nlp.vocab, words=WORDS)
    example = Example.from_dict(doc, {"tags": ["NNP", "NNP", "VBD", "NNP", "NN"]})
    nlp.initialize(lambda: [example])
    return nlp, randomized(tagger, seed)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("fixed", [{1: "VBD"}, {0: "NN", 3: "VBD"}, {4: "UNKNOWN"}])
def test_tagger_decodes_and_scores_given_preset_tags(seed, fixed):
    nlp, tagger = tagger_pipeline(seed)
    labels = list(tagger.labels)
    doc = Doc(nlp.vocab, words=WORDS)
    allowed = numpy.ones((len(doc), len(labels)), dtype=bool)
    for i, tag in fixed.items():
        doc[i].tag_ = tag
        if tag in labels:
            allowed[i] = numpy.asarray(labels) == tag
    seqs, probs = enumerate_model(tagger, doc, allowed)
    best = seqs[int(numpy.argmax(probs))]
    marginals = numpy.zeros(allowed.shape)
    for y, p in zip(seqs, probs):
        marginals[numpy.arange(len(y)), y] += p
    doc = tagger(doc)
    for i, token in enumerate(doc):
        if i in fixed:
            assert token.tag_ == fixed[i]  # kept, even where the tagger has no such label
            assert token._.tag_confidence == 1.0
        else:
            assert token.tag_ == labels[best[i]]
            assert token._.tag_confidence == pytest.approx(marginals[i, best[i]], abs=1e-5)


def test_tagger_overwrite_true_ignores_preset_tags():
    nlp, tagger = tagger_pipeline(0)
    tagger.cfg["overwrite"] = True
    free = tagger(Doc(nlp.vocab, words=WORDS))
    preset = Doc(nlp.vocab, words=WORDS)
    preset[1].tag_ = "VBD"
    preset = tagger(preset)
    assert [t.tag_ for t in preset] == [t.tag_ for t in free]
    assert [t._.tag_confidence for t in preset] == [t._.tag_confidence for t in free]


def test_pos_tagger_keeps_preset_pos_and_reads_its_confidences():
    nlp = spacy.blank("en")
    tagger = nlp.add_pipe("crf_tagger", config={"attr": "pos"})
    example = Example.from_dict(
        Doc(nlp.vocab, words=WORDS), {"pos": ["PROPN", "PROPN", "VERB", "PROPN", "NOUN"]}
    )
    nlp.initialize(lambda: [example])
    randomized(tagger, 0)
    doc = Doc(nlp.vocab, words=WORDS)
    doc[0].pos_ = "X"  # not one of the tagger's labels
    doc[2].pos_ = "VERB"
    doc = tagger(doc)
    assert [doc[0].pos_, doc[2].pos_] == ["X", "VERB"]
    assert [doc[0]._.pos_confidence, doc[2]._.pos_confidence] == [1.0, 1.0]
    free = [t._.pos_confidence for i, t in enumerate(doc) if i not in (0, 2)]
    assert all(c is not None and 0.0 < c <= 1.0 for c in free)


def ner_pipeline(scheme, seed):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("crf_ner", config={"scheme": scheme})
    ref = Doc(nlp.vocab, words=WORDS[:4])
    ref.set_ents([Span(ref, 0, 2, "PER"), Span(ref, 3, 4, "LOC")])
    nlp.initialize(lambda: [Example(Doc(nlp.vocab, words=WORDS[:4]), ref)])
    return nlp, randomized(ner, seed, scale=3.0)


def span_posteriors(tags, seqs, probs):
    out = {}
    for y, p in zip(seqs, probs):
        for span in tags_to_spans([tags[i] for i in y]):
            out[span] = out.get(span, 0.0) + p
    return out


@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    "preset,blocked",
    [([(1, 2, "LOC")], []), ([(0, 2, "LOC")], [3]), ([(2, 3, "ORG")], []), ([], [0, 1])],
    ids=["known", "known+blocked", "unknown-label", "blocked"],
)
def test_ner_decodes_and_scores_given_preset_entities(scheme, seed, preset, blocked):
    nlp, ner = ner_pipeline(scheme, seed)
    tags = ner.output_labels
    doc = Doc(nlp.vocab, words=WORDS[:4])
    fixed = [Span(doc, s, e, label) for s, e, label in preset]
    doc.set_ents(fixed, blocked=[Span(doc, i, i + 1) for i in blocked], default="missing")
    # what the clamp means, spelled out: the fixed spans appear exactly as given
    # (a label the component does not know: no predicted span overlaps it) and
    # blocked tokens are outside every span
    scores = ner.model.predict([doc])
    pot = scores.potentials
    E = scores.emissions[0, : len(doc)].astype("float64")
    seqs, logits = enumerate_sequences(E, len(doc), pot.transitions, pot.start, pot.end, mask=pot.mask)
    keep = []
    for y, logit in zip(seqs, logits):
        spans = tags_to_spans([tags[i] for i in y]) if numpy.isfinite(logit) else None
        ok = spans is not None
        for s, e, label in preset if ok else []:
            if label in ner.labels:
                ok = ok and (s, e, label) in spans
            else:
                ok = ok and not any(a < e and s < b for a, b, _ in spans)
        covered = {t for a, b, _ in spans or [] for t in range(a, b)}
        ok = ok and not covered.intersection(blocked)
        keep.append(ok)
    seqs = [y for y, k in zip(seqs, keep) if k]
    logits = numpy.asarray([lg for lg, k in zip(logits, keep) if k])
    probs = numpy.exp(logits - numpy.logaddexp.reduce(logits))
    best = tags_to_spans([tags[i] for i in seqs[int(numpy.argmax(probs))]])
    posterior = span_posteriors(tags, seqs, probs)

    doc = ner(doc)
    got = sorted((e.start, e.end, e.label_) for e in doc.ents)
    unknown = [(s, e, label) for s, e, label in preset if label not in ner.labels]
    assert got == sorted(best + unknown)
    for ent in doc.ents:
        key = (ent.start, ent.end, ent.label_)
        if key in unknown:
            assert ent._.crf_confidence is None  # not the CRF's to score
        else:
            assert ent._.crf_confidence == pytest.approx(posterior[key], abs=1e-5)
            if key in preset:
                assert ent._.crf_confidence == pytest.approx(1.0)
    assert all(doc[i].ent_iob_ == "O" for i in blocked)


def test_nbest_is_conditioned_on_preset_entities():
    nlp, ner = ner_pipeline("BILUO", 1)
    doc = Doc(nlp.vocab, words=WORDS[:4])
    doc.set_ents([Span(doc, 3, 4, "PER")], default="missing")
    (analyses,) = ner.nbest([doc], n=50)
    assert all((3, 4, "PER") in [(s.start, s.end, s.label_) for s in a.spans] for a in analyses)
    assert sum(a.probability for a in analyses) <= 1.0 + 1e-5


TRAIN = [
    ("Who is Shaka Khan in London ?", [(2, 4, "PER"), (5, 6, "LOC")]),
    ("I like London and New York .", [(2, 3, "LOC"), (4, 6, "LOC")]),
    ("Angela Merkel visited Paris today .", [(0, 2, "PER"), (3, 4, "LOC")]),
    ("The New York Times hired John .", [(0, 4, "ORG"), (5, 6, "PER")]),
    ("Angela met Merkel .", [(0, 1, "PER"), (2, 3, "PER")]),
]


@pytest.fixture(scope="module")
def ruled():
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    nlp.add_pipe("crf_ner")
    fit(nlp, span_examples(nlp, TRAIN), 60)
    ruler.add_patterns([{"label": "ORG", "pattern": "Merkel"}])  # initialize() resets it
    return nlp


def test_ruler_entity_is_a_clamp_not_a_veto(ruled):
    """Without the ruler "Angela Merkel" is one PER; with "Merkel" ruled ORG the
    prediction is not dropped whole: "Angela" is decoded given the fixed ORG."""
    with ruled.select_pipes(disable=["entity_ruler"]):
        alone = ruled("Angela Merkel visited Paris today .")
    assert [(e.text, e.label_) for e in alone.ents] == [("Angela Merkel", "PER"), ("Paris", "LOC")]
    doc = ruled("Angela Merkel visited Paris today .")
    assert [(e.text, e.label_) for e in doc.ents] == [
        ("Angela", "PER"), ("Merkel", "ORG"), ("Paris", "LOC")
    ]
    confidences = {e.text: e._.crf_confidence for e in doc.ents}
    assert confidences["Merkel"] == pytest.approx(1.0)  # given
    assert 0.0 < confidences["Angela"] < 1.0
