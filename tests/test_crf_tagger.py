"""The crf_tagger component: training, serialization, registration, bad input."""
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import fix_random_seed

import spacy_seqlab  # noqa: F401

from .tiny_pipelines import record_batches

TRAIN_DATA = [
    ("I will fight", {"tags": ["PRP", "MD", "VB"], "pos": ["PRON", "AUX", "VERB"]}),
    ("They fight the will", {"tags": ["PRP", "VBP", "DT", "NN"], "pos": ["PRON", "VERB", "DET", "NOUN"]}),
    ("She will read books", {"tags": ["PRP", "MD", "VB", "NNS"], "pos": ["PRON", "AUX", "VERB", "NOUN"]}),
]


def make_examples(nlp, data=TRAIN_DATA):
    return [Example.from_dict(nlp.make_doc(text), annots) for text, annots in data]


def train(nlp, examples, steps=60):
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    losses = {}
    for _ in range(steps):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
    return losses


@pytest.fixture(scope="module")
def trained():
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_tagger")
    losses = train(nlp, make_examples(nlp))
    return nlp, losses


def predictions(nlp, texts, attr="tag"):
    docs = list(nlp.pipe(texts))
    return [[(getattr(t, f"{attr}_"), t._.get(f"{attr}_confidence")) for t in doc] for doc in docs]


def test_overfitting_IO(trained, tmp_path):
    nlp, losses = trained
    assert losses["crf_tagger"] < 0.01
    texts = [text for text, _ in TRAIN_DATA]
    before = predictions(nlp, texts)
    for (text, annots), doc_preds in zip(TRAIN_DATA, before):
        assert [tag for tag, _ in doc_preds] == annots["tags"]
        assert all(0.9 < conf <= 1.0 + 1e-6 for _, conf in doc_preds)
    nlp.to_disk(tmp_path)
    reloaded = spacy.load(tmp_path)
    after = predictions(reloaded, texts)
    assert [[t for t, _ in d] for d in after] == [[t for t, _ in d] for d in before]
    numpy.testing.assert_allclose(
        [c for d in after for _, c in d], [c for d in before for _, c in d], rtol=1e-6
    )
    from_bytes = spacy.blank("en")
    from_bytes.add_pipe("crf_tagger")
    from_bytes.from_bytes(nlp.to_bytes())
    assert [[t for t, _ in d] for d in predictions(from_bytes, texts)] == [[t for t, _ in d] for d in before]


def test_training_learns_from_scratch():
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_tagger")
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    first = nlp.update(examples, sgd=optimizer, losses={})["crf_tagger"]
    last = train(nlp, examples, steps=30)["crf_tagger"]
    assert last < first / 100


def test_pos_attr_writes_pos_and_scores_pos_acc():
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_tagger", config={"attr": "pos"})
    examples = make_examples(nlp)
    train(nlp, examples, steps=40)
    doc = nlp("I will fight")
    assert [t.pos_ for t in doc] == ["PRON", "AUX", "VERB"]
    assert [t.tag_ for t in doc] == ["", "", ""]
    assert doc[1]._.pos_confidence > 0.5
    scores = nlp.evaluate(examples)
    assert scores["pos_acc"] == 1.0


def test_batched_and_single_docs_get_the_same_labels(trained):
    nlp, _ = trained
    texts = ["I will fight", "She will read the books they fight", "will"]
    alone = [predictions(nlp, [t])[0] for t in texts]
    batched = predictions(nlp, texts)
    assert [[t for t, _ in d] for d in alone] == [[t for t, _ in d] for d in batched]
    numpy.testing.assert_allclose(
        [c for d in alone for _, c in d], [c for d in batched for _, c in d], rtol=1e-5
    )


def test_missing_tags_are_marginalized_not_dropped():
    nlp = spacy.blank("en")
    tagger = nlp.add_pipe("crf_tagger")
    data = TRAIN_DATA + [("They will read", {"tags": ["PRP", "", "VB"]})]
    examples = make_examples(nlp, data)
    nlp.initialize(lambda: examples)
    unlabeled = Example.from_dict(nlp.make_doc("books books"), {})
    batch = [examples[-1], unlabeled]
    scores = tagger.model.predict([eg.predicted for eg in batch])
    loss, grad = tagger.get_loss(batch, scores)
    assert loss > 0  # the partially tagged doc still counts
    assert numpy.abs(grad.emissions[1]).max() < 1e-6  # the untagged doc does not
    allowed = tagger.allowed_labels(examples[-1])
    assert allowed[1].all() and allowed[0].sum() == allowed[2].sum() == 1
    assert numpy.abs(grad.emissions[0, 0]).max() > 0.1  # the known tags are learned
    assert grad.emissions[0, 1].sum() == pytest.approx(0.0, abs=1e-5)
    train(nlp, examples, steps=40)
    assert [t.tag_ for t in nlp("They will read")] == ["PRP", "MD", "VB"]


def test_negative_tags_exclude_a_label():
    nlp = spacy.blank("en")
    tagger = nlp.add_pipe("crf_tagger")
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    eg = Example.from_dict(nlp.make_doc("will"), {"tags": ["!MD"]})
    allowed = tagger.allowed_labels(eg)
    assert allowed.sum() == len(tagger.labels) - 1
    assert not allowed[0, tagger.labels.index("MD")]


