"""``spacy seqlab-least-confident PIPELINE CORPUS OUTPUT``: the docs a ``crf_ner``
component is least sure about, as JSONL annotation tasks (Prodigy's format: ``text``,
``tokens``, ``spans`` with ``token_start``/``token_end`` inclusive, plus a ``score`` per
span and the doc's scores in ``meta``), least confident first.

Docs are ranked ``--by min-span`` (the smallest ``span._.crf_confidence`` of the doc;
1.0 for a doc without predicted spans) or ``--by sequence`` (the probability of the
whole decoded analysis under the CRF, which also catches missed entities).
"""
import heapq
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

import spacy
import srsly
from spacy.cli._util import Arg, Opt, app, import_code
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from wasabi import msg

from ..components.crf_ner import CONFIDENCE_EXTENSION, CRFEntityRecognizer

RANKINGS = ("min-span", "sequence")


def read_corpus(nlp: Language, path: Path) -> Iterator[Doc]:
    """Unannotated docs of a ``.spacy`` DocBin (its tokenization kept) or a ``.jsonl``
    file of objects with a "text" field (tokenized by the pipeline)."""
    if path.suffix == ".spacy":
        for doc in DocBin().from_disk(path).get_docs(nlp.vocab):
            yield Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])
    elif path.suffix == ".jsonl":
        for i, record in enumerate(srsly.read_jsonl(path)):
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f"{path}, line {i + 1}: expected an object with a 'text' string")
            yield nlp.make_doc(record["text"])
    else:
        raise ValueError(f"{path}: expected a .spacy or .jsonl corpus, got {path.suffix!r}")


def find_ner(nlp: Language, component: Optional[str]) -> str:
    """The name of the ``crf_ner`` component to rank by (the only one, or ``component``)."""
    names = [name for name, pipe in nlp.pipeline if isinstance(pipe, CRFEntityRecognizer)]
    if component is not None:
        if component not in names:
            raise ValueError(f"{component!r} is not a crf_ner component of the pipeline: {names}")
        return component
    if len(names) != 1:
        raise ValueError(f"expected one crf_ner component, found {names}: pass --component")
    return names[0]


def min_confidence(spans: Iterable[Span]) -> float:
    """The smallest confidence among ``spans`` (1.0 if none is scored)."""
    values = [c for c in (getattr(s._, CONFIDENCE_EXTENSION) for s in spans) if c is not None]
    return min(values, default=1.0)


def task(doc: Doc, spans: Iterable, meta: Dict[str, Any]) -> Dict[str, Any]:
    """One annotation task: the doc's tokens and predicted spans with their scores."""
    return {
        "text": doc.text,
        "tokens": [
            {"text": t.text, "start": t.idx, "end": t.idx + len(t), "id": t.i, "ws": bool(t.whitespace_)}
            for t in doc
        ],
        "spans": [
            {
                "start": s.start_char, "end": s.end_char, "token_start": s.start,
                "token_end": s.end - 1, "label": s.label_,
                "score": getattr(s._, CONFIDENCE_EXTENSION),
            }
            for s in spans
        ],
        "meta": meta,
    }


def least_confident(
    nlp: Language, docs: Iterable[Doc], n: int, by: str, component: Optional[str] = None,
    batch_size: int = 64,
) -> List[Dict[str, Any]]:
    """The ``n`` tasks of ``docs`` with the lowest score ``by``, lowest first."""
    if by not in RANKINGS:
        raise ValueError(f"--by must be one of {RANKINGS}, got {by!r}")
    if n < 1:
        raise ValueError(f"--n must be a positive integer, got {n}")
    name = find_ner(nlp, component)
    ner = nlp.get_pipe(name)
    spans_key = ner.spans_key
    before = nlp.pipe_names[: nlp.pipe_names.index(name)]
    heap: List[Tuple[float, int, Dict[str, Any]]] = []  # the n lowest, as a max-heap
    confidences, ner.confidences = ner.confidences, True  # the ranking needs them, even if set off
    try:
        with nlp.select_pipes(enable=before):
            processed = nlp.pipe(docs, batch_size=batch_size)
            for i, batch in enumerate(spacy.util.minibatch(processed, batch_size)):
                # the probability of the decoded analysis, before it is written to the docs
                sequence = [analyses[0].probability for analyses in ner.nbest(batch, n=1)]
                for k, (doc, p_seq) in enumerate(zip(ner.pipe(batch), sequence)):
                    spans = list(doc.ents if spans_key is None else doc.spans[spans_key])
                    min_span = min_confidence(spans)
                    score = min_span if by == "min-span" else p_seq
                    meta = {
                        "index": i * batch_size + k, "score": score, "by": by,
                        "min_span_confidence": min_span, "sequence_probability": p_seq,
                    }
                    heapq.heappush(heap, (-score, -meta["index"], task(doc, spans, meta)))
                    if len(heap) > n:
                        heapq.heappop(heap)
    finally:
        ner.confidences = confidences
    return [t for _, _, t in sorted(heap, key=lambda item: (-item[0], -item[1]))]


@app.command("seqlab-least-confident")
def least_confident_cli(
    # fmt: off
    pipeline: str = Arg(..., help="Pipeline package name or directory with a crf_ner component"),
    corpus: Path = Arg(..., help="A .spacy DocBin (its tokenization is kept) or a .jsonl file of {'text': ...}", exists=True),
    output: Path = Arg(..., help="Output .jsonl file of tasks, least confident first"),
    n: int = Opt(100, "--n", "-n", help="How many docs to export"),
    by: str = Opt("min-span", "--by", help="min-span (lowest span confidence) or sequence (probability of the decoded analysis)"),
    component: Optional[str] = Opt(None, "--component", help="The crf_ner component to rank by (if there are several)"),
    code_path: Optional[Path] = Opt(None, "--code", "-c", help="Python file with custom code to import"),
    # fmt: on
) -> None:
    """Export the docs of a corpus that a crf_ner component is least confident about,
    as JSONL annotation tasks with their spans and scores."""
    import_code(code_path)
    nlp = spacy.load(pipeline)
    tasks = least_confident(nlp, read_corpus(nlp, corpus), n, by, component)
    srsly.write_jsonl(output, tasks)
    msg.good(f"Wrote the {len(tasks)} least confident docs (by {by}) to {output}")
