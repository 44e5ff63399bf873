"""The HMM (spacy_seqlab.hmm) and the hmm_tagger component: decoding, counting, the
unknown-word model, training, serialization, bad input."""
import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example

import spacy_seqlab  # noqa: F401
from spacy_seqlab.hmm import (
    HMMParams,
    HMMSettings,
    count_transitions,
    deleted_interpolation,
    fit_hmm,
    viterbi,
)

TRAIN_DATA = [
    ("I will fight", {"tags": ["PRP", "MD", "VB"], "pos": ["PRON", "AUX", "VERB"]}),
    ("They fight the will", {"tags": ["PRP", "VBP", "DT", "NN"], "pos": ["PRON", "VERB", "DET", "NOUN"]}),
    ("She will read books", {"tags": ["PRP", "MD", "VB", "NNS"], "pos": ["PRON", "AUX", "VERB", "NOUN"]}),
    ("We read the books", {"tags": ["PRP", "VBP", "DT", "NNS"], "pos": ["PRON", "VERB", "DET", "NOUN"]}),
    ("He reads a book", {"tags": ["PRP", "VBZ", "DT", "NN"], "pos": ["PRON", "VERB", "DET", "NOUN"]}),
]


def make_examples(nlp, data=TRAIN_DATA):
    return [Example.from_dict(nlp.make_doc(text), annots) for text, annots in data]


@pytest.fixture(scope="module")
def trained():
    nlp = spacy.blank("en")
    nlp.add_pipe("hmm_tagger")
    nlp.initialize(lambda: make_examples(nlp))
    return nlp


def tags(nlp, texts):
    return [[t.tag_ for t in doc] for doc in nlp.pipe(texts)]


# --- decoding ---------------------------------------------------------------------
def brute_force(log_trans, emissions):
    """The best score over all state sequences, by enumeration."""
    order, boundary = log_trans.ndim - 1, log_trans.shape[0] - 1
    best = -math.inf
    for path in itertools.product(range(emissions.shape[1]), repeat=len(emissions)):
        padded = [boundary] * order + list(path) + [boundary]
        score = sum(log_trans[tuple(padded[i: i + order + 1])] for i in range(len(path) + 1))
        best = max(best, score + sum(emissions[i, s] for i, s in enumerate(path)))
    return best


def path_score(log_trans, emissions, path):
    order, boundary = log_trans.ndim - 1, log_trans.shape[0] - 1
    padded = [boundary] * order + list(path) + [boundary]
    score = sum(log_trans[tuple(padded[i: i + order + 1])] for i in range(len(path) + 1))
    return score + sum(emissions[i, s] for i, s in enumerate(path))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("length", [0, 1, 2, 5])
@pytest.mark.parametrize("masked", [False, True])
def test_viterbi_equals_exhaustive_search(order, length, masked):
    rng = numpy.random.default_rng(order * 100 + length * 10 + masked)
    n_states = 3
    log_trans = numpy.log(rng.dirichlet(numpy.ones(n_states + 1), size=(n_states + 1,) * order))
    emissions = rng.normal(size=(length, n_states))
    if masked:  # impossible states, as the lexicon makes them; one state stays possible
        emissions[rng.random(emissions.shape) < 0.4] = -numpy.inf
        emissions[:, 0] = rng.normal(size=length)
    path = viterbi(log_trans, emissions)
    assert path.shape == (length,)
    assert path_score(log_trans, emissions, path) == pytest.approx(brute_force(log_trans, emissions))


def test_viterbi_long_sequence_is_linear():
    rng = numpy.random.default_rng(0)
    log_trans = numpy.log(rng.dirichlet(numpy.ones(5), size=(5, 5)))
    emissions = numpy.log(rng.dirichlet(numpy.ones(4), size=12_000))
    path = viterbi(log_trans, emissions)
    assert path.shape == (12_000,) and path.min() >= 0 and path.max() < 4


# --- counting ---------------------------------------------------------------------
LABELS = ["D", "N", "V"]
CORPUS = [(["the", "dog", "runs"], [0, 1, 2]), (["the", "cat", "runs"], [0, 1, 2]), (["dogs", "run"], [1, 2])]


