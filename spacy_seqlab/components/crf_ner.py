"""``crf_ner``: entities or chunks from a linear-chain CRF over BILUO or BIO tags.

Decoding is constrained to valid tag sequences; each predicted span gets its
probability under the CRF (``span._.crf_confidence``), and ``nbest`` lists the n most
probable analyses of a doc.
"""
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example
from spacy.vocab import Vocab
from thinc.api import Model

from ..calibration import apply_span_calibration, check_span_calibration
from ..crf import TransitionMask, long_rows, nbest, segment_log_probs
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
    tags_to_spans,
)
from ..scorers import span_score
from .crf_pipe import DEFAULT_CRF_MODEL, CRFPipe
from .pipe_meta import announce_meta, spans_meta

CONFIDENCE_KEY = "spacy_seqlab.span_confidence"
CONFIDENCE_EXTENSION = "crf_confidence"
ENTS_CONFIDENCE_EXTENSION = "ents_crf_confidence"
# per doc: (start, end, label id, probability) of each predicted span
SpanPredictions = List[List[Tuple[int, int, int, float]]]


class Analysis(NamedTuple):
    """One of the n best analyses of a doc: its spans, probability and CRF score."""

    spans: List[Span]
    probability: float
    score: float


def _span_key(start_char: int, end_char: int, label: str) -> str:
    # character offsets, which retokenization (merge_entities, splits) leaves alone
    return f"{start_char}:{end_char}:{label}"


def _confidence_getter(span: Span) -> Optional[float]:
    values = span.doc.user_data.get(CONFIDENCE_KEY)
    if not values:
        return None
    return values.get(_span_key(span.start_char, span.end_char, span.label_))


def _ents_confidence_getter(doc: Doc) -> List[Optional[float]]:
    return [_confidence_getter(ent) for ent in doc.ents]


if not Span.has_extension(CONFIDENCE_EXTENSION):
    Span.set_extension(CONFIDENCE_EXTENSION, getter=_confidence_getter)
# aligned with doc.ents, so that ``doc.to_json(underscore=[ENTS_CONFIDENCE_EXTENSION])``
# carries the confidences next to its "ents"
if not Doc.has_extension(ENTS_CONFIDENCE_EXTENSION):
    Doc.set_extension(ENTS_CONFIDENCE_EXTENSION, getter=_ents_confidence_getter)


@Language.factory(
    "crf_ner",
    assigns=spans_meta(None)["assigns"],
    default_config={
        "model": DEFAULT_CRF_MODEL,
        "scheme": "BILUO",
        "spans_key": None,
        "neg_prefix": "!",
        "confidences": True,
        "scorer": {"@scorers": "spacy_seqlab.span_scorer.v1"},
    },
    default_score_weights=spans_meta(None)["score_weights"],
)
def make_crf_ner(
    nlp: Language,
    name: str,
    model: Model,
    scheme: str,
    spans_key: Optional[str],
    neg_prefix: str,
    confidences: bool,
    scorer: Optional[Callable],
) -> "CRFEntityRecognizer":
    """A CRF span recognizer writing ``doc.ents`` (or ``doc.spans[spans_key]``), with
    the probability of each span in ``span._.crf_confidence``. Its default score weights
    follow ``spans_key``: ``ents_f``, or ``spans_{spans_key}_f`` with a key.
    ``confidences = false`` skips the span probabilities (forward-backward): the
    spans are the same, ``crf_confidence`` None and no "scores" in the span group."""
    recognizer = CRFEntityRecognizer(
        nlp.vocab, model, name, scheme=scheme, spans_key=spans_key, neg_prefix=neg_prefix,
        confidences=confidences, scorer=scorer,
    )
    announce_meta(nlp, name, "crf_ner", **spans_meta(spans_key))
    return recognizer


