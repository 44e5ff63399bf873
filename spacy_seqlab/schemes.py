"""Span tagging schemes: tag names, spans <-> tags, and the transitions they allow.

``BILUO`` (spaCy's default: Begin, In, Last, Unit, Out) and ``BIO`` (IOB2: every span
starts with ``B-``). A tag is ``"O"`` or ``"{prefix}-{label}"``; labels may contain
dashes. ``allowed_transitions`` derives the CRF's validity mask from the tag names, so
decoding never produces a sequence like ``O I-PER`` or ``B-LOC I-ORG``.
"""
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy

from .crf import TransitionMask

SCHEMES = ("BILUO", "BIO")
OUT = "O"
Span = Tuple[int, int, str]  # start token, end token (exclusive), label


def check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    return scheme


def split_tag(tag: str) -> Tuple[str, Optional[str]]:
    """("O", None) or (prefix, label) for ``"{prefix}-{label}"``."""
    if tag == OUT:
        return OUT, None
    prefix, sep, label = tag.partition("-")
    if not sep or not label or prefix not in "BILU" or len(prefix) != 1:
        raise ValueError(f"{tag!r} is not a span tag (expected 'O' or B-/I-/L-/U- + label)")
    return prefix, label


def tag_names(scheme: str, labels: Iterable[str]) -> List[str]:
    """The tags of ``labels``: "O", then per label B, I (and L, U for BILUO)."""
    prefixes = "BILU" if check_scheme(scheme) == "BILUO" else "BI"
    return [OUT] + [f"{p}-{label}" for label in labels for p in prefixes]


def spans_to_tags(scheme: str, n_tokens: int, spans: Iterable[Span]) -> List[str]:
    """Tags of ``n_tokens`` tokens with ``spans`` (non-overlapping) and O elsewhere."""
    bilu = check_scheme(scheme) == "BILUO"
    tags = [OUT] * n_tokens
    for start, end, label in sorted(spans):
        if not 0 <= start < end <= n_tokens:
            raise ValueError(f"span ({start}, {end}) lies outside a {n_tokens}-token doc")
        if any(tag != OUT for tag in tags[start:end]):
            raise ValueError(f"span ({start}, {end}, {label!r}) overlaps another span")
        if bilu and end - start == 1:
            tags[start] = f"U-{label}"
            continue
        tags[start] = f"B-{label}"
        tags[start + 1 : end] = [f"I-{label}"] * (end - start - 1)
        if bilu:
            tags[end - 1] = f"L-{label}"
    return tags


class TagSet:
    """Tag names parsed once: each tag id's prefix and label, for reading spans off
    decoded tag ids without touching strings per token."""

    def __init__(self, tags: Sequence[str]) -> None:
        parsed = [split_tag(tag) for tag in tags]
        self.index = {tag: i for i, tag in enumerate(tags)}
        self.prefixes = numpy.asarray([prefix for prefix, _ in parsed])
        self.labels = [label for _, label in parsed]
        label_ids = {label: i for i, label in enumerate(dict.fromkeys(self.labels))}
        self.label_ids = numpy.asarray([label_ids[label] for label in self.labels])

    def spans(self, ids: Sequence[int]) -> List[Span]:
        """Spans of a tag id sequence (BILUO or BIO). Invalid sequences are read
        leniently, as conlleval does: an I- or L- that does not continue a span of its
        label starts one."""
        ids = numpy.asarray(ids, dtype="int64")
        if not ids.size:
            return []
        prefix = self.prefixes[ids]
        label = self.label_ids[ids]
        inside = prefix != OUT
        # token t continues the span of t - 1: I-/L- of the same label after an open B-/I-
        continues = numpy.zeros(ids.size + 1, dtype=bool)
        continues[1:-1] = (
            numpy.isin(prefix[1:], ["I", "L"])
            & numpy.isin(prefix[:-1], ["B", "I"])
            & (label[1:] == label[:-1])
        )
        starts = numpy.nonzero(inside & ~continues[:-1])[0].tolist()
        ends = (numpy.nonzero(inside & ~continues[1:])[0] + 1).tolist()
        return [(s, e, self.labels[ids[s]]) for s, e in zip(starts, ends)]


def tags_to_spans(tags: Sequence[str]) -> List[Span]:
    """Spans of a BILUO or BIO tag sequence (see ``TagSet.spans``)."""
    tag_set = TagSet(sorted(set(tags)))
    return tag_set.spans([tag_set.index[tag] for tag in tags])


def biluo_to_scheme(scheme: str, biluo: Sequence[Optional[str]]) -> List[Optional[str]]:
    """spaCy's aligned BILUO gold (``Example.get_aligned_ner``) in ``scheme``; missing
    ("-", "" or None) stays None."""
    bio = check_scheme(scheme) == "BIO"
    out: List[Optional[str]] = []
    for tag in biluo:
        if not tag or tag == "-":
            out.append(None)
        elif bio and tag[0] in "LU":
            out.append(("I" if tag[0] == "L" else "B") + tag[1:])
        else:
            out.append(tag)
    return out


def allowed_transitions(scheme: str, tags: Sequence[str]) -> TransitionMask:
    """Which tag bigrams, first tags and last tags form valid ``scheme`` sequences."""
    bilu = check_scheme(scheme) == "BILUO"
    parsed = [split_tag(tag) for tag in tags]
    n = len(parsed)
    transitions = numpy.zeros((n, n), dtype=bool)
    for i, (p, a) in enumerate(parsed):
        for j, (q, b) in enumerate(parsed):
            inside = q in "IL" and a == b
            if bilu:
                transitions[i, j] = inside if p in "BI" else q in "OBU"
            else:
                transitions[i, j] = q in "OB" or (inside and p in "BI")
    start = numpy.asarray([p in ("OBU" if bilu else "OB") for p, _ in parsed])
    end = numpy.asarray([p in ("OLU" if bilu else "OBI") for p, _ in parsed])
    return TransitionMask(transitions, start, end)


def continuation_tag(scheme: str, label: str) -> Optional[str]:
    """The tag that, right after a span of ``label``, would extend it (BIO's I-), or
    None where the scheme closes spans explicitly (BILUO)."""
    return f"I-{label}" if check_scheme(scheme) == "BIO" else None
