"""``crf_ner``: entities or chunks from a linear-chain CRF over BILUO or BIO tags.

Decoding is constrained to valid tag sequences; each predicted span gets its
probability under the CRF (``span._.crf_confidence``), and ``nbest`` lists the n most
probable analyses of a doc.
"""
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.vocab import Vocab
from thinc.api import Model

from ..crf import TransitionMask, forward_backward, log_messages, nbest, segment_log_probs
from ..layers.crf import CRFScores, crf_viterbi
from ..schemes import (
    OUT,
    TagSet,
    allowed_transitions,
    biluo_to_scheme,
    check_scheme,
    continuation_tag,
    spans_to_tags,
    split_tag,
    tag_names,
)
from ..scorers import span_score
from .crf_pipe import DEFAULT_CRF_MODEL, CRFPipe

CONFIDENCE_KEY = "spacy_seqlab.span_confidence"
CONFIDENCE_EXTENSION = "crf_confidence"
# per doc: (start, end, label id, probability) of each predicted span
SpanPredictions = List[List[Tuple[int, int, int, float]]]


class Analysis(NamedTuple):
    """One of the n best analyses of a doc: its spans, probability and CRF score."""

    spans: List[Span]
    probability: float
    score: float


def _span_key(start: int, end: int, label: str) -> str:
    return f"{start}:{end}:{label}"


def _confidence_getter(span: Span) -> Optional[float]:
    values = span.doc.user_data.get(CONFIDENCE_KEY)
    if not values:
        return None
    return values.get(_span_key(span.start, span.end, span.label_))


if not Span.has_extension(CONFIDENCE_EXTENSION):
    Span.set_extension(CONFIDENCE_EXTENSION, getter=_confidence_getter)