def test_transition_counts_and_deleted_interpolation_by_hand():
    counts = count_transitions([numpy.asarray(t) for _, t in CORPUS], 3, order=1)
    B = 3  # the boundary state
    expected = numpy.zeros((4, 4))
    for (a, b), f in {(B, 0): 2, (0, 1): 2, (1, 2): 3, (2, B): 3, (B, 1): 1}.items():
        expected[a, b] = f
    numpy.testing.assert_array_equal(counts, expected)
    # every bigram but (B, N) has a better bigram than unigram estimate without itself:
    # (B,N): (1-1)/(3-1) = 0 < (3-1)/(11-1); so the unigram gets 1 of 11 votes
    numpy.testing.assert_allclose(deleted_interpolation(counts), [1 / 11, 10 / 11])
    params = fit_hmm(CORPUS, LABELS, HMMSettings(order=1, capitalization=False))
    p_n_after_start = 1 / 11 * 3 / 11 + 10 / 11 * 1 / 3  # P^(N) = 3/11, P^(N | B) = 1/3
    assert math.exp(params.log_trans[B, 1]) == pytest.approx(p_n_after_start)
    add_k = fit_hmm(CORPUS, LABELS, HMMSettings(order=1, smoothing="add_k", k=1.0, capitalization=False))
    assert math.exp(add_k.log_trans[0, 1]) == pytest.approx((2 + 1) / (2 + 4))
    assert math.exp(add_k.log_trans[B, 2]) == pytest.approx((0 + 1) / (3 + 4))


def test_trigram_counts_include_start_and_end():
    counts = count_transitions([numpy.asarray([1, 2])], 3, order=2)
    B = 3
    assert counts.sum() == 3
    assert counts[B, B, 1] == counts[B, 1, 2] == counts[1, 2, B] == 1


def test_emissions_are_relative_frequencies_per_state():
    params = fit_hmm(CORPUS, LABELS, HMMSettings(order=1, capitalization=False))
    emit = {w: numpy.exp(params.log_emit[params.words[w]]) for w in ("the", "dog", "runs", "run")}
    numpy.testing.assert_allclose(emit["the"], [1.0, 0.0, 0.0])
    numpy.testing.assert_allclose(emit["dog"], [0.0, 1 / 3, 0.0])
    numpy.testing.assert_allclose(emit["runs"], [0.0, 0.0, 2 / 3])
    numpy.testing.assert_allclose(emit["run"], [0.0, 0.0, 1 / 3])


def test_capitalization_doubles_the_states():
    corpus = [(["The", "dog", "runs"], [0, 1, 2]), (["the", "cat", "runs"], [0, 1, 2])]
    params = fit_hmm(corpus, LABELS, HMMSettings(order=1))
    assert params.log_trans.shape == (7, 7)  # (D, N, V) x (lower, capitalized) + boundary
    # P(The | D, capitalized) = 1/1 and P(the | D, lower) = 1/1
    numpy.testing.assert_allclose(numpy.exp(params.log_emit[params.words["The"]]), [1.0, 0.0, 0.0])
    numpy.testing.assert_allclose(numpy.exp(params.log_emit[params.words["the"]]), [1.0, 0.0, 0.0])
    assert params.log_trans[6, 3] == params.log_trans[6, 0]  # one sentence starts with The, one with the
    assert numpy.argmax(params.log_trans[3]) == 1  # The (D, capitalized) -> dog (N, lower)
    scores = params.emissions(["The", "dog"])
    assert numpy.isfinite(scores[0]).nonzero()[0].tolist() == [3]  # D, capitalized block
    assert numpy.isfinite(scores[1]).nonzero()[0].tolist() == [1]
    assert params.decode(["The", "cat", "runs"]).tolist() == [0, 1, 2]


