"""A corpus reader that gives one training example per sentence and keeps span groups.

spaCy's ``gold_preproc = true`` splits each doc into sentences with ``Span.as_doc``, which
keeps ``doc.ents`` but drops ``doc.spans``: a ``crf_ner`` that writes a span group (the
CoNLL-2000 chunker, ``spans_key = "chunks"``) then finds no labels at all. This reader
splits the same way and moves each sentence's spans along with it.
"""
from pathlib import Path
from typing import Callable, Iterator, List, Union

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Corpus, Example
from spacy.training.corpus import FILE_TYPE, walk_corpus
from spacy.util import registry


@registry.readers("spacy_seqlab.SentenceCorpus.v1")
def create_sentence_corpus(path: Union[str, Path], limit: int = 0) -> Callable[[Language], Iterator[Example]]:
    """The docs of the ``.spacy`` file(s) at ``path`` (the first ``limit``; 0: all), one
    example per sentence (a doc without sentence starts is one), with gold tokens, as
    ``spacy.Corpus.v1`` with ``gold_preproc = true``, but with every span group kept."""
    corpus = Corpus(path, limit=limit)

    def read(nlp: Language) -> Iterator[Example]:
        for doc in corpus.read_docbin(nlp.vocab, walk_corpus(corpus.path, FILE_TYPE)):
            for sentence in sentence_docs(doc):
                if len(sentence):
                    words = Doc(nlp.vocab, words=[t.text for t in sentence],
                                spaces=[bool(t.whitespace_) for t in sentence])
                    yield Example(words, sentence)

    return read


def unannotated(doc: Doc) -> Doc:
    """A copy of ``doc``'s tokens, whitespace and sentence starts and nothing else: what
    a pipeline runs on to be scored with gold tokens and sentences (as ``spacy evaluate
    --gold-preproc``)."""
    return Doc(doc.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc],
               sent_starts=[t.is_sent_start for t in doc])


def sentence_docs(doc: Doc) -> List[Doc]:
    """``doc``'s sentences as docs, each with its share of every span group of ``doc``
    (``doc`` itself when it has no sentence starts). A span that crosses a sentence
    boundary is refused: it fits in no sentence, and dropping it would lose gold data."""
    if not doc.has_annotation("SENT_START"):
        return [doc]
    sentences = list(doc.sents)
    out = [sentence.as_doc() for sentence in sentences]
    sentence_of = [i for i, sentence in enumerate(sentences) for _ in range(len(sentence))]
    for key, group in doc.spans.items():
        per_sentence: List[List[Span]] = [[] for _ in sentences]
        for span in group:
            i = sentence_of[min(span.start, len(doc) - 1)]
            if span.end > sentences[i].end:
                raise ValueError(
                    f"doc.spans[{key!r}] has the span {span.text!r} (tokens {span.start}-{span.end}) "
                    "across a sentence boundary: a one-sentence example cannot hold it. Fix the "
                    "sentence starts, or read whole docs (spacy.Corpus.v1, gold_preproc = false)"
                )
            start = sentences[i].start
            per_sentence[i].append(Span(out[i], span.start - start, span.end - start, span.label_))
        for sentence_doc, spans in zip(out, per_sentence):
            sentence_doc.spans[key] = spans
    return out
