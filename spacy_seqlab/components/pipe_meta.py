"""Score weights and assigned attributes that follow a component's settings.

spaCy keeps one static ``FactoryMeta`` per factory (``default_score_weights``,
``assigns``) and copies it into ``nlp._pipe_meta[name]`` in ``add_pipe``, right after
the factory returns; ``nlp.config`` builds ``[training.score_weights]`` from those
metas and ``analyze_pipes`` reads their ``assigns``. A ``crf_tagger`` scores
``tag_acc`` or ``pos_acc`` depending on ``attr``, and a ``crf_ner`` ``ents_*`` or
``spans_{key}_*`` depending on ``spans_key``, so no static meta fits every instance
(one would add a column that can only read 0.00). The factories therefore call
:func:`announce_meta`, and the meta spaCy stores for that component is replaced by the
one for its settings. No public spaCy hook runs after ``add_pipe`` stores the meta,
hence the small dict subclass of ``nlp._pipe_meta`` below.
"""
import dataclasses
from typing import Dict, List, Optional

from spacy.language import FactoryMeta, Language

ScoreWeights = Dict[str, Optional[float]]


class _SettingsMetas(dict):
    """``nlp._pipe_meta`` that stores the meta announced for a component by its
    factory in place of the factory's static one, when ``add_pipe`` stores it."""

    def __init__(self, metas: Dict[str, FactoryMeta]) -> None:
        super().__init__(metas)
        self.announced: Dict[str, FactoryMeta] = {}

    def __setitem__(self, name: str, meta: FactoryMeta) -> None:
        announced = self.announced.pop(name, None)
        if announced is not None and announced.factory == meta.factory:
            meta = announced
        super().__setitem__(name, meta)

    def __reduce__(self):
        # pickled (nlp.pipe with n_process > 1 sends the nlp) as the plain dict it
        # holds: announcements only matter while a component is being added
        return dict, (dict(self),)


def announce_meta(
    nlp: Language, name: str, factory: str, *, assigns: List[str], score_weights: ScoreWeights
) -> None:
    """Make ``nlp`` record ``assigns`` and ``score_weights`` for the component ``name``
    that the factory ``factory`` is creating (call it from the factory)."""
    if not isinstance(nlp._pipe_meta, _SettingsMetas):
        nlp._pipe_meta = _SettingsMetas(nlp._pipe_meta)
    static = nlp.get_factory_meta(factory)
    nlp._pipe_meta.announced[name] = dataclasses.replace(
        static, assigns=assigns, scores=list(score_weights), default_score_weights=score_weights
    )


def token_attr_meta(attr: str) -> Dict:
    """What a tagger of ``token.{attr}`` assigns and is scored on."""
    return {"assigns": [f"token.{attr}"], "score_weights": {f"{attr}_acc": 1.0}}


def spans_meta(spans_key: Optional[str]) -> Dict:
    """What a span labeler writing ``doc.ents`` (``spans_key`` None) or
    ``doc.spans[spans_key]`` assigns and is scored on (the keys of ``span_score``)."""
    if spans_key is None:
        assigns, prefix = ["doc.ents", "token.ent_iob", "token.ent_type"], "ents"
    else:
        assigns, prefix = ["doc.spans"], f"spans_{spans_key}"
    weights = {f"{prefix}_f": 1.0, f"{prefix}_p": 0.0, f"{prefix}_r": 0.0, f"{prefix}_per_type": None}
    return {"assigns": assigns, "score_weights": weights}