def test_missing_labels_are_skipped():
    params = fit_hmm([(["the", "dog", "runs"], [0, -1, 2])], LABELS, HMMSettings(order=1, capitalization=False))
    assert "dog" not in params.words
    counts = count_transitions([numpy.asarray([0, -1, 2])], 3, order=1)
    assert counts.sum() == 2 and counts[3, 0] == counts[2, 3] == 1
    with pytest.raises(ValueError, match="no labelled tokens"):
        fit_hmm([(["dog"], [-1])], LABELS, HMMSettings())


# --- unknown words ----------------------------------------------------------------
ING = [
    ("I am walking", ["PRP", "VBP", "VBG"]),
    ("you are talking", ["PRP", "VBP", "VBG"]),
    ("he is singing", ["PRP", "VBZ", "VBG"]),
    ("we were dancing", ["PRP", "VBD", "VBG"]),
    ("the thing is red", ["DT", "NN", "VBZ", "JJ"]),
    ("a dog is sleeping", ["DT", "NN", "VBZ", "VBG"]),
    ("Paris is big", ["NNP", "VBZ", "JJ"]),
    ("London was cold", ["NNP", "VBD", "JJ"]),
]


@pytest.mark.parametrize("capitalization", [True, False])
def test_suffix_model_tags_unknown_ing_word_as_vbg(capitalization):
    labels = sorted({t for _, ts in ING for t in ts})
    corpus = [(text.split(), [labels.index(t) for t in ts]) for text, ts in ING]
    params = fit_hmm(corpus, labels, HMMSettings(capitalization=capitalization))
    assert "jumping" not in params.words
    assert labels[int(numpy.argmax(params.unknown_scores("jumping")))] == "VBG"
    assert [labels[i] for i in params.decode(["she", "is", "jumping"])] == ["PRP", "VBZ", "VBG"]
    # an unknown capitalized word is looked up with the capitalized words' statistics
    assert labels[int(numpy.argmax(params.unknown_scores("Berlin")))] == "NNP"


def test_lexicon_smoothing_lets_a_rare_word_take_an_unseen_label():
    labels = sorted({t for _, ts in ING for t in ts})
    corpus = [(text.split(), [labels.index(t) for t in ts]) for text, ts in ING]
    plain = fit_hmm(corpus, labels, HMMSettings())
    smoothed = fit_hmm(corpus, labels, HMMSettings(lexicon_smoothing=1.0))
    row, vbg = plain.words["thing"], labels.index("VBG")
    assert plain.log_emit[row, vbg] == -numpy.inf
    assert numpy.isfinite(smoothed.log_emit[row, vbg])
    assert numpy.argmax(smoothed.log_emit[row]) == labels.index("NN")


# --- settings and parameters --------------------------------------------------------
@pytest.mark.parametrize(
    "settings,match",
    [
        ({"order": 3}, "order must be 1"),
        ({"order": True}, "order must be 1"),
        ({"smoothing": "kneser-ney"}, "smoothing must be one of"),
        ({"k": 0}, "k must be a positive"),
        ({"suffix_length": -1}, "suffix_length must be an integer >= 0"),
        ({"rare_threshold": 2.5}, "rare_threshold must be an integer"),
        ({"theta": -0.1}, "theta must be a positive"),
        ({"lexicon_smoothing": -1.0}, "lexicon_smoothing must be"),
        ({"capitalization": "yes"}, "capitalization must be"),
    ],
)
def test_bad_settings_raise(settings, match):
    with pytest.raises(ValueError, match=match):
        HMMSettings(**settings)


def test_params_dict_round_trip_and_validation():
    params = fit_hmm(CORPUS, LABELS, HMMSettings())
    again = HMMParams.from_dict(params.to_dict())
    assert again.decode(["the", "dog", "runs"]).tolist() == params.decode(["the", "dog", "runs"]).tolist()
    data = params.to_dict()
    del data["log_emit"]
    with pytest.raises(ValueError, match="missing a field"):
        HMMParams.from_dict(data)
    data = params.to_dict()
    data["log_emit"] = data["log_emit"][:-1]
    with pytest.raises(ValueError, match="log_emit has shape"):
        HMMParams.from_dict(data)


