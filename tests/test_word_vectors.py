"""spacy_seqlab.FineTunedVectors.v1 (word embeddings initialized from the vocab's
vectors table and fine-tuned), spacy_seqlab.WordCharEmbed.v1 and the SGD-with-momentum
optimizer of the paper configs."""
import numpy
import pytest
import spacy
from numpy.testing import assert_allclose
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model

from spacy_seqlab.embeddings import build_word_char_embed
from spacy_seqlab.layers.chars import CharCNN
from spacy_seqlab.layers.word_vectors import FineTunedVectors
from spacy_seqlab.optimizers import make_sgd_momentum

from .gradients import numeric_gradient

WORDS = ["the", "paris", "london", "cat", "dog", "rare"]  # table rows 0..5, frequency order


def vocab_with_table(width: int = 4):
    """A vocab whose table has one row per word of WORDS, keyed by the lowercase word."""
    nlp = spacy.blank("en")
    rng = numpy.random.default_rng(0)
    for word in WORDS:
        nlp.vocab.set_vector(word, rng.normal(size=(width,)).astype("float32"))
    return nlp.vocab


def docs(vocab, *sentences):
    return [Doc(vocab, words=s.split()) for s in sentences]


def layer(vocab, **kwargs) -> Model:
    model = FineTunedVectors(**kwargs)
    model.initialize(X=docs(vocab, "the cat"))
    return model


def row(vocab, word):
    return vocab.vectors.data[vocab.vectors.key2row[vocab.strings[word]]]


def test_looks_up_lowercased_rows_and_an_unknown_vector():
    vocab = vocab_with_table()
    model = layer(vocab, trainable_rows=3)
    (Y,) = model.predict(docs(vocab, "Paris PARIS paris rare bigly"))
    assert Y.shape == (5, 4)
    for i in range(3):
        assert_allclose(Y[i], row(vocab, "paris"))
    assert_allclose(Y[3], row(vocab, "rare"))  # a fixed row (index 5 >= 3 trainable)
    assert_allclose(Y[4], model.get_param("unk")[0])  # no row
    assert model.get_param("E").shape == (3, 4)
    assert (model.get_dim("nV"), model.get_dim("nO")) == vocab.vectors.shape


def test_output_per_doc_and_empty_inputs():
    vocab = vocab_with_table()
    model = layer(vocab)
    Ys = model.predict(docs(vocab, "the cat", "dog") + [Doc(vocab, words=[])])
    assert [Y.shape for Y in Ys] == [(2, 4), (1, 4), (0, 4)]
    assert model.predict([]) == []
    Ys, backprop = model.begin_update([Doc(vocab, words=[])])
    assert backprop([y for y in Ys]) == []


def test_gradient_matches_finite_differences():
    """d/dE and d/dunk of sum(tanh(Y) * R) against central differences in float64."""
    vocab = vocab_with_table()
    model = layer(vocab, trainable_rows=4)
    batch = docs(vocab, "the Cat bigly the", "Dog rare London qq")
    R = [numpy.random.default_rng(1).normal(size=(4, 4)).astype("float32") for _ in batch]

    def loss() -> float:
        Ys = model.predict(batch)
        return float(sum((numpy.tanh(Y.astype("float64")) * r).sum() for Y, r in zip(Ys, R)))

    Ys, backprop = model.begin_update(batch)
    backprop([(1 - numpy.tanh(Y) ** 2) * r for Y, r in zip(Ys, R)])
    for name in ("E", "unk"):
        param, grad = model.get_param(name), model.get_grad(name)
        numeric = numeric_gradient(param, loss, eps=1e-2)
        assert numpy.abs(numeric).max() > 0.1  # the loss depends on these parameters
        assert_allclose(grad, numeric, rtol=1e-3, atol=1e-3)
    # rows never used in the batch get no gradient: "paris" (1) is not in it
    assert not model.get_grad("E")[1].any()


def test_fine_tuning_moves_only_the_trainable_rows():
    vocab = vocab_with_table()
    model = layer(vocab, trainable_rows=2)
    before = vocab.vectors.data.copy()
    batch = docs(vocab, "the paris rare")
    Ys, backprop = model.begin_update(batch)
    backprop([numpy.ones_like(Y) for Y in Ys])
    model.finish_update(make_sgd_momentum(0.1, momentum=0.0, grad_clip=0.0))
    (Y,) = model.predict(batch)
    assert_allclose(Y[0], before[0] - 0.1)  # trained
    assert_allclose(Y[1], before[1] - 0.1)
    assert_allclose(Y[2], before[5])  # fixed: the table is never written
    assert_allclose(vocab.vectors.data, before)


