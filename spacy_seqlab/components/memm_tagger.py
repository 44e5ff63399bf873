"""``memm_tagger``: a token attribute tagger (TAG or POS) with a maximum-entropy Markov
model output, ``P(y_i | y_{i-1}, x)`` normalized per token over the same scores the CRF
tagger normalizes per sequence (see ``spacy_seqlab.layers.memm``)."""
import copy
from typing import Callable, Optional

from spacy.language import Language
from spacy.tokens import Doc
from spacy.vocab import Vocab
from thinc.api import Model

from ..layers.crf import CRFScores
from ..layers.memm import DECODERS, memm_decode, memm_loss
from ..scorers import token_attr_score
from .crf_pipe import DEFAULT_CRF_MODEL, Predictions
from .crf_tagger import CRFTagger
from .pipe_meta import announce_meta, token_attr_meta

# the crf_tagger's default tok2vec, feeding the MEMM
DEFAULT_MEMM_MODEL = copy.deepcopy(DEFAULT_CRF_MODEL)
DEFAULT_MEMM_MODEL["@architectures"] = "spacy_seqlab.MEMMTagger.v1"


@Language.factory(
    "memm_tagger",
    assigns=token_attr_meta("tag")["assigns"],
    default_config={
        "model": DEFAULT_MEMM_MODEL,
        "attr": "tag",
        "overwrite": False,
        "neg_prefix": "!",
        "decoding": "viterbi",
        "scorer": {"@scorers": "spacy_seqlab.token_attr_scorer.v1"},
    },
    default_score_weights=token_attr_meta("tag")["score_weights"],
)
def make_memm_tagger(
    nlp: Language,
    name: str,
    model: Model,
    attr: str,
    overwrite: bool,
    neg_prefix: str,
    decoding: str,
    scorer: Optional[Callable],
) -> "MEMMTagger":
    """An MEMM tagger writing ``token.tag_`` (attr="tag") or ``token.pos_``
    (attr="pos"), decoded with Viterbi over the local log-probabilities
    (decoding="viterbi") or left to right (decoding="greedy"). ``token._.tag_confidence``
    (or ``pos_confidence``) holds the local probability of each label given the one
    chosen before it."""
    tagger = MEMMTagger(
        nlp.vocab,
        model,
        name,
        attr=attr,
        overwrite=overwrite,
        neg_prefix=neg_prefix,
        decoding=decoding,
        scorer=scorer,
    )
    announce_meta(nlp, name, "memm_tagger", **token_attr_meta(attr))
    return tagger


class MEMMTagger(CRFTagger):
    """The CRF tagger's labels, gold handling and annotation, over a model ending in
    ``spacy_seqlab.MEMM.v1`` (ref "memm"): trained with the local loss ``memm_loss``
    (teacher forcing on the gold previous label) and decoded with ``memm_decode``."""

    component_type = "memm_tagger"
    chain_ref = "memm"
    chain_loss = staticmethod(memm_loss)

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "memm_tagger",
        *,
        attr: str = "tag",
        overwrite: bool = False,
        neg_prefix: str = "!",
        decoding: str = "viterbi",
        scorer: Optional[Callable] = token_attr_score,
    ) -> None:
        if decoding not in DECODERS:
            raise ValueError(
                f"[{name}] decoding must be one of {sorted(DECODERS)}, got {decoding!r}"
            )
        super().__init__(
            vocab, model, name, attr=attr, overwrite=overwrite, neg_prefix=neg_prefix, scorer=scorer
        )
        # a prediction setting, kept out of self.cfg so that loading a saved pipeline
        # with another decoding in its config does not restore the saved one
        self.decoding = decoding

    def fixed_labels(self, doc: Doc) -> None:
        """Nothing is clamped: renormalizing a locally normalized model at a fixed
        token drops the factor P(fixed | previous), so the neighbours would not be
        decoded given it. Pre-set labels are still kept (``overwrite=False``)."""
        return None

    def decode(self, scores: CRFScores, confidences: bool = True) -> Predictions:
        """Label ids per doc and the local probability of each (a by-product of
        decoding: always given)."""
        return memm_decode(self.model.ops, scores, self.decoding)