# --- the component ------------------------------------------------------------------
def test_training_reaches_high_accuracy(trained):
    nlp = trained
    scores = nlp.evaluate(make_examples(nlp))
    assert scores["tag_acc"] == 1.0
    assert tags(nlp, ["I will read the book"]) == [["PRP", "MD", "VB", "DT", "NN"]]


def test_initialize_on_a_larger_corpus_generalizes():
    nlp = spacy.blank("en")
    nlp.add_pipe("hmm_tagger", config={"order": 2, "theta": 0.6})
    data = [(text, {"tags": ts}) for text, ts in ING] * 2
    nlp.initialize(lambda: make_examples(nlp, data))
    assert tags(nlp, ["they are jumping"]) == [["PRP", "VBP", "VBG"]]


def test_update_is_a_no_op_reporting_zero_loss():
    nlp = spacy.blank("en")
    nlp.add_pipe("hmm_tagger")
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    before = nlp.get_pipe("hmm_tagger").to_bytes()
    losses = nlp.update(examples, losses={})
    assert losses == {"hmm_tagger": 0.0}
    assert nlp.get_pipe("hmm_tagger").to_bytes() == before


def test_pos_attr_writes_pos():
    nlp = spacy.blank("en")
    nlp.add_pipe("hmm_tagger", config={"attr": "pos"})
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    doc = nlp("I will fight")
    assert [t.pos_ for t in doc] == ["PRON", "AUX", "VERB"]
    assert [t.tag_ for t in doc] == ["", "", ""]
    assert nlp.evaluate(examples)["pos_acc"] == 1.0


def test_overwrite_false_keeps_existing_tags(trained):
    doc = trained.make_doc("I will fight")
    doc[1].tag_ = "XX"
    doc = trained.get_pipe("hmm_tagger")(doc)
    assert [t.tag_ for t in doc] == ["PRP", "XX", "VB"]


def test_missing_gold_tags_are_skipped():
    nlp = spacy.blank("en")
    tagger = nlp.add_pipe("hmm_tagger")
    data = TRAIN_DATA + [("They will xyzzy", {"tags": ["PRP", "", "VB"]}), ("no tags here", {})]
    nlp.initialize(lambda: make_examples(nlp, data))
    assert "" not in tagger.labels
    assert "xyzzy" in tagger.params.words and "here" not in tagger.params.words


def test_sentences_are_decoded_separately(trained):
    words = ["I", "will", "fight", "They", "fight", "the", "will"]
    whole = trained(Doc(trained.vocab, words=words))
    split = trained(Doc(trained.vocab, words=words, sent_starts=[1, 0, 0, 1, 0, 0, 0]))
    assert [t.tag_ for t in split] == ["PRP", "MD", "VB", "PRP", "VBP", "DT", "NN"]
    assert len(whole) == len(split)


def test_initialize_with_given_labels():
    nlp = spacy.blank("en")
    tagger = nlp.add_pipe("hmm_tagger")
    labels = ["DT", "MD", "NN", "NNS", "PRP", "VB", "VBP", "VBZ", "JJ"]
    tagger.initialize(lambda: make_examples(nlp), nlp=nlp, labels=labels)
    assert tagger.labels == tuple(labels)
    with pytest.raises(ValueError, match=r"\['VBZ'\] are not among the 7 labels"):
        tagger.initialize(lambda: make_examples(nlp), nlp=nlp, labels=labels[:-2])


def test_no_labels_and_non_upos_labels_raise():
    nlp = spacy.blank("en")
    nlp.add_pipe("hmm_tagger")
    with pytest.raises(ValueError, match="found no labels"):
        nlp.initialize(lambda: [Example.from_dict(nlp.make_doc("no tags here"), {})])
    pos = spacy.blank("en").add_pipe("hmm_tagger", config={"attr": "pos"})
    with pytest.raises(ValueError, match="not a Universal POS tag"):
        pos.initialize(lambda: make_examples(nlp), labels=["NNS"])