def test_word_dropout_only_in_training():
    vocab = vocab_with_table()
    model = layer(vocab, word_dropout=0.5)
    batch = docs(vocab, " ".join(["cat"] * 400))
    numpy.random.seed(0)
    (Y,), _ = model.begin_update(batch)
    unk = (Y == model.get_param("unk")[0]).all(axis=1)
    assert 0.4 < unk.mean() < 0.6
    (Y,) = model.predict(batch)
    assert not (Y == model.get_param("unk")[0]).all(axis=1).any()


def test_serializes_its_rows_and_reloads_without_the_table_being_trained():
    vocab = vocab_with_table()
    model = layer(vocab, trainable_rows=3)
    model.get_param("E")[:] += 1.0
    model.get_param("unk")[:] = 2.0
    data = model.to_bytes()
    fresh = FineTunedVectors(trainable_rows=3).from_bytes(data)
    batch = docs(vocab, "the london rare bigly")
    assert_allclose(fresh.predict(batch)[0], model.predict(batch)[0])


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="trainable_rows"):
        FineTunedVectors(trainable_rows=-1)
    with pytest.raises(ValueError, match="attr"):
        FineTunedVectors(attr="NOT_AN_ATTR")
    with pytest.raises(ValueError, match="word_dropout"):
        FineTunedVectors(word_dropout=1.0)
    blank = spacy.blank("en").vocab
    with pytest.raises(ValueError, match=r"\[initialize\] vectors"):
        FineTunedVectors().initialize(X=docs(blank, "the cat"))
    model = layer(vocab_with_table(width=4))
    with pytest.raises(ValueError, match=r"initialized on a \d+ x 4 vectors table"):
        model.predict(docs(vocab_with_table(width=3), "the cat"))


def test_word_char_embed_concatenates_without_projection():
    vocab = vocab_with_table()
    model = build_word_char_embed(FineTunedVectors(), CharCNN(width=6, char_width=5))
    batch = docs(vocab, "the Cat", "bigly")
    model.initialize(X=batch)
    Ys, backprop = model.begin_update(batch)
    assert [Y.shape for Y in Ys] == [(2, 10), (1, 10)]
    assert_allclose(Ys[0][:, :4], model.layers[0].predict(batch)[0])
    backprop([numpy.ones_like(Y) for Y in Ys])
    assert model.layers[0].get_grad("E").any()


# --- spacy_seqlab.SGDMomentum.v1 ----------------------------------------------------
def test_momentum_sgd_follows_the_update_rule():
    opt = registry.resolve({"o": {"@optimizers": "spacy_seqlab.SGDMomentum.v1", "learn_rate": 0.1,
                                  "momentum": 0.9, "grad_clip": 0.0}})["o"]
    w = numpy.array([1.0, -2.0], dtype="float32")
    expected, v = w.copy(), numpy.zeros(2, dtype="float32")
    for g in ([0.5, 1.0], [0.25, -1.0], [1.0, 0.0]):
        g = numpy.array(g, dtype="float32")
        v = 0.9 * v + g
        expected = expected - 0.1 * v
        w, grad = opt((0, "W"), w, g.copy())
        assert not grad.any()  # the gradient is consumed
    assert_allclose(w, expected, rtol=1e-6)


def test_momentum_sgd_nesterov_clipping_and_schedule():
    nesterov = make_sgd_momentum(0.1, momentum=0.5, nesterov=True, grad_clip=0.0)
    w, _ = nesterov((0, "W"), numpy.zeros(1, dtype="float32"), numpy.ones(1, dtype="float32"))
    assert_allclose(w, [-0.1 * (1 + 0.5 * 1)])
    clipped = make_sgd_momentum(1.0, momentum=0.0, grad_clip=1.0)
    w, _ = clipped((0, "W"), numpy.zeros(2, dtype="float32"), numpy.array([3.0, 4.0], dtype="float32"))
    assert_allclose(numpy.linalg.norm(w), 1.0, rtol=1e-6)
    from thinc.api import decaying

    scheduled = make_sgd_momentum(decaying(1.0, 1.0), momentum=0.0, grad_clip=0.0)
    rates = []
    for _ in range(3):
        rates.append(scheduled.learn_rate)
        scheduled.step_schedules()
    assert_allclose(rates, [1.0, 0.5, 1 / 3])
    with pytest.raises(ValueError, match="momentum"):
        make_sgd_momentum(0.1, momentum=1.0)
