"""Shared base of the CRF components: labels, loss, decoding and safe loading.

Subclasses say how gold annotation becomes per-token label strings
(``gold_labels``) and how decoded label ids are written to the docs
(``set_annotations``). A component whose CRF scores tags derived from its labels
(``crf_ner``: B-PER, I-PER, ...) overrides ``output_labels``, ``transition_mask`` and
``labels_from_examples``.
"""
import math
from itertools import islice
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model
from thinc.types import Floats1d, Ints1d

from ..crf import TransitionMask, allowed_from_gold
from ..layers.crf import CRFGradient, CRFScores, crf_decode, crf_loss

Predictions = Tuple[List[Ints1d], List[Floats1d]]

# the CNN tok2vec of spaCy's own tagger and ner, feeding the CRF
DEFAULT_CRF_MODEL = Config().from_str(
    """
[model]
@architectures = "spacy_seqlab.CRFTagger.v1"
nO = null

[model.tok2vec]
@architectures = "spacy.HashEmbedCNN.v2"
pretrained_vectors = null
width = 96
depth = 4
embed_size = 2000
window_size = 1
maxout_pieces = 3
subword_features = true
"""
)["model"]


class CRFPipe(TrainablePipe):
    """A TrainablePipe whose model ends in ``spacy_seqlab.CRF.v1`` (refs
    "output_layer" and "crf", as built by ``spacy_seqlab.CRFTagger.v1``).

    ``chain_ref`` names the layer that owns the chain potentials and ``chain_loss``
    the loss that trains them: a subclass with another chain layer over the same
    ``CRFScores`` (``memm_tagger``) swaps both.
    """

    chain_ref = "crf"
    chain_loss = staticmethod(crf_loss)

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str,
        *,
        scorer: Optional[Callable],
        cfg: Dict,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg = {"labels": [], "neg_prefix": "!", **cfg}
        self._index_for: List[str] = []  # the labels that self._index was built from
        self._index: Dict[str, int] = {}

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    @property
    def output_labels(self) -> List[str]:
        """The labels the CRF scores, in order: by default the component's labels."""
        return list(self.labels)

    def transition_mask(self) -> Optional[TransitionMask]:
        """The label bigrams the CRF may decode (None: all)."""
        return None

    def _sync_transition_mask(self) -> None:
        # derived from the labels rather than serialized, so it always matches them
        self.model.get_ref(self.chain_ref).attrs["transition_mask"] = (
            self.transition_mask() if self.labels else None
        )

    def add_label(self, label: str) -> int:
        """Add a label before training; returns 0 if it was present, else 1."""
        if not isinstance(label, str) or not label:
            raise ValueError(f"[{self.name}] labels must be non-empty strings, got {label!r}")
        if label in self.labels:
            return 0
        output = self.model.get_ref("output_layer")
        if output.has_dim("nO") and output.get_dim("nO") is not None:
            raise ValueError(
                f"[{self.name}] cannot add label {label!r}: the model is already sized "
                f"for {len(self.labels)} labels. Add labels before initialize()."
            )
        self.validate_label(label)
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    def validate_label(self, label: str) -> None:
        """Raise ValueError if ``label`` cannot be written by this component."""

    # --- prediction -------------------------------------------------------------
    def predict(self, docs: Iterable[Doc]) -> Predictions:
        """Viterbi label ids per doc and the posterior marginal of each."""
        scores = self.scores(docs)
        if scores is None:
            return [], []
        return self.decode(scores)

    def decode(self, scores: CRFScores) -> Predictions:
        """Label ids per doc and a confidence for each (here: Viterbi and the posterior
        marginals); a component with another chain layer decodes its own way."""
        return crf_decode(self.model.ops, scores)

    def scores(self, docs: Iterable[Doc]) -> Optional[CRFScores]:
        """The CRF's scores (emissions and potentials) for ``docs``; None for no docs."""
        docs = list(docs)
        if not self.labels:
            raise ValueError(f"[{self.name}] has no labels: call initialize() first")
        return self.model.predict(docs) if docs else None

    # --- training ---------------------------------------------------------------
    def gold_labels(self, example: Example) -> Sequence[Optional[str]]:
        """One label string per predicted token; None or "" where unknown."""
        raise NotImplementedError

    def allowed_labels(self, example: Example) -> numpy.ndarray:
        """(n_tokens, n_labels) bool: the labels consistent with the gold annotation.

        Missing labels allow every label (the loss marginalizes over them); a
        negative label (``neg_prefix`` + label) allows all but that one.
        """
        index = self._label_index()
        gold = self.gold_labels(example)
        ids = numpy.fromiter(
            (index.get(label, -2) if label else -1 for label in gold), dtype="int64", count=len(gold)
        )
        allowed = allowed_from_gold(numpy, ids, len(index))
        for i in numpy.nonzero(ids == -2)[0].tolist():
            label, neg = gold[i], self.cfg["neg_prefix"]
            if neg and label.startswith(neg) and label[len(neg):] in index:
                allowed[i] = True
                allowed[i, index[label[len(neg):]]] = False
            else:
                raise ValueError(
                    f"[{self.name}] gold label {label!r} is not among the component's "
                    f"{len(index)} labels; pass every training label to initialize() "
                    f"(labels=...) or mark the token as missing"
                )
        return allowed

    def get_loss(self, examples: Iterable[Example], scores: CRFScores) -> Tuple[float, CRFGradient]:
        """Negative log-likelihood of the gold labels under ``chain_loss``, summed."""
        examples = list(examples)
        validate_examples(examples, f"{type(self).__name__}.get_loss")
        allowed = [self.allowed_labels(eg) for eg in examples]
        loss, d_scores = self.chain_loss(self.model.ops, scores, allowed)
        if not math.isfinite(loss):
            raise ValueError(
                f"[{self.name}] the loss is {loss}: the gold labels of a batch are "
                f"impossible under the transition constraints, or scores diverged"
            )
        return loss, d_scores

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Iterable[str]] = None,
    ) -> None:
        """Collect labels (from ``labels`` or the examples) and size the model."""
        validate_get_examples(get_examples, f"{type(self).__name__}.initialize")
        if labels is None:
            labels = self.labels_from_examples(get_examples)
        for label in labels:
            self.add_label(label)
        if not self.labels:
            raise ValueError(
                f"[{self.name}] found no labels in the training examples and none were given"
            )
        n = len(self.output_labels)
        for ref in ("output_layer", self.chain_ref):
            layer = self.model.get_ref(ref)
            if layer.has_dim("nO") and layer.get_dim("nO") not in (None, n):
                raise ValueError(
                    f"[{self.name}] model {ref} has nO={layer.get_dim('nO')} but there "
                    f"are {n} labels"
                )
            layer.set_dim("nO", n)
        self._sync_transition_mask()
        doc_sample = [eg.predicted for eg in islice(get_examples(), 10)]
        if not doc_sample:
            raise ValueError(f"[{self.name}] initialize() got no examples")
        self.model.initialize(X=doc_sample)

    def labels_from_examples(self, get_examples: Callable[[], Iterable[Example]]) -> List[str]:
        """The labels of the gold annotation (negative labels excluded), sorted."""
        neg = self.cfg["neg_prefix"]
        found = {label for eg in get_examples() for label in self.gold_labels(eg) if label}
        return sorted(label for label in found if not (neg and label.startswith(neg)))

    def _label_index(self) -> Dict[str, int]:
        labels = self.output_labels
        if self._index_for != labels:
            self._index_for = list(labels)
            self._index = {label: i for i, label in enumerate(labels)}
        return self._index

    # --- loading ----------------------------------------------------------------
    def from_disk(self, path, *, exclude=tuple()):
        try:
            super().from_disk(path, exclude=exclude)
        except (ValueError, KeyError, TypeError, OSError) as err:
            raise ValueError(
                f"[{self.name}] could not load the component from {path}: the directory "
                f"is missing files or they are corrupted or truncated ({type(err).__name__}: "
                f"{err})"
            ) from err
        self._sync_transition_mask()
        return self

    def from_bytes(self, bytes_data, *, exclude=tuple()):
        try:
            super().from_bytes(bytes_data, exclude=exclude)
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"[{self.name}] could not load the component from bytes: the data is "
                f"corrupted or truncated ({type(err).__name__}: {err})"
            ) from err
        self._sync_transition_mask()
        return self
