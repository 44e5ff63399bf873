"""Registered scorers."""
from typing import Any, Dict, Iterable

from spacy.scorer import Scorer, get_ner_prf
from spacy.training import Example
from spacy.util import registry


def token_attr_score(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    """Token accuracy of the component's ``attr`` ("tag" or "pos"): ``{attr}_acc``."""
    attr = kwargs.pop("attr", "tag")
    return Scorer.score_token_attr(examples, attr, **kwargs)


@registry.scorers("spacy_seqlab.token_attr_scorer.v1")
def make_token_attr_scorer():
    return token_attr_score


def span_score(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    """P/R/F overall and per label of ``doc.ents`` (``ents_*``, as spaCy's ner), or of
    ``doc.spans[spans_key]`` (``spans_{spans_key}_*``) when the component sets a key."""
    spans_key = kwargs.get("spans_key")
    if spans_key is None:
        return get_ner_prf(examples)
    return Scorer.score_spans(
        examples,
        f"spans_{spans_key}",
        getter=lambda doc, _: doc.spans.get(spans_key, []),
        has_annotation=lambda doc: spans_key in doc.spans,
    )


@registry.scorers("spacy_seqlab.span_scorer.v1")
def make_span_scorer():
    return span_score
