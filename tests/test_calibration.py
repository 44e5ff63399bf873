"""Calibration: ECE over equal-mass bins against hand computations, temperature fitting,
and a component's temperature (applied to every confidence, saved with it)."""
import numpy
import pytest
import spacy
import srsly
from spacy.tokens import Doc, Span
from spacy.training import Example
from thinc.api import fix_random_seed

from spacy_seqlab.calibration import (
    apply_span_calibration,
    binary_nll,
    check_span_calibration,
    expected_calibration_error,
    fit_component_span_calibration,
    fit_component_temperature,
    fit_platt,
    fit_span_calibration,
    fit_temperature,
    reliability_bins,
)
from spacy_seqlab.components.crf_ner import CONFIDENCE_EXTENSION
from spacy_seqlab.components.saved import LoadError

from .crf_brute_force import brute_force
from .tiny_pipelines import fit, span_examples


def test_ece_by_hand():
    # two bins of two: (0.6, 0.7) all right, (0.8, 0.9) half right
    assert expected_calibration_error([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 1], n_bins=2) == pytest.approx(
        0.5 * abs(0.65 - 1.0) + 0.5 * abs(0.85 - 0.5)
    )
    # five predictions in three equal-mass bins of sizes 2, 2, 1
    conf, hit = [0.5, 0.1, 0.4, 0.2, 0.3], [1, 0, 1, 0, 1]
    bins = reliability_bins(conf, hit, n_bins=3)
    assert [(b.count, b.confidence, b.accuracy) for b in bins] == [
        (2, pytest.approx(0.15), 0.0), (2, pytest.approx(0.35), 1.0), (1, 0.5, 1.0)
    ]
    assert expected_calibration_error(conf, hit, n_bins=3) == pytest.approx(
        2 / 5 * 0.15 + 2 / 5 * 0.65 + 1 / 5 * 0.5
    )
    # perfectly calibrated bins: zero
    assert expected_calibration_error([0.5] * 4 + [1.0] * 2, [1, 0, 0, 1, 1, 1], n_bins=3) == pytest.approx(0.0)


