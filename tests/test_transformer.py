"""Transformer backbone (spacy-transformers) feeding the CRF heads: word-piece pooling,
training and serialization, with a tiny random-weight BERT built locally."""
import subprocess
import sys

import numpy
import pytest
import spacy
from numpy.testing import assert_allclose
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Ragged, fix_random_seed

from spacy_seqlab.layers.pooling import PiecePooling

from .missing_packages import without_packages

pytest.importorskip("spacy_transformers")

TAGGED = [
    ("I like green eggs and ham .", "PRP VBP JJ NNS CC NN ."),
    ("She ate the cake !", "PRP VBD DT NN ."),
    ("Dogs bark loudly at night", "NNS VBP RB IN NN"),
    ("Paris is very big .", "NNP VBZ RB JJ ."),
]
ENTS = [("They will go to London .", [(4, 5, "LOC")]),
        ("Apple bought a small company in Berlin .", [(0, 1, "ORG"), (6, 7, "LOC")]),
        ("I like green eggs .", [])]


# --- pooling ---------------------------------------------------------------------------
def ragged(lengths):
    X = numpy.arange(sum(lengths) * 2, dtype="f").reshape(-1, 2)
    return Ragged(X, numpy.asarray(lengths, dtype="i"))


@pytest.mark.parametrize("mode", ["first", "mean"])
def test_pooling_rows_and_gradient(mode):
    """One row per token: its first piece or the mean of its pieces; a token with no
    pieces gets zeros and no gradient flows to another token's pieces."""
    Xr = ragged([3, 0, 1, 2])
    model = PiecePooling(mode)
    model.initialize()
    Y, backprop = model(Xr, is_train=True)
    X = Xr.dataXd
    expected = {
        "first": [X[0], [0, 0], X[3], X[4]],
        "mean": [X[0:3].mean(0), [0, 0], X[3], X[4:6].mean(0)],
    }[mode]
    assert_allclose(Y, numpy.asarray(expected, dtype="f"))
    dY = numpy.arange(8, dtype="f").reshape(4, 2) + 1
    dX = backprop(dY).dataXd
    # the gradient is the transpose of the (linear) pooling: <dY, Y(X)> = <dX, X>
    assert_allclose((dY * Y).sum(), (dX * X).sum(), rtol=1e-6)
    if mode == "first":
        assert_allclose(dX[[1, 2, 5]], 0)


def test_pooling_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        PiecePooling("max")


def listener_pipeline(tiny_transformer, factory, mode="first", **cfg):
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {
        "@architectures": "spacy-transformers.TransformerModel.v3",
        "name": str(tiny_transformer),
        "tokenizer_config": {"use_fast": True},
        "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 16, "stride": 12},
    }})
    nlp.add_pipe(factory, config={**cfg, "model": {
        "@architectures": "spacy_seqlab.CRFTagger.v1",
        "tok2vec": {
            "@architectures": "spacy-transformers.TransformerListener.v1",
            "grad_factor": 1.0,
            "pooling": {"@layers": "spacy_seqlab.PiecePooling.v1", "mode": mode},
        },
    }})
    return nlp


def tagged_examples(nlp):
    out = []
    for text, tags in TAGGED:
        words = text.split()
        out.append(Example.from_dict(nlp.make_doc(text), {"words": words, "tags": tags.split()}))
    return out


@pytest.mark.parametrize("mode", ["first", "mean"])
def test_listener_alignment_on_many_piece_word(tiny_transformer, mode):
    """The listener's vector of a word split into many pieces is the hidden state of its
    first piece ("first") or the mean over its pieces ("mean")."""
    nlp = listener_pipeline(tiny_transformer, "crf_tagger", mode=mode)
    nlp.initialize(lambda: tagged_examples(nlp))
    doc = nlp.get_pipe("transformer")(nlp.make_doc("Zyxwvut will fight ."))
    trf = doc._.trf_data
    hidden = trf.model_output.last_hidden_state.reshape(-1, trf.width)
    tok2vec = nlp.get_pipe("crf_tagger").model.get_ref("tok2vec")
    vectors = tok2vec.predict([doc])[0]
    pieces = trf.align[0].dataXd.ravel()
    assert len(pieces) >= 5  # "Zyxwvut" is split into many word pieces
    expected = hidden[pieces[0]] if mode == "first" else hidden[pieces].mean(axis=0)
    assert_allclose(vectors[0], expected, rtol=1e-5, atol=1e-6)
    for i in range(len(doc)):  # every token reads its own pieces
        rows = trf.align[i].dataXd.ravel()
        want = hidden[rows[0]] if mode == "first" else hidden[rows].mean(axis=0)
        assert_allclose(vectors[i], want, rtol=1e-5, atol=1e-6)


