"""Calibration: ECE over equal-mass bins against hand computations, temperature fitting,
and a component's temperature (applied to every confidence, saved with it)."""
import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import fix_random_seed

from spacy_seqlab.calibration import (
    binary_nll,
    expected_calibration_error,
    fit_component_temperature,
    fit_temperature,
    reliability_bins,
)

from .crf_brute_force import brute_force


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
