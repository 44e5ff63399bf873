"""spacy_seqlab.SentenceTok2Vec.v1: the context encoder runs over each sentence of a doc
on its own (the paper configs' tok2vec)."""
import warnings

import numpy
import pytest
import spacy
from numpy.testing import assert_allclose
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, chain

from spacy_seqlab.layers.sentences import LONG_UNSPLIT, SentenceTok2Vec, sentence_lengths
from spacy_seqlab.layers.word_vectors import FineTunedVectors

from .gradients import numeric_gradient

WORDS = ["the", "paris", "london", "cat", "dog", "rare", "."]


@pytest.fixture
def vocab():
    nlp = spacy.blank("en")
    rng = numpy.random.default_rng(0)
    for word in WORDS:
        nlp.vocab.set_vector(word, rng.normal(size=(4,)).astype("float32"))
    return nlp.vocab


def doc(vocab, *sentences: str) -> Doc:
    """One doc of the given sentences, with their sentence starts set."""
    words = [s.split() for s in sentences]
    starts = [i == 0 for sent in words for i in range(len(sent))]
    return Doc(vocab, words=[w for sent in words for w in sent], sent_starts=starts)


def context_mean() -> Model:
    """A torch-free encoder whose every output row reads the whole sequence:
    ``Y[i] = X[i] + mean(X)``. Output: ``(n, 4)`` per sequence."""

    def forward(model, Xs, is_train):
        def backprop(dYs):
            return [dY + dY.sum(axis=0) / len(dY) for dY in dYs]

        return [X + X.mean(axis=0) for X in Xs], backprop

    return Model("context_mean", forward, dims={"nO": 4})


def recurrent() -> Model:
    """The paper configs' encoder, spacy_seqlab.RNNEncoder.v1 (PyTorch), 6 wide."""
    pytest.importorskip("torch", reason="the recurrent extra (torch) is not installed")
    return registry.resolve({"x": {"@architectures": "spacy_seqlab.RNNEncoder.v1", "width": 6}})["x"]


ENCODERS = [context_mean, recurrent]


def build(vocab, encode: Model) -> Model:
    numpy.random.seed(0)
    model = SentenceTok2Vec(FineTunedVectors(trainable_rows=5), encode)
    model.initialize(X=[doc(vocab, "the cat .", "paris")])
    return model


def test_sentence_lengths_follow_the_sentence_starts(vocab):
    assert sentence_lengths(doc(vocab, "the cat .", "paris", "dog rare")) == [3, 1, 2]
    assert sentence_lengths(Doc(vocab, words=["the", "cat", "."])) == [3]  # no boundaries
    assert sentence_lengths(Doc(vocab, words=[])) == [0]
    # a partly annotated doc: only the tokens marked as starts cut it
    assert sentence_lengths(Doc(vocab, words="the cat . dog".split(), sent_starts=[True, None, None, True])) == [3, 1]


@pytest.mark.parametrize("encoder", ENCODERS)
def test_each_sentence_is_encoded_on_its_own(vocab, encoder):
    """A doc's output equals the encoder run over each sentence as a doc of its own; a
    doc without sentence starts is one sequence, as spacy.Tok2Vec.v2 reads it."""
    model = build(vocab, encoder())
    embed, encode = model.layers
    sentences = ["the cat . rare", "paris london", "dog"]
    (Y,) = model.predict([doc(vocab, *sentences)])
    alone = model.predict([Doc(vocab, words=s.split()) for s in sentences])
    assert_allclose(Y, numpy.concatenate(alone), rtol=1e-5, atol=1e-6)
    whole = Doc(vocab, words=" ".join(sentences).split())
    (Y_whole,) = model.predict([whole])
    assert_allclose(Y_whole, chain(embed, encode).predict([whole])[0], rtol=1e-5, atol=1e-6)
    assert not numpy.allclose(Y_whole, Y, atol=1e-3)  # the context really is cut


def test_warns_about_a_long_doc_without_sentence_boundaries(vocab):
    model = build(vocab, context_mean())
    long_words = ["the", "cat", "."] * (LONG_UNSPLIT // 3 + 1)
    with pytest.warns(UserWarning, match="sentencizer"):
        model.predict([Doc(vocab, words=long_words)])
    split = Doc(vocab, words=long_words, sent_starts=[w == "the" for w in long_words])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict([split, Doc(vocab, words=long_words[:LONG_UNSPLIT])])


@pytest.mark.parametrize("encoder", ENCODERS)
def test_empty_docs_and_empty_batches(vocab, encoder):
    model = build(vocab, encoder())
    width = model.get_dim("nO")
    Ys = model.predict([Doc(vocab, words=[]), doc(vocab, "the cat", "dog"), Doc(vocab, words=[])])
    assert [Y.shape for Y in Ys] == [(0, width), (3, width), (0, width)]
    Ys, backprop = model.begin_update([Doc(vocab, words=[])])
    assert [Y.shape for Y in Ys] == [(0, width)]
    backprop(Ys)
    assert model.predict([]) == []


@pytest.mark.parametrize("encoder", ENCODERS)
def test_gradient_matches_finite_differences(vocab, encoder):
    """d/dE of sum(Y * R), through the split, the encoder and the join, against
    central differences."""
    model = build(vocab, encoder())
    batch = [doc(vocab, "the cat .", "paris london", "dog"), Doc(vocab, words=[]), doc(vocab, "rare the")]
    rng = numpy.random.default_rng(1)
    R = [rng.normal(size=(len(d), model.get_dim("nO"))) for d in batch]
    E = model.layers[0].get_param("E")

    def loss() -> float:
        return float(sum((Y.astype("float64") * r).sum() for Y, r in zip(model.predict(batch), R)))

    Ys, backprop = model.begin_update(batch)
    backprop([r.astype("float32") for r in R])
    grad = model.layers[0].get_grad("E").copy()
    numeric = numeric_gradient(E, loss, eps=1e-2)
    assert numpy.abs(numeric).max() > 0.1
    assert_allclose(grad, numeric, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_serializes_and_reloads(vocab, encoder):
    model = build(vocab, encoder())
    model.layers[0].get_param("E")[:] += 0.5
    fresh = SentenceTok2Vec(FineTunedVectors(trainable_rows=5), encoder())
    fresh.from_bytes(model.to_bytes())
    batch = [doc(vocab, "the london", "rare bigly .")]
    assert_allclose(fresh.predict(batch)[0], model.predict(batch)[0])
    assert fresh.get_dim("nO") == model.get_dim("nO")
