"""The MEMM layer's math (local normalization, loss and gradient, Viterbi and greedy
decoding) and the memm_tagger component: training, serialization, bad input."""
import itertools

import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import fix_random_seed
from thinc.api import NumpyOps

from spacy_seqlab.components.memm_tagger import MEMMTagger
from spacy_seqlab.crf import ChainPotentials
from spacy_seqlab.layers.crf import CRFScores
from spacy_seqlab.layers.memm import (
    local_log_probs,
    memm_decode,
    memm_greedy,
    memm_loss,
    memm_viterbi,
)

OPS = NumpyOps()
TRAIN_DATA = [
    ("I will fight", {"tags": ["PRP", "MD", "VB"]}),
    ("They fight the will", {"tags": ["PRP", "VBP", "DT", "NN"]}),
]


def random_problem(seed: int, B: int = 3, T: int = 5, L: int = 3):
    """Random float64 emissions (B, T, L), ragged lengths (the first is T) and potentials."""
    rng = numpy.random.default_rng(seed)
    emissions = rng.normal(size=(B, T, L)) * 2
    lengths = numpy.concatenate([[T], rng.integers(1, T + 1, size=B - 1)])
    potentials = ChainPotentials(rng.normal(size=(L, L)) * 2, rng.normal(size=L), numpy.zeros(L))
    return emissions, lengths, potentials


def path_log_prob(log_p, path) -> float:
    """sum_t log P(y_t | y_{t-1}) of one path, from ``local_log_probs`` of its row."""
    return float(log_p[0, 0, path[0]] + sum(log_p[t, path[t - 1], path[t]] for t in range(1, len(path))))


# --- the math ----------------------------------------------------------------------
def test_local_probabilities_sum_to_one_and_are_softmaxes():
    E, _, pots = random_problem(0, L=4)
    log_p = local_log_probs(numpy, E, pots)
    assert log_p.shape == (3, 5, 4, 4)
    numpy.testing.assert_allclose(numpy.exp(log_p).sum(axis=3), 1.0, rtol=1e-12)
    b, t, i = 1, 3, 2
    logits = E[b, t] + pots.transitions[i]
    numpy.testing.assert_allclose(numpy.exp(log_p[b, t, i]), numpy.exp(logits) / numpy.exp(logits).sum())
    first = E[b, 0] + pots.start
    numpy.testing.assert_allclose(numpy.exp(log_p[b, 0, i]), numpy.exp(first) / numpy.exp(first).sum())


def test_normalizers_stay_exact_beyond_float32_exp_range():
    E, _, pots = random_problem(1)
    pots.transitions = pots.transitions * 30
    log_p = local_log_probs(numpy, E * 30, pots)
    numpy.testing.assert_allclose(numpy.exp(log_p).sum(axis=3), 1.0, rtol=1e-9)


def gold_masks(lengths, L, seed):
    """Random known labels, with a missing one in row 0 (position 2) and, if there is
    a row 1, a negative one there (position 0)."""
    rng = numpy.random.default_rng(seed)
    masks = [numpy.eye(L, dtype=bool)[rng.integers(0, L, n)] for n in lengths]
    masks[0][2] = True
    if len(masks) > 1:
        masks[1][0] = True
        masks[1][0, 1] = False
    return masks


def test_loss_and_gradient_match_finite_differences():
    E, lengths, pots = random_problem(2, B=3, T=5, L=3)
    lengths[1] = 3
    allowed = gold_masks(lengths, 3, seed=2)

    def loss_of(E, A, s):
        scores = CRFScores(E, lengths, ChainPotentials(A, s, numpy.zeros(3)))
        return memm_loss(OPS, scores, allowed)

    loss, grad = loss_of(E, pots.transitions, pots.start)
    assert loss > 0
    params = {"emissions": E, "transitions": pots.transitions, "start": pots.start}
    eps = 1e-6
    for name, value in params.items():
        numeric = numpy.zeros_like(value)
        for index in numpy.ndindex(value.shape):
            shifted = {}
            for sign in (1, -1):
                moved = {k: v.copy() for k, v in params.items()}
                moved[name][index] += sign * eps
                shifted[sign] = loss_of(moved["emissions"], moved["transitions"], moved["start"])[0]
            numeric[index] = (shifted[1] - shifted[-1]) / (2 * eps)
        numpy.testing.assert_allclose(getattr(grad, name), numeric, atol=1e-5)
    assert not grad.end.any()


