"""Character layers (CharCNN, CharBiLSTM), the word+char embedding and the RNN encoder:
shapes, batching invariance, empty docs, serialization in a crf_tagger pipeline, the
out-of-vocabulary -ly adverb that only characters can tag, and config errors."""
import random
import subprocess
import sys

import numpy
import pytest
import spacy
from spacy.training import Example
from spacy.util import fix_random_seed, registry

from spacy_seqlab.embeddings import build_char_word_embed
from spacy_seqlab.layers.chars import CharBiLSTM, CharCNN
from spacy_seqlab.layers.rnn import RNNEncoder

TEXTS = ["", "The Quick brown fox jumps", "a", "Internationalization is loooooooooooooong , ok"]


CHAR_LAYERS = {
    "cnn": lambda: CharCNN(width=12, char_width=6, window=1, max_chars=8),
    "bilstm": lambda: CharBiLSTM(width=12, char_width=6, max_chars=8),
    "char_word": lambda: build_char_word_embed(
        width=10, attrs=["NORM", "SHAPE"], rows=[50, 20], char_embed=CharCNN(width=6, char_width=4)
    ),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def docs():
    nlp = spacy.blank("en")
    return [nlp(text) for text in TEXTS]


def assert_batching_invariant(model, batch, width):
    """Each item alone gives what it gets inside the batch; the gradient keeps shapes."""
    Ys = model.predict(batch)
    assert [Y.shape for Y in Ys] == [(len(X), width) for X in batch]
    for X, Y in zip(batch, Ys):
        numpy.testing.assert_allclose(model.predict([X])[0], Y, atol=1e-5)
    Ys, backprop = model.begin_update(batch)
    return backprop([model.ops.xp.ones_like(Y) for Y in Ys])


@pytest.mark.parametrize("name", ["cnn", "bilstm", "char_word"])
def test_char_layers_shapes_and_batching(docs, name):
    fix_random_seed(0)
    model = CHAR_LAYERS[name]()
    model.initialize(X=docs)
    width = model.get_dim("nO")
    assert_batching_invariant(model, docs, width)
    assert [Y.shape for Y in model.predict(docs[:1] * 2)] == [(0, width)] * 2
    if name != "char_word":  # thinc's concatenate of lists needs at least one doc
        assert model.predict([]) == []


@pytest.mark.parametrize("name", ["cnn", "bilstm"])
def test_chars_are_case_sensitive_and_long_words_keep_both_ends(name):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    model = CHAR_LAYERS[name]()
    docs = [nlp("Apple apple abcdXXXXwxyz abcdYYYYwxyz abcdwxyy")]
    model.initialize(X=docs)
    Y = model.predict(docs)[0]
    assert not numpy.allclose(Y[0], Y[1])
    numpy.testing.assert_allclose(Y[2], Y[3], atol=1e-6)  # max_chars=8: the middle is cut
    assert not numpy.allclose(Y[2], Y[4])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_rnn_encoder_shapes_batching_and_empty_docs(cell, bidirectional):
    fix_random_seed(0)
    model = RNNEncoder(width=8, depth=2, cell=cell, bidirectional=bidirectional, dropout=0.2)
    Xs = [numpy.random.uniform(-1, 1, (n, 5)).astype("f") for n in (3, 0, 9, 1)]
    model.initialize(X=Xs)
    assert model.get_dim("nI") == 5
    dXs = assert_batching_invariant(model, Xs, 8)
    assert [dX.shape for dX in dXs] == [X.shape for X in Xs]
    assert model.predict([]) == []
    Ys, backprop = model.begin_update([Xs[1]])
    assert Ys[0].shape == (0, 8) and backprop(Ys)[0].shape == (0, 5)


def test_unidirectional_rnn_sees_only_the_past():
    """With packing, a prefix of a sequence gets exactly the prefix of its outputs."""
    fix_random_seed(0)
    model = RNNEncoder(width=6, cell="lstm", bidirectional=False)
    X = numpy.random.uniform(-1, 1, (7, 4)).astype("f")
    model.initialize(X=[X])
    full, prefix = model.predict([X, X[:3]])
    numpy.testing.assert_allclose(full[:3], prefix, atol=1e-6)


DETERMINERS = ["the", "a", "this", "every"]
SUBJECTS = ["dog", "cat", "man", "child", "bird", "farmer"]
VERBS = ["runs", "sings", "works", "eats", "walks", "reads", "talks", "waits"]
UNSEEN_ADVERBS = ["bigly", "warmly", "brightly", "sweetly", "coldly",
                  "fondly", "hotly", "smugly", "nicely", "oddly"]
UNSEEN_NOUNS = ["sugar", "butter", "pepper", "garden", "ticket"]


def made_up_word(rng: random.Random, suffix: str = "") -> str:
    n_syllables = rng.randint(1, 3)
    syllables = "".join(rng.choice("bcdfghjkmnprstvwz") + rng.choice("aeiou") for _ in range(n_syllables))
    return syllables + rng.choice("bcdfgkmnprst") + suffix  # never ends in "l", so never in "ly"


def slot_corpus(n: int = 120):
    """'DT NN VBZ X .' where X is a made-up noun (2/3) or a made-up -ly adverb (1/3),
    almost every one seen once: the context says nothing about X, its characters do."""
    rng = random.Random(0)
    data = []
    for i in range(n):
        last, tag = (made_up_word(rng, "ly"), "RB") if i % 3 == 0 else (made_up_word(rng), "NN")
        words = [rng.choice(DETERMINERS), rng.choice(SUBJECTS), rng.choice(VERBS), last, "."]
        data.append((words, ["DT", "NN", "VBZ", tag, "."]))
    return data


def tagger_config(char_embed=None, cell="lstm", bidirectional=True, width=16):
    word = {"width": width, "attrs": ["NORM", "ORTH"], "rows": [500, 500],
            "include_static_vectors": False}
    if char_embed is None:
        embed = {"@architectures": "spacy.MultiHashEmbed.v2", **word}
    else:
        embed = {"@architectures": "spacy_seqlab.CharWordEmbed.v1", **word, "char_embed": char_embed}
    encode = {"@architectures": "spacy_seqlab.RNNEncoder.v1", "width": width, "depth": 1, "cell": cell,
              "bidirectional": bidirectional, "dropout": 0.0}
    tok2vec = {"@architectures": "spacy.Tok2Vec.v2", "embed": embed, "encode": encode}
    return {"model": {"@architectures": "spacy_seqlab.CRFTagger.v1", "tok2vec": tok2vec}}


CHAR_CNN = {"@architectures": "spacy_seqlab.CharCNN.v1", "width": 32, "char_width": 16, "window": 1}
CHAR_BILSTM = {"@architectures": "spacy_seqlab.CharBiLSTM.v1", "width": 32, "char_width": 16}


def train_tagger(config, data, epochs, seed=0):
    fix_random_seed(seed)
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_tagger", config=config)
    examples = [Example.from_dict(nlp.make_doc(" ".join(w)), {"tags": t}) for w, t in data]
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.01
    for _ in range(epochs):
        for i in range(0, len(examples), 40):
            nlp.update(examples[i : i + 40], sgd=optimizer, drop=0.3)
    return nlp


def slot_tags(nlp, words):
    return [doc[3].tag_ for doc in nlp.pipe(f"the dog runs {word} ." for word in words)]


@pytest.fixture(scope="module")
def words_only_tagger():
    return train_tagger(tagger_config(None), slot_corpus(), epochs=20)


@pytest.mark.parametrize("char_embed", [CHAR_CNN, CHAR_BILSTM], ids=["cnn", "bilstm"])
def test_characters_tag_unseen_ly_words_as_adverbs_and_words_alone_cannot(
    char_embed, words_only_tagger
):
    data = slot_corpus()
    assert not set(UNSEEN_ADVERBS + UNSEEN_NOUNS) & {w for words, _ in data for w in words}
    with_chars = train_tagger(tagger_config(char_embed), data, epochs=20)
    assert slot_tags(with_chars, UNSEEN_ADVERBS) == ["RB"] * len(UNSEEN_ADVERBS)
    # ... and unseen nouns stay (nearly all) nouns: characters are no blanket "unknown = RB".
    assert slot_tags(with_chars, UNSEEN_NOUNS).count("NN") >= len(UNSEEN_NOUNS) - 1
    # Without characters an unseen word is only its random hashed rows: "bigly" gets the
    # frequent class of its slot, and the other -ly words get no help from their suffix.
    words_only = slot_tags(words_only_tagger, UNSEEN_ADVERBS)
    assert words_only[0] == "NN"
    assert words_only.count("RB") <= 3 * len(UNSEEN_ADVERBS) // 4


@pytest.mark.parametrize(
    "char_embed,cell,bidirectional",
    [(CHAR_CNN, "lstm", True), (CHAR_BILSTM, "gru", True), (None, "rnn", False)],
    ids=["charcnn-bilstm", "charbilstm-bigru", "words-rnn"],
)
def test_serialization_round_trip(char_embed, cell, bidirectional, tmp_path):
    config = tagger_config(char_embed, cell, bidirectional)
    nlp = train_tagger(config, slot_corpus(30), epochs=2)
    texts = ["the cat eats bigly .", "", "a Farmer waits"]

    def predict(pipeline):
        docs = list(pipeline.pipe(texts))
        return [t.tag_ for d in docs for t in d], [t._.tag_confidence for d in docs for t in d]

    tags, confidences = predict(nlp)
    nlp.to_disk(tmp_path)
    from_bytes = spacy.blank("en")
    from_bytes.add_pipe("crf_tagger", config=config)
    from_bytes.from_bytes(nlp.to_bytes())
    for reloaded in (spacy.load(tmp_path), from_bytes):
        new_tags, new_confidences = predict(reloaded)
        assert new_tags == tags
        numpy.testing.assert_allclose(new_confidences, confidences, rtol=1e-5)


@pytest.mark.parametrize(
    "name,args,match",
    [
        ("spacy_seqlab.RNNEncoder.v1", {"width": 8, "cell": "foo"}, "cell must be one of"),
        ("spacy_seqlab.RNNEncoder.v1", {"width": 7, "bidirectional": True}, "width must be a positive even"),
        ("spacy_seqlab.RNNEncoder.v1", {"width": 8, "depth": 0}, "depth must be >= 1"),
        ("spacy_seqlab.RNNEncoder.v1", {"width": 8, "dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ("spacy_seqlab.CharBiLSTM.v1", {"width": 25}, "width must be even"),
        ("spacy_seqlab.CharCNN.v1", {"window": -1}, "window must be >= 0"),
        ("spacy_seqlab.CharCNN.v1", {"max_chars": 0}, "CharCNN max_chars must be >= 1"),
    ],
)
def test_bad_config_values_raise_clear_errors(name, args, match):
    with pytest.raises(ValueError, match=match):
        registry.resolve({"model": {"@architectures": name, **args}})


def test_bad_encoder_in_a_pipeline_config_raises_value_error():
    config = tagger_config(CHAR_CNN, cell="foo")
    with pytest.raises(ValueError, match="cell must be one of"):
        spacy.blank("en").add_pipe("crf_tagger", config=config)


def test_names_resolve_through_entry_points_in_a_fresh_interpreter():
    names = ["CharCNN", "CharBiLSTM", "CharWordEmbed", "RNNEncoder"]
    code = (
        "from spacy.util import registry\n"
        f"print(all(registry.architectures.get('spacy_seqlab.' + n + '.v1') for n in {names!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
