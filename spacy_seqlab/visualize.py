"""displaCy input with confidences: each span's label gets its probability appended
("PER 0.93"), in displaCy's manual formats, so that ``displacy.render(data,
style="ent" | "span", manual=True, options=options)`` shows what the CRF is unsure of.

``confidence_colors`` colours labels by confidence (red below ``threshold``), since
displaCy keys colours on the label text, which now carries the number.
"""
from typing import Any, Dict, Iterable, Optional, Tuple

from spacy.tokens import Doc, Span

from .components.crf_ner import CONFIDENCE_EXTENSION

LOW = "#ff8a8a"  # below the threshold
HIGH = "#b5e8b0"


def confidence_label(span: Span, digits: int = 2) -> str:
    """``span.label_`` with its confidence appended; unchanged for a span the CRF did
    not score (say, an entity ruler's of a label the component does not have)."""
    confidence = getattr(span._, CONFIDENCE_EXTENSION)
    if confidence is None:
        return span.label_
    return f"{span.label_} {confidence:.{digits}f}"


def ents_with_confidence(doc: Doc, spans_key: Optional[str] = None, title: Optional[str] = None) -> Dict[str, Any]:
    """``doc.ents`` (or ``doc.spans[spans_key]``, which must not overlap) in displaCy's
    manual "ent" format, labels with confidences."""
    spans = doc.ents if spans_key is None else doc.spans[spans_key]
    return {
        "text": doc.text,
        "ents": [
            {"start": s.start_char, "end": s.end_char, "label": confidence_label(s)} for s in spans
        ],
        "title": title,
    }


def spans_with_confidence(doc: Doc, spans_key: str, title: Optional[str] = None) -> Dict[str, Any]:
    """``doc.spans[spans_key]`` in displaCy's manual "span" format, labels with
    confidences."""
    return {
        "text": doc.text,
        "tokens": [t.text for t in doc],
        "spans": [
            {"start_token": s.start, "end_token": s.end, "label": confidence_label(s)}
            for s in doc.spans[spans_key]
        ],
        "title": title,
    }


def confidence_colors(data: Iterable[Dict[str, Any]], threshold: float = 0.9) -> Dict[str, str]:
    """displaCy ``options["colors"]``: every label of ``data`` (manual dicts from the
    functions above) in red when its confidence is below ``threshold``, else green."""
    colors: Dict[str, str] = {}
    for item in data:
        for span in item.get("ents", item.get("spans", [])):
            label, confidence = split_label(span["label"])
            if confidence is not None:
                colors[span["label"]] = LOW if confidence < threshold else HIGH
    return colors


def split_label(text: str) -> Tuple[str, Optional[float]]:
    """("PER", 0.93) from "PER 0.93"; (text, None) for a label without a confidence."""
    label, _, number = text.rpartition(" ")
    try:
        return label, float(number)
    except ValueError:
        return text, None

