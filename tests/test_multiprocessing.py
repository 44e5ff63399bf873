"""``nlp.pipe(texts, n_process=2)`` under the ``spawn`` start method (the default on
macOS and Windows): every component, its extension getters and the pipeline pickle
into the worker processes, which give the same annotations and confidences as
``n_process=1``."""
import subprocess
import sys

import numpy
import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.util import fix_random_seed

from .tiny_pipelines import CNN, WORDS

TOK2VEC = {"@architectures": "spacy.Tok2Vec.v2", "embed": WORDS, "encode": CNN}
# (words, XPOS, UPOS, entities, chunks); spans as (start, end, label) token offsets
DATA = [
    ("Anna flew to Paris .".split(), ["NNP", "VBD", "IN", "NNP", "."],
     ["PROPN", "VERB", "ADP", "PROPN", "PUNCT"], [(0, 1, "PER"), (3, 4, "LOC")],
     [(0, 1, "NP"), (1, 2, "VP"), (2, 3, "PP"), (3, 4, "NP")]),
    ("the dog saw Bob".split(), ["DT", "NN", "VBD", "NNP"], ["DET", "NOUN", "VERB", "PROPN"],
     [(3, 4, "PER")], [(0, 2, "NP"), (2, 3, "VP"), (3, 4, "NP")]),
]
TEXTS = ["Bob flew to Berlin .", "", "the cat saw Anna", "Paris is big", "a dog ran to Bob .",
         "Anna", "the big dog saw the cat near Paris .", "Berlin"]
# two pipelines, as taggers of the same attribute would keep each other's labels
PIPELINES = {
    "crf": [("crf_tagger", "crf_tagger", {}), ("upos", "crf_tagger", {"attr": "pos"}),
            ("crf_ner", "crf_ner", {}), ("chunker", "crf_ner", {"spans_key": "chunks"})],
    "baselines": [("memm_tagger", "memm_tagger", {}), ("hmm_tagger", "hmm_tagger", {"attr": "pos"})],
}
WITH_MODEL = {"crf_tagger": "spacy_seqlab.CRFTagger.v1", "crf_ner": "spacy_seqlab.CRFTagger.v1",
              "memm_tagger": "spacy_seqlab.MEMMTagger.v1"}

SPAWN = """
import multiprocessing, sys
import spacy
from spacy.tokens import DocBin

multiprocessing.set_start_method("spawn", force=True)
for path in sys.argv[1:]:
    nlp = spacy.load(path)
    texts = [line for line in open(path + ".texts", encoding="utf8").read().split("\\n")]
    docs = list(nlp.pipe(texts, n_process=2, batch_size=2))
    DocBin(docs=docs, store_user_data=True).to_disk(path + ".spacy")
"""


def train(components) -> spacy.Language:
    fix_random_seed(0)
    nlp = spacy.blank("en")
    for name, factory, config in components:
        if factory in WITH_MODEL:
            config = {**config, "model": {"@architectures": WITH_MODEL[factory], "tok2vec": TOK2VEC}}
        nlp.add_pipe(factory, name=name, config=config)
    examples = []
    for words, tags, pos, ents, chunks in DATA:
        doc = nlp.make_doc(" ".join(words))

        def chars(spans):
            return [(doc[s].idx, doc[e - 1].idx + len(doc[e - 1]), label) for s, e, label in spans]

        examples.append(Example.from_dict(doc, {
            "tags": tags, "pos": pos, "entities": chars(ents), "spans": {"chunks": chars(chunks)}}))
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(5):
        nlp.update(examples, sgd=optimizer)
    return nlp


def annotations(docs):
    """Per doc: tags and POS with their confidences, entities and chunks with theirs."""
    out = []
    for doc in docs:
        out.append({
            "tokens": [(t.tag_, t.pos_, t._.tag_confidence, t._.pos_confidence) for t in doc],
            "ents": [(e.start, e.end, e.label_, e._.crf_confidence) for e in doc.ents],
            "chunks": [(s.start, s.end, s.label_, s._.crf_confidence)
                       for s in doc.spans.get("chunks", [])],
        })
    return out


def confidences(annotation):
    values = [v for doc in annotation for rows in doc.values() for row in rows for v in row
              if isinstance(v, float)]
    return numpy.asarray(values)


def labels(annotation):
    return [{key: [tuple(v for v in row if not isinstance(v, float)) for row in rows]
             for key, rows in doc.items()} for doc in annotation]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each pipeline saved (with the texts to run), and its n_process=1 annotations."""
    root = tmp_path_factory.mktemp("mp")
    expected = {}
    for key, components in PIPELINES.items():
        nlp = train(components)
        nlp.to_disk(root / key)
        (root / f"{key}.texts").write_text("\n".join(TEXTS), encoding="utf8")
        expected[key] = annotations(nlp.pipe(TEXTS, n_process=1))
    return root, expected


def test_spawned_workers_match_a_single_process(saved):
    root, expected = saved
    paths = [str(root / key) for key in PIPELINES]
    # a worker that dies leaves spaCy waiting: the timeout turns a hang into a failure
    result = subprocess.run([sys.executable, "-c", SPAWN, *paths], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for key in PIPELINES:
        nlp = spacy.load(root / key)
        got = annotations(DocBin().from_disk(root / f"{key}.spacy").get_docs(nlp.vocab))
        assert labels(got) == labels(expected[key])
        numpy.testing.assert_allclose(confidences(got), confidences(expected[key]), rtol=1e-5)
    # the annotations are real: every component labelled something with a confidence
    crf = expected["crf"]
    assert all(tag and pos and 0 < tag_p <= 1 and 0 < pos_p <= 1
               for doc in crf for tag, pos, tag_p, pos_p in doc["tokens"])
    assert any(doc["ents"] for doc in crf) and any(doc["chunks"] for doc in crf)
    baselines = expected["baselines"]
    assert all(tag and pos and tag_p is not None and pos_p is None
               for doc in baselines for tag, pos, tag_p, pos_p in doc["tokens"])