def test_predict_before_initialize_raises():
    nlp = spacy.blank("en")
    nlp.add_pipe("hmm_tagger")
    with pytest.raises(ValueError, match=r"\[hmm_tagger\] is not initialized"):
        nlp("I will fight")


def test_to_disk_and_bytes_round_trips_predict_the_same(trained, tmp_path):
    texts = [text for text, _ in TRAIN_DATA] + ["She reads the will", "Unknown words everywhere"]
    before = tags(trained, texts)
    trained.to_disk(tmp_path)
    assert tags(spacy.load(tmp_path), texts) == before
    fresh = spacy.blank("en")
    fresh.add_pipe("hmm_tagger")
    fresh.from_bytes(trained.to_bytes())
    assert tags(fresh, texts) == before


def test_uninitialized_component_round_trips():
    tagger = spacy.blank("en").add_pipe("hmm_tagger", config={"order": 1})
    other = spacy.blank("en").add_pipe("hmm_tagger")
    other.from_bytes(tagger.to_bytes())
    assert other.params is None and other.cfg["order"] == 1


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"\x00not a model" * 10, lambda b: b"\x93\x01\x02\x03"])
def test_corrupted_bytes_give_clear_error(trained, damage):
    tagger = spacy.blank("en").add_pipe("hmm_tagger")
    with pytest.raises(ValueError, match=r"\[hmm_tagger\] could not load the component from bytes"):
        tagger.from_bytes(damage(trained.get_pipe("hmm_tagger").to_bytes()))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete", "bad_cfg"])
def test_corrupted_model_directory_gives_clear_error(trained, tmp_path, damage):
    trained.to_disk(tmp_path)
    model_file = Path(tmp_path) / "hmm_tagger" / "model"
    data = model_file.read_bytes()
    if damage == "truncate":
        model_file.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        model_file.write_bytes(b"\x00not a model" * 10)
    elif damage == "delete":
        model_file.unlink()
    else:
        (Path(tmp_path) / "hmm_tagger" / "cfg").write_text('{"attr": "tag", "order": 3}')
    with pytest.raises(ValueError, match=r"\[hmm_tagger\] could not load"):
        spacy.load(tmp_path)


@pytest.mark.parametrize("text", ["", "   ", "will", "xyzzy"])
def test_empty_whitespace_and_single_token_docs(trained, text):
    doc = trained(text)
    assert len(doc) == len(trained.make_doc(text))
    assert all(t.tag_ for t in doc)
    docs = list(trained.pipe([text, "I will fight", text]))
    assert [t.tag_ for t in docs[1]] == ["PRP", "MD", "VB"]
    assert trained.get_pipe("hmm_tagger").predict([]) == []


def test_twelve_thousand_token_doc(trained):
    words = ["I", "will", "fight", "."] * 3_000
    doc = trained(Doc(trained.vocab, words=words))
    assert len(doc) == 12_000
    assert all(t.tag_ for t in doc)
    middle = [t.tag_ for t in doc[6000:6004]]
    assert middle == [t.tag_ for t in doc[6004:6008]]  # a periodic doc, periodic tags
    assert middle[:3] == ["PRP", "MD", "VB"]


@pytest.mark.parametrize(
    "config,match",
    [
        ({"order": 3}, r"\[hmm_tagger\] order must be 1"),
        ({"suffix_length": -1}, r"\[hmm_tagger\] suffix_length must be an integer >= 0"),
        ({"attr": "lemma"}, r"\[hmm_tagger\] attr must be one of"),
        ({"smoothing": "witten-bell"}, r"\[hmm_tagger\] smoothing must be one of"),
    ],
)
def test_bad_config_values_raise_clear_errors(config, match):
    with pytest.raises(ValueError, match=match):
        spacy.blank("en").add_pipe("hmm_tagger", config=config)


def test_add_pipe_works_in_a_fresh_interpreter_through_entry_points():
    code = (
        "import spacy\n"
        "nlp = spacy.blank('en')\n"
        "nlp.add_pipe('hmm_tagger')\n"
        "print(type(nlp.get_pipe('hmm_tagger')).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "HMMTagger"