def train(nlp, examples, steps):
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.01
    losses = []
    for _ in range(steps):
        step = {}
        nlp.update(examples, sgd=optimizer, losses=step)
        losses.append(sum(step.values()))
    return losses


def test_transformer_crf_tagger_learns_and_round_trips(tiny_transformer, tmp_path):
    nlp = listener_pipeline(tiny_transformer, "crf_tagger")
    examples = tagged_examples(nlp)
    losses = train(nlp, examples, 40)
    assert losses[-1] < 0.2 * losses[0]
    docs = list(nlp.pipe(text for text, _ in TAGGED))
    gold = [tags.split() for _, tags in TAGGED]
    predicted = [[t.tag_ for t in doc] for doc in docs]
    accuracy = numpy.mean([p == g for ps, gs in zip(predicted, gold) for p, g in zip(ps, gs)])
    assert accuracy >= 0.9
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    for doc, again in zip(docs, loaded.pipe(text for text, _ in TAGGED)):
        assert [t.tag_ for t in again] == [t.tag_ for t in doc]
        assert_allclose([t._.tag_confidence for t in again], [t._.tag_confidence for t in doc], rtol=1e-4)


def test_transformer_crf_ner_learns_and_round_trips(tiny_transformer, tmp_path):
    nlp = listener_pipeline(tiny_transformer, "crf_ner")
    examples = []
    for text, spans in ENTS:
        doc = nlp.make_doc(text)
        examples.append(Example.from_dict(doc, {"entities": [
            (doc[s:e].start_char, doc[s:e].end_char, label) for s, e, label in spans]}))
    losses = train(nlp, examples, 40)
    assert losses[-1] < 0.2 * losses[0]
    docs = list(nlp.pipe(text for text, _ in ENTS))
    for doc, (_, spans) in zip(docs, ENTS):
        assert [(e.start, e.end, e.label_) for e in doc.ents] == spans
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    for doc, again in zip(docs, loaded.pipe(text for text, _ in ENTS)):
        assert [(e.start, e.end, e.label_) for e in again.ents] == [(e.start, e.end, e.label_) for e in doc.ents]


def test_transformer_pipeline_edge_docs(tiny_transformer):
    """Empty docs, whitespace tokens (no word pieces) and a doc longer than the
    transformer's window are tagged without errors."""
    nlp = listener_pipeline(tiny_transformer, "crf_tagger")
    nlp.initialize(lambda: tagged_examples(nlp))
    empty = Doc(nlp.vocab, words=[])
    spaced = Doc(nlp.vocab, words=["I", "\n\n", "like", "  ", "ham"], spaces=[True, False, True, False, False])
    long_doc = nlp.make_doc(" ".join(["She ate the cake ."] * 60))
    docs = list(nlp.pipe([empty, spaced, long_doc]))
    assert len(docs[0]) == 0
    assert all(t.tag_ for t in docs[1]) and all(t.tag_ for t in docs[2])


BLOCKED_IMPORT = without_packages(("spacy_transformers", "transformers"))


def test_core_package_works_without_spacy_transformers():
    """With spacy-transformers and transformers unimportable (as if the extra were not
    installed), every module of the package imports and a crf_tagger trains and tags."""
    code = BLOCKED_IMPORT + """
import pkgutil, importlib, spacy, spacy_seqlab
from spacy.training import Example
for info in pkgutil.walk_packages(spacy_seqlab.__path__, "spacy_seqlab."):
    importlib.import_module(info.name)
nlp = spacy.blank("en")
nlp.add_pipe("crf_tagger")
eg = Example.from_dict(nlp.make_doc("I like ham"), {"tags": ["PRP", "VBP", "NN"]})
nlp.initialize(lambda: [eg])
doc = nlp("I like ham")
assert all(t.tag_ for t in doc)
assert "spacy_transformers" not in sys.modules and "transformers" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", code], check=True)
