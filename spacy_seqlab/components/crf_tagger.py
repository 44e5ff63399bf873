"""``crf_tagger``: a token attribute tagger (TAG or POS) with a linear-chain CRF output."""
from bisect import bisect_left
from functools import partial
from typing import Callable, Iterable, Optional, Sequence

import numpy
from spacy.attrs import IDX, LENGTH, POS, TAG
from spacy.language import Language
from spacy.parts_of_speech import IDS as UPOS_IDS
from spacy.tokens import Doc, Token
from spacy.training import Example
from spacy.vocab import Vocab
from thinc.api import Model

from ..scorers import token_attr_score
from .crf_pipe import DEFAULT_CRF_MODEL, CRFPipe, Predictions
from .pipe_meta import announce_meta, token_attr_meta

ATTRS = {"tag": TAG, "pos": POS}
CONFIDENCE_KEY = "spacy_seqlab.confidence.{attr}"


def confidence_extension(attr: str) -> str:
    """Name of the Token extension holding the confidence of ``token.{attr}_``."""
    return f"{attr}_confidence"


def token_confidence(attr: str, token: Token) -> Optional[float]:
    """The confidence stored for ``token``'s ``attr`` label, or None when the token or
    its label changed since it was written (say, by retokenization): each value is
    kept with the character span and label it belongs to, so it is never misread."""
    stored = token.doc.user_data.get(CONFIDENCE_KEY.format(attr=attr))
    if not stored:
        return None
    starts = stored["starts"]
    i = int(numpy.searchsorted(starts, token.idx)) if isinstance(starts, numpy.ndarray) else bisect_left(starts, token.idx)
    if i < len(starts) and starts[i] == token.idx and stored["ends"][i] == token.idx + len(token):
        if "label_values" in stored:  # the label as stored in the doc array (a hash or UPOS id)
            same = int(stored["label_values"][i]) == getattr(token, attr)
        else:  # docs annotated by earlier versions store the label strings
            same = stored["labels"][i] == getattr(token, f"{attr}_")
        if same:
            return float(stored["values"][i])
    return None


def _register_confidence_extension(attr: str) -> None:
    name = confidence_extension(attr)
    if not Token.has_extension(name):
        Token.set_extension(name, getter=partial(token_confidence, attr))


@Language.factory(
    "crf_tagger",
    assigns=token_attr_meta("tag")["assigns"],
    default_config={
        "model": DEFAULT_CRF_MODEL,
        "attr": "tag",
        "overwrite": False,
        "neg_prefix": "!",
        "confidences": True,
        "scorer": {"@scorers": "spacy_seqlab.token_attr_scorer.v1"},
    },
    default_score_weights=token_attr_meta("tag")["score_weights"],
)
def make_crf_tagger(
    nlp: Language,
    name: str,
    model: Model,
    attr: str,
    overwrite: bool,
    neg_prefix: str,
    confidences: bool,
    scorer: Optional[Callable],
) -> "CRFTagger":
    """A CRF tagger writing ``token.tag_`` (attr="tag") or ``token.pos_`` (attr="pos"),
    and the posterior marginal of each predicted label to ``token._.tag_confidence``
    (or ``token._.pos_confidence``). ``confidences = false`` skips the marginals
    (forward-backward): the tags are the same, the confidences None."""
    tagger = CRFTagger(
        nlp.vocab, model, name, attr=attr, overwrite=overwrite, neg_prefix=neg_prefix,
        confidences=confidences, scorer=scorer,
    )
    announce_meta(nlp, name, "crf_tagger", **token_attr_meta(attr))
    return tagger


class CRFTagger(CRFPipe):
    """Tags tokens with the Viterbi labels of a linear-chain CRF."""

    component_type = "crf_tagger"

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "crf_tagger",
        *,
        attr: str = "tag",
        overwrite: bool = False,
        neg_prefix: str = "!",
        confidences: bool = True,
        scorer: Optional[Callable] = token_attr_score,
    ) -> None:
        if attr not in ATTRS:
            raise ValueError(
                f"[{name}] attr must be one of {sorted(ATTRS)}, got {attr!r}"
            )
        super().__init__(
            vocab,
            model,
            name,
            scorer=scorer,
            cfg={"attr": attr, "overwrite": overwrite, "neg_prefix": neg_prefix},
            confidences=confidences,
        )
        _register_confidence_extension(attr)

    @property
    def attr(self) -> str:
        return self.cfg["attr"]

    def validate_label(self, label: str) -> None:
        if self.attr == "pos" and label not in UPOS_IDS:
            raise ValueError(
                f"[{self.name}] {label!r} is not a Universal POS tag, so it cannot be "
                f"written to token.pos_; use attr='tag' for other tag sets"
            )

    def gold_labels(self, example: Example) -> Sequence[Optional[str]]:
        return example.get_aligned(self.attr.upper(), as_string=True)

    def _label_values(self) -> numpy.ndarray:
        """The value each label id is stored as in the doc array of ``attr``."""
        if self.attr == "pos":
            values = [UPOS_IDS[label] for label in self.labels]
        else:
            values = [self.vocab.strings.add(label) for label in self.labels]
        return numpy.asarray(values, dtype="uint64")

    def fixed_labels(self, doc: Doc) -> Optional[numpy.ndarray]:
        """With ``overwrite=False``, tokens that already have a value of ``attr`` keep
        it: a known label is the only one allowed there; an unknown one leaves the
        token free (the CRF marginalizes over it)."""
        if self.cfg["overwrite"] or not len(doc):
            return None
        existing = doc.to_array(ATTRS[self.attr]).astype("uint64")
        if not existing.any():
            return None
        values = self._label_values()
        known = existing[:, None] == values[None, :]  # (n_tokens, n_labels)
        return numpy.where(known.any(axis=1, keepdims=True), known, True)

    def set_annotations(self, docs: Iterable[Doc], preds: Predictions) -> None:
        """Write the labels to ``token.{attr}`` and their confidences to the docs; a
        label kept with ``overwrite=False`` has confidence 1. Without confidences
        (None), any stored before are removed: they would describe other labels."""
        paths, confidences = preds
        values = self._label_values()
        attr_id = ATTRS[self.attr]
        key = CONFIDENCE_KEY.format(attr=self.attr)
        for doc, path, conf in zip(docs, paths, confidences):
            if not len(doc):
                continue
            path = self.model.ops.to_numpy(path)
            new = values[path]
            kept = None
            if not self.cfg["overwrite"]:
                existing = doc.to_array(attr_id).astype("uint64")
                kept = existing != 0
                new = numpy.where(kept, existing, new) if kept.any() else new
            doc.from_array([attr_id], new[:, None])
            if conf is None:
                doc.user_data.pop(key, None)
                continue
            conf = self.model.ops.to_numpy(conf).astype("float64")
            if kept is not None and kept.any():
                conf = numpy.where(kept, 1.0, conf)
            bounds = doc.to_array([IDX, LENGTH]).astype("int64")
            # arrays, not lists: a list per token costs more than the decoding
            doc.user_data[key] = {
                "starts": bounds[:, 0],
                "ends": bounds[:, 0] + bounds[:, 1],
                "label_values": new,
                "values": conf,
            }
