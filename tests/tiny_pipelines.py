"""Tiny trained pipelines of every architecture (CNN, BiLSTM, BiGRU, BiRNN, char-CNN,
char-BiLSTM, hashed features) and component, and what they predict, for tests that
move them (serialization, devices)."""
import json

import numpy
import spacy
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import fix_random_seed

TAGGED = [
    ("The dog runs fast .", ["DT", "NN", "VBZ", "RB", "."]),
    ("A Farmer waits quietly", ["DT", "NN", "VBZ", "RB"]),
    ("Every child reads .", ["DT", "NN", "VBZ", "."]),
]
ENTS = [
    ("Anna flew to Paris .", [(0, 4, "PER"), (13, 18, "LOC")]),
    ("Bob likes Berlin", [(0, 3, "PER"), (10, 16, "LOC")]),
]
TEXTS = ["the Dog waits quietly .", "", "Anna runs to Berlin"]

WORDS = {"@architectures": "spacy.MultiHashEmbed.v2", "width": 16, "attrs": ["NORM", "SHAPE"],
         "rows": [200, 50], "include_static_vectors": False}
CNN = {"@architectures": "spacy.MaxoutWindowEncoder.v2", "width": 16, "window_size": 1,
       "maxout_pieces": 2, "depth": 1}


def with_chars(char_embed):
    return {**WORDS, "@architectures": "spacy_seqlab.CharWordEmbed.v1", "char_embed": char_embed}


def rnn(cell):
    return {"@architectures": "spacy_seqlab.RNNEncoder.v1", "width": 16, "cell": cell}


CHAR_CNN = with_chars({"@architectures": "spacy_seqlab.CharCNN.v1", "width": 8, "char_width": 6})
CHAR_BILSTM = with_chars({"@architectures": "spacy_seqlab.CharBiLSTM.v1", "width": 8, "char_width": 6})
TOK2VECS = {
    "cnn": (WORDS, CNN),
    "bilstm": (WORDS, rnn("lstm")),
    "bigru": (WORDS, rnn("gru")),
    "birnn": (WORDS, rnn("rnn")),
    "charcnn-cnn": (CHAR_CNN, CNN),
    "charbilstm-bilstm": (CHAR_BILSTM, rnn("lstm")),
}
FEATURES = {"@architectures": "spacy_seqlab.HashFeatures.v1", "width": 8, "attrs": ["NORM", "SUFFIX"],
            "rows": [200, 50], "window_size": 1}


def model_config(architecture: str, name: str) -> dict:
    """``name``: a key of TOK2VECS, "features", or "sentences-KEY" (that tok2vec with its
    encoder run on each sentence, spacy_seqlab.SentenceTok2Vec.v1)."""
    if name == "features":
        tok2vec = FEATURES
    else:
        per_sentence = name.startswith("sentences-")
        embed, encode = TOK2VECS[name.removeprefix("sentences-")]
        tok2vec = {"@architectures": "spacy_seqlab.SentenceTok2Vec.v1" if per_sentence else "spacy.Tok2Vec.v2",
                   "embed": embed, "encode": encode}
    return {"model": {"@architectures": architecture, "tok2vec": tok2vec}}


# (factory, its config): every architecture under crf_tagger, the others under their own.
PIPELINES = {
    **{f"crf_tagger-{n}": ("crf_tagger", model_config("spacy_seqlab.CRFTagger.v1", n))
       for n in [*TOK2VECS, "features"]},
    "memm_tagger-bilstm": ("memm_tagger", model_config("spacy_seqlab.MEMMTagger.v1", "bilstm")),
    "crf_ner-charbilstm-bilstm": ("crf_ner", model_config("spacy_seqlab.CRFTagger.v1", "charbilstm-bilstm")),
    "crf_ner-sentences-charbilstm-bilstm": ("crf_ner", model_config("spacy_seqlab.CRFTagger.v1", "sentences-charbilstm-bilstm")),
    "hmm_tagger": ("hmm_tagger", {}),
}
# the pipelines that run on PyTorch (the recurrent extra)
RECURRENT = [name for name, (_, config) in PIPELINES.items()
             if any(layer in json.dumps(config) for layer in ("RNNEncoder", "CharBiLSTM"))]


def span_examples(nlp: spacy.Language, data, spans_key=None):
    """Examples over whitespace-split texts whose gold spans are token-index ``(start,
    end, label)`` triples: ``doc.ents`` (every other token outside), or
    ``doc.spans[spans_key]``."""
    out = []
    for text, spans in data:
        ref = Doc(nlp.vocab, words=text.split())
        gold = [Span(ref, s, e, label) for s, e, label in spans]
        if spans_key:
            ref.spans[spans_key] = gold
        else:
            ref.set_ents(gold, default="outside")
        out.append(Example(Doc(nlp.vocab, words=text.split()), ref))
    return out


def examples(nlp: spacy.Language, factory: str):
    if factory == "crf_ner":
        return [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in ENTS]
    return [Example.from_dict(nlp.make_doc(t), {"tags": tags}) for t, tags in TAGGED]


def fit(nlp: spacy.Language, data, steps: int) -> spacy.Language:
    """``nlp`` initialized on ``data`` (examples) and updated ``steps`` times on all of
    it, from random seed 0."""
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: data)
    for _ in range(steps):
        nlp.update(data, sgd=optimizer)
    return nlp


def train(factory: str, config: dict) -> spacy.Language:
    """A blank English pipeline with one ``factory`` component, 3 updates."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe(factory, config=config)
    return fit(nlp, examples(nlp, factory), 3)


def predictions(nlp: spacy.Language):
    """Per doc: (tag, confidence) per token or (start, end, label, confidence) per
    entity; NaN where a component gives no confidence (hmm_tagger)."""
    docs = list(nlp.pipe(TEXTS))
    if "crf_ner" in nlp.pipe_names:
        return [[(e.start, e.end, e.label_, e._.crf_confidence) for e in doc.ents] for doc in docs]
    nan = float("nan")
    return [[(t.tag_, nan if t._.tag_confidence is None else t._.tag_confidence) for t in doc]
            for doc in docs]


def assert_same_predictions(got, expected, rtol: float) -> None:
    """Labels (and spans) equal, confidences equal up to ``rtol``."""
    assert [[row[:-1] for row in doc] for doc in got] == [[row[:-1] for row in doc] for doc in expected]
    numpy.testing.assert_allclose(
        [row[-1] for doc in got for row in doc], [row[-1] for doc in expected for row in doc], rtol=rtol
    )


def record_batches(monkeypatch, pipe) -> list:
    """A list that gets the doc lengths of each batch ``pipe.predict`` is given."""
    batches = []
    predict = pipe.predict

    def spy(docs):
        docs = list(docs)
        batches.append([len(doc) for doc in docs])
        return predict(docs)

    monkeypatch.setattr(pipe, "predict", spy)
    return batches