def test_loss_conditions_on_the_gold_previous_label_and_skips_unknown_contexts():
    """Row 0 has a missing label at position 2: position 2 adds nothing and position 3
    has no gold context, so only positions 0, 1 and 4 count."""
    E, lengths, pots = random_problem(3, B=1, T=5, L=3)
    allowed = gold_masks(lengths, 3, seed=3)
    gold = allowed[0].argmax(axis=1)
    log_p = local_log_probs(numpy, E, pots)[0]
    expected = -(log_p[0, 0, gold[0]] + log_p[1, gold[0], gold[1]] + log_p[4, gold[3], gold[4]])
    loss, grad = memm_loss(OPS, CRFScores(E, lengths, pots), allowed)
    assert loss == pytest.approx(expected, rel=1e-6)
    assert not grad.emissions[0, 2:4].any()


def test_negative_label_is_learned_as_not_that_label():
    E, lengths, pots = random_problem(4, B=1, T=1, L=3)
    allowed = [numpy.array([[True, False, True]])]
    loss, _ = memm_loss(OPS, CRFScores(E, lengths, pots), allowed)
    p = numpy.exp(local_log_probs(numpy, E, pots)[0, 0, 0])
    assert loss == pytest.approx(-numpy.log(1 - p[1]))


@pytest.mark.parametrize("seed", range(5))
def test_viterbi_equals_exhaustive_search(seed):
    E, lengths, pots = random_problem(seed, B=4, T=5, L=3)
    paths = memm_viterbi(numpy, E, lengths, pots)
    log_p = local_log_probs(numpy, E, pots)
    for b, n in enumerate(lengths):
        best = max(itertools.product(range(3), repeat=n), key=lambda y: path_log_prob(log_p[b], y))
        assert paths[b, :n].tolist() == list(best)
        assert (paths[b, n:] == -1).all()


@pytest.mark.parametrize("seed", range(5))
def test_greedy_equals_the_argmax_chain(seed):
    E, lengths, pots = random_problem(seed, B=4, T=6, L=4)
    paths = memm_greedy(numpy, E, lengths, pots)
    log_p = local_log_probs(numpy, E, pots)
    for b, n in enumerate(lengths):
        chain = [int(log_p[b, 0, 0].argmax())]
        for t in range(1, n):
            chain.append(int(log_p[b, t, chain[-1]].argmax()))
        assert paths[b, :n].tolist() == chain
        assert (paths[b, n:] == -1).all()


def test_decode_gives_local_probabilities_of_the_chosen_labels():
    E, lengths, pots = random_problem(5, B=3, T=4, L=3)
    lengths[2] = 0
    scores = CRFScores(E.astype("float32"), lengths, pots)
    paths, probs = memm_decode(OPS, scores, "greedy")
    log_p = local_log_probs(numpy, E, pots)
    for b, n in enumerate(lengths):
        assert len(paths[b]) == len(probs[b]) == n
        expected = [log_p[b, t, paths[b][t - 1] if t else 0, paths[b][t]] for t in range(n)]
        numpy.testing.assert_allclose(probs[b], numpy.exp(expected), rtol=1e-5)
    with pytest.raises(ValueError, match="decoding must be one of"):
        memm_decode(OPS, scores, "beam")


# --- the component -------------------------------------------------------------------
def make_examples(nlp, data=TRAIN_DATA):
    return [Example.from_dict(nlp.make_doc(text), annots) for text, annots in data]


def train(nlp, examples, steps=60):
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    losses = {}
    for _ in range(steps):
        losses = nlp.update(examples, sgd=optimizer, losses={})
    return losses


@pytest.fixture(scope="module")
def trained():
    nlp = spacy.blank("en")
    nlp.add_pipe("memm_tagger")
    losses = train(nlp, make_examples(nlp))
    return nlp, losses


def predictions(nlp, texts):
    return [[(t.tag_, t._.tag_confidence) for t in doc] for doc in nlp.pipe(texts)]


