"""``crf_tagger``: a token attribute tagger (TAG or POS) with a linear-chain CRF output."""
from typing import Callable, Iterable, List, Optional, Sequence

import numpy
from spacy.attrs import POS, TAG
from spacy.language import Language
from spacy.parts_of_speech import IDS as UPOS_IDS
from spacy.tokens import Doc, Token
from spacy.training import Example
from spacy.vocab import Vocab
from thinc.api import Model

from ..scorers import token_attr_score
from .crf_pipe import DEFAULT_CRF_MODEL, CRFPipe, Predictions

ATTRS = {"tag": TAG, "pos": POS}
CONFIDENCE_KEY = "spacy_seqlab.confidence.{attr}"



def confidence_extension(attr: str) -> str:
    """Name of the Token extension holding the confidence of ``token.{attr}_``."""
    return f"{attr}_confidence"


def _register_confidence_extension(attr: str) -> None:
    name = confidence_extension(attr)
    key = CONFIDENCE_KEY.format(attr=attr)

    def getter(token: Token) -> Optional[float]:
        values = token.doc.user_data.get(key)
        if values is None or len(values) != len(token.doc):
            return None
        return values[token.i]

    if not Token.has_extension(name):
        Token.set_extension(name, getter=getter)


@Language.factory(
    "crf_tagger",
    assigns=["token.tag", "token.pos"],
    default_config={
        "model": DEFAULT_CRF_MODEL,
        "attr": "tag",
        "overwrite": False,
        "neg_prefix": "!",
        "scorer": {"@scorers": "spacy_seqlab.token_attr_scorer.v1"},
    },
    default_score_weights={"tag_acc": 0.5, "pos_acc": 0.5},
)
def make_crf_tagger(
    nlp: Language,
    name: str,
    model: Model,
    attr: str,
    overwrite: bool,
    neg_prefix: str,
    scorer: Optional[Callable],
) -> "CRFTagger":
    """A CRF tagger writing ``token.tag_`` (attr="tag") or ``token.pos_`` (attr="pos"),
    and the posterior marginal of each predicted label to ``token._.tag_confidence``
    (or ``token._.pos_confidence``)."""
    return CRFTagger(
        nlp.vocab, model, name, attr=attr, overwrite=overwrite, neg_prefix=neg_prefix, scorer=scorer
    )


class CRFTagger(CRFPipe):
    """Tags tokens with the Viterbi labels of a linear-chain CRF."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "crf_tagger",
        *,
        attr: str = "tag",
        overwrite: bool = False,
        neg_prefix: str = "!",
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

    def set_annotations(self, docs: Iterable[Doc], preds: Predictions) -> None:
        """Write the labels to ``token.{attr}`` and their confidences to the docs."""
        paths, confidences = preds
        values = self._label_values()
        attr_id = ATTRS[self.attr]
        key = CONFIDENCE_KEY.format(attr=self.attr)
        for doc, path, conf in zip(docs, paths, confidences):
            if not len(doc):
                continue
            new = values[self.model.ops.to_numpy(path)]
            if not self.cfg["overwrite"]:
                existing = doc.to_array(attr_id).astype("uint64")
                new = numpy.where(existing != 0, existing, new)
            doc.from_array([attr_id], new[:, None])
            doc.user_data[key] = self.model.ops.to_numpy(conf).tolist()