class CRFEntityRecognizer(CRFPipe):
    """Labels non-overlapping spans by decoding BILUO/BIO tags with a CRF.

    ``labels`` are the span labels (PER, LOC, ...); the CRF scores their tags
    (``output_labels``) under a transition mask that allows only valid sequences.
    Entities already in ``doc.ents`` (say, from an entity ruler) and tokens blocked
    from entities are kept, and the rest of each doc is decoded given them
    (``fixed_labels``).
    """

    component_type = "crf_ner"

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "crf_ner",
        *,
        scheme: str = "BILUO",
        spans_key: Optional[str] = None,
        neg_prefix: str = "!",
        confidences: bool = True,
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
            confidences=confidences,
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

    def output_ids_of(self, label: str) -> List[int]:
        index = self._label_index()
        return [index[tag] for tag in tag_names(self.scheme, [label])[1:]]

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
        """Per doc, the spans of the Viterbi tags with their probabilities (None with
        ``confidences`` off)."""
        docs = list(docs)
        scores = self.scores(docs)
        if scores is None:
            return []
        spans, probs = self._decode_spans(self.clamped(scores, docs), self.confidences)
        if self.span_calibration is not None and self.confidences:
            probs = [
                apply_span_calibration(
                    self.span_calibration, doc_probs, [label for *_, label in doc_spans],
                    [end - start for start, end, _ in doc_spans],
                ).tolist()
                for doc_spans, doc_probs in zip(spans, probs)
            ]
        label_ids = {label: i for i, label in enumerate(self.labels)}
        return [
            [(start, end, label_ids[label], p) for (start, end, label), p in zip(doc_spans, doc_probs)]
            for doc_spans, doc_probs in zip(spans, probs)
        ]

    def fixed_labels(self, doc: Doc) -> Optional[numpy.ndarray]:
        """In entity mode, ``doc.ents`` given before this component (an entity ruler,
        or set by hand) and tokens blocked from entities (``doc.set_ents(...,
        blocked=[...])``) are fixed: an entity of a known label is clamped to its tags,
        one of another label and a blocked token to O (no predicted span may overlap
        them), and under BIO the token after a fixed entity may not continue it.

        As in spaCy's ``ner``, "O" tokens stay free: ``doc.ents = [...]`` (what the
        entity ruler does) marks every other token "O", so "O" cannot mean "fixed".
        In both modes, whitespace tokens are O (``_whitespace_out``)."""
        if self.spans_key is not None or not len(doc):
            return self._whitespace_out(doc, None)
        iob_type = doc.to_array(["ENT_IOB", "ENT_TYPE"])
        if not (iob_type[:, 0] % 2).any():  # no B (3) or I (1) token
            return self._whitespace_out(doc, None)
        index = self._label_index()
        one_hot = numpy.eye(len(index), dtype=bool)
        allowed = numpy.ones((len(doc), len(index)), dtype=bool)
        allowed[(iob_type[:, 0] == 3) & (iob_type[:, 1] == 0)] = one_hot[index[OUT]]
        for ent in doc.ents:
            if ent.label_ not in self.labels:
                allowed[ent.start : ent.end] = one_hot[index[OUT]]
                continue
            tags = spans_to_tags(self.scheme, len(ent), [(0, len(ent), ent.label_)])
            allowed[ent.start : ent.end] = one_hot[[index[tag] for tag in tags]]
            extra = continuation_tag(self.scheme, ent.label_)
            if extra is not None and ent.end < len(doc):
                allowed[ent.end, index[extra]] = False
        return self._whitespace_out(doc, allowed)

    def _whitespace_out(
        self, doc: Doc, allowed: Optional[numpy.ndarray]
    ) -> Optional[numpy.ndarray]:
        """``allowed`` with whitespace-only tokens fixed to O wherever O is allowed: as
        with spaCy's ``ner``, no predicted entity or chunk contains one."""
        space = doc.to_array("IS_SPACE").astype(bool) if len(doc) else None
        if space is None or not space.any():
            return allowed
        out = self._label_index()[OUT]
        if allowed is None:
            allowed = numpy.ones((len(doc), len(self.output_labels)), dtype=bool)
        space &= allowed[:, out]
        allowed[space] = False
        allowed[space, out] = True
        return allowed

    def confidence_pairs(self, examples: Sequence[Example], scores: CRFScores) -> Tuple[numpy.ndarray, numpy.ndarray]:
        """The confidence of each Viterbi span of the predicted docs of ``examples``
        under ``scores`` (its probability, through the span calibration), and whether
        the span (start, end, label) is gold."""
        probs, hits, labels, lengths = self.span_pairs(examples, scores)
        return apply_span_calibration(self.span_calibration, probs, labels, lengths), hits

    def span_pairs(
        self, examples: Sequence[Example], scores: CRFScores
    ) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        """Per Viterbi span of the predicted docs of ``examples`` under ``scores``
        whose gold is known (its tokens and the one after it have a gold tag; spans on
        missing annotation are left out, not counted wrong): its probability (before the
        span calibration), whether it is gold, its label and its length; (N,) each."""
        spans, probs = self._decode_spans(self.clamped(scores, [eg.predicted for eg in examples]))
        neg = self.cfg["neg_prefix"]
        kept, hits, kept_probs = [], [], []
        for eg, doc_spans, doc_probs in zip(examples, spans, probs):
            tags = list(self.gold_labels(eg))
            known = [bool(tag) and not (neg and tag.startswith(neg)) for tag in tags] + [True]
            gold = set(tags_to_spans([tag if ok else OUT for tag, ok in zip(tags, known)]))
            for span, p in zip(doc_spans, doc_probs):
                if all(known[span[0] : span[1] + 1]):
                    kept.append(span)
                    hits.append(span in gold)
                    kept_probs.append(p)
        return (
            numpy.asarray(kept_probs, dtype="float64"),
            numpy.asarray(hits, dtype=bool),
            numpy.asarray([label for _, _, label in kept], dtype=object),
            numpy.asarray([end - start for start, end, _ in kept], dtype="int64"),
        )

    @property
    def span_calibration(self) -> Optional[Dict]:
        """The logistic map applied to each span's probability after the temperature
        (``spacy_seqlab.calibration.fit_component_span_calibration``); None: none.
        Saved in ``cfg`` (JSON)."""
        return self.cfg.get("span_calibration")

    def check_cfg(self) -> None:
        super().check_cfg()
        check_span_calibration(self.cfg.get("span_calibration"))

    def set_span_calibration(self, value: Optional[Dict]) -> None:
        """Set (or with None, remove) the span calibration; ValueError if malformed."""
        self.cfg["span_calibration"] = check_span_calibration(value)

    def _decode_spans(
        self, scores: CRFScores, probabilities: bool = True
    ) -> Tuple[List[List[Tuple[int, int, str]]], List[List[Optional[float]]]]:
        """The spans (start, end, label) of the Viterbi tags of each doc, and their
        probabilities (None each without ``probabilities``)."""
        tag_set = TagSet(self.output_labels)
        ops = self.model.ops
        spans = [tag_set.spans(ops.to_numpy(path)) for path in crf_viterbi(ops, scores)]
        if not probabilities:
            return spans, [[None] * len(doc_spans) for doc_spans in spans]
        return spans, self._span_probabilities(scores, spans)

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
        messages = long_rows.log_messages(xp, emissions, lengths, scores.potentials)
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
        """Write the spans to ``doc.ents`` (keeping the entities given before, which
        decoding was conditioned on) or to ``doc.spans[spans_key]`` (with their
        probabilities in the group's ``attrs["scores"]``, as spancat does), and the
        probabilities to the docs (``span._.crf_confidence``); with ``confidences``
        off, neither."""
        for doc, doc_preds in zip(docs, preds):
            spans = [Span(doc, start, end, label=self.labels[i]) for start, end, i, _ in doc_preds]
            probs = [p for *_, p in doc_preds]
            if self.confidences:
                confidences: Dict[str, float] = doc.user_data.setdefault(CONFIDENCE_KEY, {})
                for span, p in zip(spans, probs):
                    confidences[_span_key(span.start_char, span.end_char, span.label_)] = p
            if self.spans_key is not None:
                attrs = {"scores": numpy.asarray(probs, dtype="float32")} if self.confidences else {}
                doc.spans[self.spans_key] = SpanGroup(doc, name=self.spans_key, spans=spans, attrs=attrs)
                continue
            existing = list(doc.ents)
            taken = numpy.zeros(len(doc) + 1, dtype=bool)
            for ent in existing:
                taken[ent.start : ent.end] = True
            # the fixed entities come back decoded as they were: keep the originals
            kept = [span for span in spans if not taken[span.start : span.end].any()]
            doc.set_ents(existing + kept, default="outside")

    # --- n-best -----------------------------------------------------------------------
    def nbest(self, docs: Iterable[Doc], n: int = 5) -> List[List[Analysis]]:
        """The ``n`` most probable analyses of each doc, best first, each a list of
        spans with its probability under the CRF given the labels fixed on the docs
        (``fixed_labels``). The docs must have been processed by the components before
        this one and not by this one (its entities would be fixed), like ``predict``'s."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"[{self.name}] n must be a positive integer, got {n!r}")
        docs = list(docs)
        scores = self.scores(docs)
        if scores is None:
            return []
        scores = self.clamped(scores, docs)
        xp = self.model.ops.xp
        lengths = xp.maximum(scores.lengths, 1)  # an empty doc has one analysis: no spans
        log_z = long_rows.forward_backward(
            xp, scores.emissions, lengths, scores.potentials, counts=None
        ).log_z
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
