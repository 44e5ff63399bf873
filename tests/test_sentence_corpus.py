"""spacy_seqlab.SentenceCorpus.v1: one example per sentence, span groups kept (spaCy's
gold_preproc drops them)."""
import pytest
import spacy
from confection import ConfigValidationError
from spacy.tokens import Doc, DocBin, Span
from spacy.util import registry

from spacy_seqlab.readers import sentence_docs

WORDS = "He reckons the deficit will narrow . Rates rose in Paris .".split()
STARTS = [True, False, False, False, False, False, False, True, False, False, False, False]


def chunked_doc(vocab) -> Doc:
    doc = Doc(vocab, words=WORDS, sent_starts=STARTS)
    doc.spans["chunks"] = [Span(doc, 0, 1, "NP"), Span(doc, 1, 2, "VP"), Span(doc, 2, 4, "NP"),
                           Span(doc, 7, 8, "NP"), Span(doc, 8, 9, "VP"), Span(doc, 10, 11, "NP")]
    doc.ents = [Span(doc, 10, 11, "LOC")]
    return doc


def test_sentences_keep_their_spans_and_entities():
    vocab = spacy.blank("en").vocab
    first, second = sentence_docs(chunked_doc(vocab))
    assert [t.text for t in first] == WORDS[:7] and [t.text for t in second] == WORDS[7:]
    assert [(s.text, s.label_) for s in first.spans["chunks"]] == [("He", "NP"), ("reckons", "VP"), ("the deficit", "NP")]
    assert [(s.text, s.label_) for s in second.spans["chunks"]] == [("Rates", "NP"), ("rose", "VP"), ("Paris", "NP")]
    assert [(e.text, e.label_) for e in second.ents] == [("Paris", "LOC")]
    # spaCy's own split (gold_preproc) loses the span group
    assert "chunks" not in list(chunked_doc(vocab).sents)[0].as_doc().spans


def test_a_doc_without_sentence_starts_is_one_example():
    vocab = spacy.blank("en").vocab
    doc = Doc(vocab, words=WORDS)
    doc.spans["chunks"] = [Span(doc, 0, 1, "NP")]
    assert sentence_docs(doc) == [doc]


def test_a_span_across_sentences_is_refused():
    vocab = spacy.blank("en").vocab
    doc = chunked_doc(vocab)
    doc.spans["chunks"] = [Span(doc, 5, 8, "NP")]
    with pytest.raises(ValueError, match=r"doc.spans\['chunks'\].*'narrow . Rates'.*across a sentence boundary"):
        sentence_docs(doc)


def test_reader_yields_gold_token_examples_per_sentence(tmp_path):
    nlp = spacy.blank("en")
    path = tmp_path / "train.spacy"
    DocBin(docs=[chunked_doc(nlp.vocab), Doc(nlp.vocab, words=[])]).to_disk(path)
    read = registry.resolve({"c": {"@readers": "spacy_seqlab.SentenceCorpus.v1", "path": str(path)}})["c"]
    examples = list(read(nlp))
    assert [len(eg.predicted) for eg in examples] == [7, 5]
    assert [t.text for t in examples[1].predicted] == WORDS[7:]  # gold tokens, not re-tokenized
    assert [s.text for s in examples[1].reference.spans["chunks"]] == ["Rates", "rose", "Paris"]
    with pytest.raises(ConfigValidationError, match="path"):  # paths.train left null
        registry.resolve({"c": {"@readers": "spacy_seqlab.SentenceCorpus.v1", "path": None}})
