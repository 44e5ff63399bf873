"""Registered scorers."""
from typing import Any, Dict, Iterable

from spacy.scorer import Scorer
from spacy.training import Example
from spacy.util import registry


def token_attr_score(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    """Token accuracy of the component's ``attr`` ("tag" or "pos"): ``{attr}_acc``."""
    attr = kwargs.pop("attr", "tag")
    return Scorer.score_token_attr(examples, attr, **kwargs)


@registry.scorers("spacy_seqlab.token_attr_scorer.v1")
def make_token_attr_scorer():
    return token_attr_score
