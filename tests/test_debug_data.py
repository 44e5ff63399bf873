"""``python -m spacy seqlab-debug-data``: run as a user runs it, on tiny corpora."""
import subprocess
import sys

import numpy
import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example

import spacy_seqlab  # noqa: F401
from spacy_seqlab.cli.debug_data import first_impossible_token, misaligned_tokens
from spacy_seqlab.crf import TransitionMask
from spacy_seqlab.schemes import allowed_transitions, tag_names


def ner_doc(vocab, words, ents, spaces=None):
    doc = Doc(vocab, words=words, spaces=spaces)
    doc.set_ents([Span(doc, s, e, label) for s, e, label in ents], default="outside")
    return doc


def write(path, docs):
    DocBin(docs=docs).to_disk(path)
    return str(path)


def run(config, train, dev):
    return subprocess.run(
        [sys.executable, "-m", "spacy", "seqlab-debug-data", str(config),
         "--paths.train", train, "--paths.dev", dev],
        capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def ner_config(tmp_path_factory):
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_ner", config={"scheme": "BILUO"})
    path = tmp_path_factory.mktemp("cfg") / "ner.cfg"
    nlp.config.to_disk(path)
    return path


def test_clean_corpus_passes_and_reports_counts(ner_config, tmp_path):
    vocab = spacy.blank("en").vocab
    train = write(tmp_path / "train.spacy", [
        ner_doc(vocab, "Shaka Khan is in London".split(), [(0, 2, "PER"), (4, 5, "LOC")]),
        ner_doc(vocab, "London is big".split(), [(0, 1, "LOC")]),
    ])
    dev = write(tmp_path / "dev.spacy", [ner_doc(vocab, "Khan likes London".split(), [(2, 3, "LOC")])])
    out = run(ner_config, train, dev)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "crf_ner" in out.stdout
    assert "U-LOC 2" in out.stdout and "B-PER 1" in out.stdout and "O 4" in out.stdout
    assert "No errors" in out.stdout


def test_problems_are_reported_and_errors_fail(ner_config, tmp_path):
    vocab = spacy.blank("en").vocab
    bad = Doc(vocab, words=["Khan", "is", "here"], ents=["I-PER", "O", "O"])  # I without B
    train = write(tmp_path / "train.spacy", [
        ner_doc(vocab, "Shaka Khan is in London".split(), [(0, 2, "PER"), (4, 5, "LOC")]),
        bad,
    ])
    dev = write(tmp_path / "dev.spacy", [
        # "New" + "York" without a space: one token for the pipeline's tokenizer
        ner_doc(vocab, ["New", "York", "Times", "hired", "Khan"], [(0, 3, "ORG"), (4, 5, "PER")],
                spaces=[False, True, True, True, False]),
    ])
    out = run(ner_config, train, dev)
    assert out.returncode == 1
    assert "train doc 1" in out.stdout and "cannot be read" in out.stdout and "E093" in out.stdout
    assert "dev: labels never seen in train" in out.stdout and "ORG" in out.stdout
    assert "1 tokens are not aligned one-to-one" in out.stdout
    assert "never seen in train" in out.stdout and "U-PER" in out.stdout


def test_impossible_gold_is_found_where_it_breaks():
    tags = tag_names("BILUO", ["PER"])  # O B-PER I-PER L-PER U-PER
    mask = allowed_transitions("BILUO", tags)
    allowed = numpy.ones((4, len(tags)), dtype=bool)
    assert first_impossible_token(allowed, mask) is None
    allowed[1] = numpy.asarray(tags) == "B-PER"
    allowed[2] = numpy.asarray(tags) == "O"  # B-PER O: the span is never closed
    assert first_impossible_token(allowed, mask) == 2
    last_b = numpy.ones((2, len(tags)), dtype=bool)
    last_b[1] = numpy.asarray(tags) == "B-PER"  # a doc cannot end inside a span
    assert first_impossible_token(last_b, mask) == 1
    first_i = numpy.ones((2, len(tags)), dtype=bool)
    first_i[0] = numpy.asarray(tags) == "I-PER"
    assert first_impossible_token(first_i, mask) == 0
    free = TransitionMask(numpy.ones((2, 2), bool), numpy.ones(2, bool), numpy.ones(2, bool))
    assert first_impossible_token(numpy.zeros((3, 2), bool), free) == 0


def test_misaligned_tokens_counts_both_directions():
    nlp = spacy.blank("en")
    ref = Doc(nlp.vocab, words=["New", "York", "is", "big-ish"], spaces=[False, True, True, False])
    eg = Example(nlp.make_doc(ref.text), ref)  # NewYork | is | big - ish
    assert [t.text for t in eg.predicted] == ["NewYork", "is", "big", "-", "ish"]
    assert misaligned_tokens(eg) == 4  # NewYork (two gold tokens), big, -, ish (one split)