def test_add_pipe_works_in_a_fresh_interpreter_through_entry_points():
    code = (
        "import sys, spacy\n"
        "nlp = spacy.blank('en')\n"
        "nlp.add_pipe('crf_tagger')\n"
        "print(type(nlp.get_pipe('crf_tagger')).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "CRFTagger"


@pytest.mark.parametrize("text", ["", "   ", "will", " \n "])
def test_empty_whitespace_and_single_token_docs(trained, text):
    nlp, _ = trained
    doc = nlp(text)
    assert len(doc) == len(nlp.make_doc(text))
    assert all(t.tag_ for t in doc)
    docs = list(nlp.pipe([text, "I will fight", text]))
    assert [t.tag_ for t in docs[1]] == ["PRP", "MD", "VB"]
    assert nlp.get_pipe("crf_tagger").predict([]) == ([], [])


def test_ten_thousand_token_doc(trained):
    nlp, _ = trained
    words = ["I", "will", "fight", "."] * 2_500
    doc = nlp(Doc(nlp.vocab, words=words))
    assert len(doc) == 10_000
    assert all(t.tag_ for t in doc)
    confidences = [t._.tag_confidence for t in doc]
    assert all(0.0 <= c <= 1.0 + 1e-6 for c in confidences)
    middle = [t.tag_ for t in doc[5000:5004]]
    assert middle == [t.tag_ for t in doc[5004:5008]]  # a periodic doc, periodic tags
    assert middle[:3] == ["PRP", "MD", "VB"]


def test_dev_label_unseen_in_training_is_scored_as_an_error(trained):
    nlp, _ = trained
    dev = [Example.from_dict(nlp.make_doc("I will fight"), {"tags": ["PRP", "MD", "VBZ"]})]
    scores = nlp.evaluate(dev)
    assert scores["tag_acc"] == pytest.approx(2 / 3)


def test_unknown_gold_label_in_training_raises_clear_error():
    nlp = spacy.blank("en")
    tagger = nlp.add_pipe("crf_tagger")
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    bad = [Example.from_dict(nlp.make_doc("I will"), {"tags": ["PRP", "XYZ"]})]
    with pytest.raises(ValueError, match="'XYZ' is not among"):
        nlp.update(bad)
    assert "XYZ" not in tagger.labels


def test_initialize_with_given_labels():
    nlp = spacy.blank("en")
    tagger = nlp.add_pipe("crf_tagger")
    labels = ["MD", "NN", "PRP", "VB", "VBP", "DT", "NNS", "JJ"]
    tagger.initialize(lambda: make_examples(nlp), nlp=nlp, labels=labels)
    assert len(tagger.labels) == 8
    assert tagger.model.get_ref("crf").get_dim("nO") == 8
    # after initialize a label grows the model (tests/test_add_label.py)
    assert tagger.add_label("RB") == 1
    assert tagger.model.get_ref("crf").get_dim("nO") == 9


@pytest.mark.parametrize(
    "config,match",
    [({"attr": "lemma"}, "attr must be one of"), ({"attr": "TAG"}, "attr must be one of")],
)
def test_bad_config_values_raise_clear_errors(config, match):
    with pytest.raises(ValueError, match=match):
        spacy.blank("en").add_pipe("crf_tagger", config=config)


def test_non_upos_label_for_pos_raises():
    nlp = spacy.blank("en")
    tagger = nlp.add_pipe("crf_tagger", config={"attr": "pos"})
    with pytest.raises(ValueError, match="not a Universal POS tag"):
        tagger.add_label("NNS")


def test_no_labels_raises():
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_tagger")
    examples = [Example.from_dict(nlp.make_doc("no tags here"), {})]
    with pytest.raises(ValueError, match="found no labels"):
        nlp.initialize(lambda: examples)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_corrupted_model_directory_gives_clear_error(trained, tmp_path, damage):
    nlp, _ = trained
    nlp.to_disk(tmp_path)
    model_file = Path(tmp_path) / "crf_tagger" / "model"
    data = model_file.read_bytes()
    if damage == "truncate":
        model_file.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        model_file.write_bytes(b"\x00not a model" * 10)
    else:
        model_file.unlink()
    with pytest.raises(ValueError, match=r"\[crf_tagger\] could not load"):
        spacy.load(tmp_path)


def test_a_stream_is_predicted_in_batches_of_similar_length_and_comes_out_in_order(trained, monkeypatch):
    nlp, _ = trained
    pipe = nlp.get_pipe("crf_tagger")
    words = "I will fight the books they read".split()
    texts = [" ".join(words[: 1 + (i * 5) % 7]) for i in range(23)]
    alone = [predictions(nlp, [t])[0] for t in texts]
    seen = record_batches(monkeypatch, pipe)
    docs = list(nlp.pipe(texts, batch_size=3))
    assert [doc.text for doc in docs] == texts
    assert [[(t.tag_, t._.tag_confidence) for t in doc] for doc in docs] == [
        [(t, pytest.approx(c, rel=1e-5)) for t, c in d] for d in alone
    ]
    assert all(len(batch) <= 3 for batch in seen) and sum(map(len, seen)) == len(texts)
    # within each window of 4 batches (12 docs), the batches run shortest first
    for start in range(0, len(seen), 4):
        lengths = [n for batch in seen[start : start + 4] for n in batch]
        assert lengths == sorted(lengths)