def test_overfits_two_sentences_and_round_trips(trained, tmp_path):
    nlp, losses = trained
    assert isinstance(nlp.get_pipe("memm_tagger"), MEMMTagger)
    assert losses["memm_tagger"] < 0.01
    texts = [text for text, _ in TRAIN_DATA]
    before = predictions(nlp, texts)
    for (_, annots), doc_preds in zip(TRAIN_DATA, before):
        assert [tag for tag, _ in doc_preds] == annots["tags"]
        assert all(0.99 < conf <= 1.0 + 1e-6 for _, conf in doc_preds)
    nlp.to_disk(tmp_path)
    assert predictions(spacy.load(tmp_path), texts) == before
    from_bytes = spacy.blank("en")
    from_bytes.add_pipe("memm_tagger")
    from_bytes.from_bytes(nlp.to_bytes())
    assert predictions(from_bytes, texts) == before


def test_decoding_is_a_load_time_setting(trained, tmp_path):
    nlp, _ = trained
    nlp.to_disk(tmp_path)
    greedy = spacy.load(tmp_path, config={"components": {"memm_tagger": {"decoding": "greedy"}}})
    assert greedy.get_pipe("memm_tagger").decoding == "greedy"
    assert [t.tag_ for t in greedy("I will fight")] == ["PRP", "MD", "VB"]


@pytest.mark.parametrize("text", ["", "   ", "will"])
def test_empty_whitespace_and_single_token_docs(trained, text):
    nlp, _ = trained
    doc = nlp(text)
    assert len(doc) == len(nlp.make_doc(text))
    assert all(t.tag_ for t in doc)
    docs = list(nlp.pipe([text, "I will fight", text]))
    assert [t.tag_ for t in docs[1]] == ["PRP", "MD", "VB"]
    assert nlp.get_pipe("memm_tagger").predict([]) == ([], [])


@pytest.mark.parametrize("decoding", ["viterbi", "greedy"])
def test_twelve_thousand_token_doc(trained, decoding):
    nlp, _ = trained
    tagger = nlp.get_pipe("memm_tagger")
    tagger.decoding = decoding
    try:
        doc = nlp(Doc(nlp.vocab, words=["I", "will", "fight", "."] * 3_000))
    finally:
        tagger.decoding = "viterbi"
    assert len(doc) == 12_000
    assert [t.tag_ for t in doc[6000:6003]] == ["PRP", "MD", "VB"]
    assert all(0.0 <= t._.tag_confidence <= 1.0 + 1e-6 for t in doc)


def test_pos_attr_writes_pos():
    nlp = spacy.blank("en")
    nlp.add_pipe("memm_tagger", config={"attr": "pos"})
    data = [("I will fight", {"pos": ["PRON", "AUX", "VERB"]})]
    train(nlp, make_examples(nlp, data), steps=40)
    doc = nlp("I will fight")
    assert [t.pos_ for t in doc] == ["PRON", "AUX", "VERB"]
    assert doc[1]._.pos_confidence > 0.5


@pytest.mark.parametrize(
    "config,match",
    [
        ({"decoding": "beam"}, "decoding must be one of"),
        ({"decoding": "Viterbi"}, "decoding must be one of"),
        ({"attr": "lemma"}, "attr must be one of"),
    ],
)
def test_bad_config_values_raise_clear_errors(config, match):
    with pytest.raises(ValueError, match=match):
        spacy.blank("en").add_pipe("memm_tagger", config=config)


def test_unknown_gold_label_in_training_raises_clear_error():
    nlp = spacy.blank("en")
    tagger = nlp.add_pipe("memm_tagger")
    nlp.initialize(lambda: make_examples(nlp))
    bad = [Example.from_dict(nlp.make_doc("I will"), {"tags": ["PRP", "XYZ"]})]
    with pytest.raises(ValueError, match="'XYZ' is not among"):
        nlp.update(bad)
    assert "XYZ" not in tagger.labels


def test_model_is_sized_to_the_labels():
    nlp = spacy.blank("en")
    tagger = nlp.add_pipe("memm_tagger")
    tagger.initialize(lambda: make_examples(nlp), nlp=nlp, labels=["MD", "NN", "PRP"])
    memm = tagger.model.get_ref("memm")
    assert memm.get_dim("nO") == 3
    assert memm.get_param("transitions").shape == (3, 3)
    tagger.add_label("RB")  # grows the model (tests/test_add_label.py)
    assert memm.get_param("transitions").shape == (4, 4)