def test_ece_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        expected_calibration_error([0.5, 0.5], [1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error([1.5], [1])
    with pytest.raises(ValueError, match="no predictions"):
        expected_calibration_error([], [])


def test_fit_temperature_recovers_the_true_one():
    rng = numpy.random.default_rng(0)
    logits = rng.normal(size=20000) * 4
    correct = rng.random(20000) < 1 / (1 + numpy.exp(-logits / 2.5))  # truth: T = 2.5

    def loss(t):
        return binary_nll(1 / (1 + numpy.exp(-logits / t)), correct)

    t, value = fit_temperature(loss)
    assert t == pytest.approx(2.5, rel=0.08)
    assert value <= loss(1.0) and value <= loss(t * 1.1) and value <= loss(t / 1.1)


SPANS = [
    ("Who is Shaka Khan in London ?", [(2, 4, "PER"), (5, 6, "LOC")]),
    ("I like London and New York .", [(2, 3, "LOC"), (4, 6, "LOC")]),
    ("Angela Merkel visited Paris today .", [(0, 2, "PER"), (3, 4, "LOC")]),
    ("The New York Times hired John .", [(0, 4, "ORG"), (5, 6, "PER")]),
]
TAGS = [
    ("I will fight", ["PRP", "MD", "VB"]),
    ("They fight the will", ["PRP", "VBP", "DT", "NN"]),
    ("She will read books", ["PRP", "MD", "VB", "NNS"]),
]


@pytest.fixture(scope="module")
def tagger():
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_tagger")
    examples = [Example.from_dict(nlp.make_doc(t), {"tags": tags}) for t, tags in TAGS]
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(15):  # not to convergence: confidences well below 1
        nlp.update(examples, sgd=optimizer)
    return nlp


def test_temperature_divides_every_score_and_keeps_the_path(tagger, tmp_path):
    pipe = tagger.get_pipe("crf_tagger")
    pipe.set_temperature(1.0)
    doc = Doc(tagger.vocab, words="She will fight the books".split())
    before = pipe(doc.copy())
    pipe.set_temperature(3.0)
    after = pipe(doc.copy())
    assert [t.tag_ for t in after] == [t.tag_ for t in before]
    raw = pipe.model.predict([doc])
    pot = raw.potentials
    _, nodes, _, best, _ = brute_force(
        raw.emissions[0].astype("float64") / 3, len(doc), pot.transitions / 3, pot.start / 3, pot.end / 3
    )
    labels = list(pipe.labels)
    assert [labels[i] for i in best] == [t.tag_ for t in after]
    assert [t._.tag_confidence for t in after] == pytest.approx(
        [nodes[i, j] for i, j in enumerate(best)], abs=1e-5
    )
    assert numpy.mean([t._.tag_confidence for t in after]) < numpy.mean([t._.tag_confidence for t in before])
    tagger.to_disk(tmp_path)
    loaded = spacy.load(tmp_path)
    assert loaded.get_pipe("crf_tagger").temperature == 3.0
    assert [t._.tag_confidence for t in loaded(doc.copy())] == pytest.approx([t._.tag_confidence for t in after])
    for bad in (0, -1.0, float("nan"), "2"):
        with pytest.raises(ValueError, match="finite positive"):
            pipe.set_temperature(bad)
    pipe.set_temperature(1.0)


def test_fit_component_temperature_lowers_the_nll(tagger):
    pipe = tagger.get_pipe("crf_tagger")
    examples = [Example.from_dict(tagger.make_doc(t), {"tags": tags}) for t, tags in TAGS]
    conf, hit = pipe.confidence_pairs(examples, pipe.scores([eg.predicted for eg in examples]))
    assert len(conf) == sum(len(tags) for _, tags in TAGS) and hit.all()
    t, nll = fit_component_temperature(pipe, examples)
    assert pipe.temperature == t
    assert t < 1.0  # every decoded tag is right: sharper confidences fit better
    assert nll < binary_nll(conf, hit)
    pipe.set_temperature(1.0)


def test_fit_platt_recovers_the_true_map():
    rng = numpy.random.default_rng(1)
    logits = rng.normal(size=20000) * 3
    correct = rng.random(20000) < 1 / (1 + numpy.exp(-(0.5 * logits - 1.0)))  # truth: a = 0.5, b = -1
    a, b = fit_platt(1 / (1 + numpy.exp(-logits)), correct)
    assert a == pytest.approx(0.5, abs=0.05) and b == pytest.approx(-1.0, abs=0.08)
    # every span right: finite, and sharper than the identity
    a, b = fit_platt([0.6, 0.7, 0.8], [True, True, True])
    assert numpy.isfinite([a, b]).all() and a * 0.0 + b > 0


def test_span_calibration_maps_each_span_by_its_group():
    cal = {"by": "label", "maps": {"*": [1.0, 0.0], "PER": [1.0, -100.0]}}
    assert check_span_calibration(cal) == cal
    out = apply_span_calibration(cal, [0.9, 0.9], ["PER", "LOC"], [2, 2])
    assert out[0] < 1e-30 and out[1] == pytest.approx(0.9)  # LOC has no map of its own: "*"
    by_length = {"by": "length", "maps": {"*": [1.0, 0.0], "3": [0.0, 0.0]}}
    assert apply_span_calibration(by_length, [0.9, 0.9, 0.9], ["A", "A", "A"], [1, 3, 7]) == pytest.approx([0.9, 0.5, 0.5])
    assert apply_span_calibration(None, [0.3], ["A"], [1]) == pytest.approx([0.3])
    fitted = fit_span_calibration("label", [0.9] * 60 + [0.5] * 10, [True] * 40 + [False] * 30, ["PER"] * 60 + ["LOC"] * 10, [1] * 70)
    assert set(fitted["maps"]) == {"*", "PER"}  # LOC has fewer than MIN_GROUP_SPANS spans
    assert check_span_calibration(fitted) == fitted


@pytest.mark.parametrize("bad,match", [
    ({"by": "label"}, "keys 'by' and 'maps'"),
    ({"by": "word", "maps": {"*": [1, 0]}}, "must be one of"),
    ({"by": "all", "maps": {"PER": [1, 0]}}, "'\\*' entry"),
    ({"by": "all", "maps": {"*": [1, float("nan")]}}, "two finite numbers"),
    ({"by": "all", "maps": {"*": [1]}}, "two finite numbers"),
    ("label", "a dict"),
])
def test_span_calibration_rejects_malformed_values(bad, match):
    with pytest.raises(ValueError, match=match):
        check_span_calibration(bad)


@pytest.mark.parametrize("spans_key", [None, "chunks"], ids=["ents", "spans"])
def test_span_calibration_of_crf_ner_is_applied_saved_and_checked(spans_key, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_ner", config={"spans_key": spans_key})
    examples = span_examples(nlp, SPANS, spans_key)
    fit(nlp, examples, 12)  # not to convergence: probabilities below 1
    pipe = nlp.get_pipe("crf_ner")
    pipe.set_temperature(5.0)  # the map goes on top of a temperature (here flattening)
    raw, hit, labels, lengths = pipe.span_pairs(examples, pipe.scores([eg.predicted for eg in examples]))
    assert len(raw) and (raw < 0.999).any()
    calibration = fit_component_span_calibration(pipe, examples, by="all")
    assert pipe.span_calibration == calibration
    conf, _ = pipe.confidence_pairs(examples, pipe.scores([eg.predicted for eg in examples]))
    assert conf == pytest.approx(apply_span_calibration(calibration, raw, labels, lengths))
    assert binary_nll(conf, hit) < binary_nll(raw, hit)
    docs = list(nlp.pipe(text for text, _ in SPANS))
    written = [
        getattr(s._, CONFIDENCE_EXTENSION)
        for doc in docs for s in (doc.ents if spans_key is None else doc.spans[spans_key])
    ]
    assert written == pytest.approx(conf.tolist(), abs=1e-6)
    if spans_key is not None:
        scores = [float(x) for doc in docs for x in doc.spans[spans_key].attrs["scores"]]
        assert scores == pytest.approx(conf.tolist(), abs=1e-6)
    nlp.to_disk(tmp_path / "model")
    for loaded in (spacy.load(tmp_path / "model"), spacy.load(tmp_path / "model").from_bytes(nlp.to_bytes())):
        saved = loaded.get_pipe("crf_ner").span_calibration  # JSON keeps 10 significant digits
        assert saved["by"] == "all" and saved["maps"]["*"] == pytest.approx(calibration["maps"]["*"], rel=1e-9)
        again = [
            getattr(s._, CONFIDENCE_EXTENSION)
            for doc in loaded.pipe(text for text, _ in SPANS)
            for s in (doc.ents if spans_key is None else doc.spans[spans_key])
        ]
        assert again == pytest.approx(written)
    # a new temperature drops the map fitted on the old one
    fit_component_temperature(pipe, examples)
    assert pipe.span_calibration is None
    # a corrupted map is refused when the pipeline loads, naming the problem
    cfg_path = tmp_path / "model" / "crf_ner" / "cfg"
    cfg = srsly.read_json(cfg_path)
    cfg["span_calibration"] = {"by": "label", "maps": {"*": [1.0, None]}}
    srsly.write_json(cfg_path, cfg)
    with pytest.raises(LoadError, match="two finite numbers"):
        spacy.load(tmp_path / "model")


def test_fitting_on_examples_without_gold_is_a_clear_error():
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_ner")
    fit(nlp, span_examples(nlp, SPANS), 5)
    unannotated = [Example(nlp.make_doc(text), nlp.make_doc(text)) for text, _ in SPANS]
    with pytest.raises(ValueError, match="nothing to fit a temperature on"):
        fit_component_temperature(nlp.get_pipe("crf_ner"), unannotated)
    with pytest.raises(ValueError, match="needs examples"):
        fit_component_temperature(nlp.get_pipe("crf_ner"), [])


def test_spans_on_missing_annotation_are_left_out_not_counted_wrong():
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("crf_ner")
    fit(nlp, span_examples(nlp, SPANS), 40)
    words = "Who is Shaka Khan in London ?".split()
    full, partial = Doc(nlp.vocab, words=words), Doc(nlp.vocab, words=words)
    full.set_ents([Span(full, 2, 4, "PER"), Span(full, 5, 6, "LOC")], default="outside")
    partial.set_ents([Span(partial, 2, 4, "PER")], missing=[Span(partial, 5, 6, "")], default="outside")
    examples = [Example(Doc(nlp.vocab, words=words), ref) for ref in (full, partial)]
    probs, hits, labels, lengths = pipe.span_pairs(examples, pipe.scores([eg.predicted for eg in examples]))
    assert list(labels) == ["PER", "LOC", "PER"] and hits.all()  # the second LOC has no gold