@Language.factory(
    "crf_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", "doc.spans"],
    default_config={
        "model": DEFAULT_CRF_MODEL,
        "scheme": "BILUO",
        "spans_key": None,
        "neg_prefix": "!",
        "scorer": {"@scorers": "spacy_seqlab.span_scorer.v1"},
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_crf_ner(
    nlp: Language,
    name: str,
    model: Model,
    scheme: str,
    spans_key: Optional[str],
    neg_prefix: str,
    scorer: Optional[Callable],
) -> "CRFEntityRecognizer":
    """A CRF span recognizer writing ``doc.ents`` (or ``doc.spans[spans_key]``), with
    the probability of each span in ``span._.crf_confidence``. With ``spans_key`` set,
    score it as ``spans_{spans_key}_f`` in ``[training.score_weights]``."""
    return CRFEntityRecognizer(
        nlp.vocab, model, name, scheme=scheme, spans_key=spans_key, neg_prefix=neg_prefix,
        scorer=scorer,
    )


class CRFEntityRecognizer(CRFPipe):
    """Labels non-overlapping spans by decoding BILUO/BIO tags with a CRF.

    ``labels`` are the span labels (PER, LOC, ...); the CRF scores their tags
    (``output_labels``) under a transition mask that allows only valid sequences.
    Entities already in ``doc.ents`` (say, from an entity ruler) are kept; predicted
    entities that overlap them are dropped.
    """

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "crf_ner",
        *,
        scheme: str = "BILUO",
        spans_key: Optional[str] = None,
        neg_prefix: str = "!",
        scorer: Optional[Callable] = span_score,
    ) -> None:
        check_scheme(scheme)
        if spans_key is not None and (not isinstance(spans_key, str) or not spans_key):
            raise ValueError(f"[{name}] spans_key must be a non-empty string or None")
        super().__init__(
            vocab,
            model,
            name,
            scorer=scorer,
            cfg={"scheme": scheme, "spans_key": spans_key, "neg_prefix": neg_prefix},
        )

    @property
    def scheme(self) -> str:
        return self.cfg["scheme"]

    @property
    def spans_key(self) -> Optional[str]:
        return self.cfg["spans_key"]

    @property
    def output_labels(self) -> List[str]:
        return tag_names(self.scheme, self.labels)

    def transition_mask(self) -> TransitionMask:
        return allowed_transitions(self.scheme, self.output_labels)

    def validate_label(self, label: str) -> None:
        if label != label.strip() or not label:
            raise ValueError(f"[{self.name}] span labels cannot be blank or padded: {label!r}")

    # --- gold ---------------------------------------------------------------------
    def gold_labels(self, example: Example) -> Sequence[Optional[str]]:
        """The gold tags of the predicted tokens in this component's scheme; None
        where the annotation is missing."""
        if self.spans_key is None:
            return biluo_to_scheme(self.scheme, example.get_aligned_ner())
        n = len(example.predicted)
        if self.spans_key not in example.reference.spans:
            return [None] * n
        gold = example.get_aligned_spans_y2x(
            example.reference.spans[self.spans_key], allow_overlap=True
        )
        try:
            return spans_to_tags(self.scheme, n, [(s.start, s.end, s.label_) for s in gold])
        except ValueError as err:
            raise ValueError(
                f"[{self.name}] cannot learn doc.spans[{self.spans_key!r}] of the doc "
                f"{example.reference.text[:50]!r}...: {err}. A CRF labels non-overlapping "
                f"spans; use spancat for overlapping ones."
            ) from err

    def labels_from_examples(self, get_examples: Callable[[], Iterable[Example]]) -> List[str]:
        tags = super().labels_from_examples(get_examples)
        return sorted({split_tag(tag)[1] for tag in tags if tag != OUT})

    # --- prediction -----------------------------------------------------------------
    def predict(self, docs: Iterable[Doc]) -> SpanPredictions:
        """Per doc, the spans of the Viterbi tags with their probabilities."""
        scores = self.scores(docs)
        if scores is None:
            return []
        tag_set = TagSet(self.output_labels)
        ops = self.model.ops
        spans = [tag_set.spans(ops.to_numpy(path)) for path in crf_viterbi(ops, scores)]
        probs = self._span_probabilities(scores, spans)
        label_ids = {label: i for i, label in enumerate(self.labels)}
        return [
            [(start, end, label_ids[label], p) for (start, end, label), p in zip(doc_spans, doc_probs)]
            for doc_spans, doc_probs in zip(spans, probs)
        ]

    def _span_probabilities(
        self, scores: CRFScores, spans: List[List[Tuple[int, int, str]]]
    ) -> List[List[float]]:
        """P(exactly this span, with this label, is in the analysis | doc) per span:
        the posterior mass of the span's tags, minus that of the same tags followed by
        one continuing the span (BIO's I-), which would make it longer."""
        ops, xp = self.model.ops, self.model.ops.xp
        index = self._label_index()
        nonempty = [b for b, doc_spans in enumerate(spans) if doc_spans]
        if not nonempty:
            return [[] for _ in spans]
        rows = xp.asarray(nonempty)
        emissions, lengths = scores.emissions[rows], scores.lengths[rows]
        messages = log_messages(xp, emissions, lengths, scores.potentials)
        segments: List[Tuple[int, int, List[int]]] = []
        longer: List[Tuple[int, int, int, List[int]]] = []  # (span index, row, start, tags)
        for row, b in enumerate(nonempty):
            for start, end, label in spans[b]:
                tags = spans_to_tags(self.scheme, end - start, [(0, end - start, label)])
                path = [index[tag] for tag in tags]
                extra = continuation_tag(self.scheme, label)
                if extra is not None and end < int(lengths[row]):
                    longer.append((len(segments), row, start, path + [index[extra]]))
                segments.append((row, start, path))
        def probability(segments: List[Tuple[int, int, List[int]]]) -> numpy.ndarray:
            paths = numpy.full((len(segments), max(len(p) for *_, p in segments)), -1)
            for k, (_, _, path) in enumerate(segments):
                paths[k, : len(path)] = path
            log_p = segment_log_probs(
                xp, messages, emissions, scores.potentials, [row for row, _, _ in segments],
                [start for _, start, _ in segments], xp.asarray(paths),
            )
            return ops.to_numpy(xp.exp(log_p))

        probs = probability(segments)
        if longer:
            probs[[k for k, *_ in longer]] -= probability([segment for _, *segment in longer])
        probs = numpy.clip(probs, 0.0, 1.0).tolist()
        out: List[List[float]] = []
        for doc_spans in spans:
            out.append(probs[: len(doc_spans)])
            probs = probs[len(doc_spans) :]
        return out

    def set_annotations(self, docs: Iterable[Doc], preds: SpanPredictions) -> None:
        """Write the spans to ``doc.ents`` (keeping existing entities) or to
        ``doc.spans[spans_key]``, and their probabilities to the docs."""
        for doc, doc_preds in zip(docs, preds):
            spans = [Span(doc, start, end, label=self.labels[i]) for start, end, i, _ in doc_preds]
            confidences: Dict[str, float] = doc.user_data.setdefault(CONFIDENCE_KEY, {})
            for span, (_, _, _, p) in zip(spans, doc_preds):
                confidences[_span_key(span.start, span.end, span.label_)] = p
            if self.spans_key is not None:
                doc.spans[self.spans_key] = spans
                continue
            existing = list(doc.ents)
            taken = numpy.zeros(len(doc) + 1, dtype=bool)
            for ent in existing:
                taken[ent.start : ent.end] = True
            kept = [span for span in spans if not taken[span.start : span.end].any()]
            doc.set_ents(existing + kept, default="outside")

    # --- n-best -----------------------------------------------------------------------
    def nbest(self, docs: Iterable[Doc], n: int = 5) -> List[List[Analysis]]:
        """The ``n`` most probable analyses of each doc, best first, each a list of
        spans with its probability under the CRF. The docs must have been processed by
        the components before this one (``nlp.pipe`` output), like ``predict``'s."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"[{self.name}] n must be a positive integer, got {n!r}")
        docs = list(docs)
        scores = self.scores(docs)
        if scores is None:
            return []
        xp = self.model.ops.xp
        lengths = xp.maximum(scores.lengths, 1)  # an empty doc has one analysis: no spans
        log_z = forward_backward(xp, scores.emissions, lengths, scores.potentials, counts=None).log_z
        tag_set = TagSet(self.output_labels)
        out: List[List[Analysis]] = []
        for b, doc in enumerate(docs):
            if not len(doc):
                out.append([Analysis([], 1.0, 0.0)])
                continue
            paths, path_scores = nbest(xp, scores.emissions[b, : len(doc)], scores.potentials, n)
            analyses = []
            for path, score in zip(paths.tolist(), path_scores.tolist()):
                spans = [
                    Span(doc, start, end, label=label)
                    for start, end, label in tag_set.spans(path)
                ]
                analyses.append(Analysis(spans, float(numpy.exp(score - float(log_z[b]))), score))
            out.append(analyses)
        return out
