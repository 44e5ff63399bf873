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
import srsly
from spacy import util
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model
from thinc.types import Floats1d, Ints1d

from ..calibration import check_temperature, tempered
from ..crf import TransitionMask, allowed_from_gold, clamp_emissions, long_rows
from ..layers.crf import CRFGradient, CRFScores, crf_decode, crf_loss, crf_viterbi
from .saved import HEADER, LoadError, check_header, check_weights, make_header, parse_header

Predictions = Tuple[List[Ints1d], List[Optional[Floats1d]]]
# batches whose docs ``CRFPipe.pipe`` sorts by length before predicting them
SORT_WINDOW = 4

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
    # the factory name, saved with the weights: loading refuses another type's
    component_type = "crf_pipe"

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str,
        *,
        scorer: Optional[Callable],
        cfg: Dict,
        confidences: bool = True,
    ) -> None:
        if not isinstance(confidences, bool):
            raise ValueError(f"[{name}] confidences must be true or false, got {confidences!r}")
        self.vocab = vocab
        # a setting of the pipeline's config, not saved state: a loaded pipeline
        # follows the config it is loaded with
        self.confidences = confidences
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
        """Add a label; returns 0 if it was present, else 1.

        After initialize() the output and chain layers grow to the new label: its
        scores start at zero, the learned ones are kept, and it is not predicted until
        an update has seen it in the gold annotation (as spaCy's parser treats unseen
        classes), so the old labels' predictions and confidences are unchanged. Train
        on with a fresh optimizer (``nlp.create_optimizer()``): the shapes changed.
        """
        if not isinstance(label, str) or not label:
            raise ValueError(f"[{self.name}] labels must be non-empty strings, got {label!r}")
        if label in self.labels:
            return 0
        self.validate_label(label)
        initialized = self.model.get_ref(self.chain_ref).has_param("transitions")
        old_labels = self.output_labels
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        if initialized:
            self._grow_model(old_labels)
            self.cfg["unseen_labels"] = [*self.cfg.get("unseen_labels", []), label]
        return 1

    def _grow_model(self, old_labels: List[str]) -> None:
        """Resize the output layer (its first axis) and the chain layer (every axis)
        from ``old_labels`` to ``output_labels``, keeping the learned weights of the
        old labels; the new ones start at zero."""
        new_labels = self.output_labels
        old = numpy.asarray([new_labels.index(label) for label in old_labels])
        ops = self.model.ops
        for ref, every_axis in (("output_layer", False), (self.chain_ref, True)):
            layer = self.model.get_ref(ref)
            grown = {}
            for name in layer.param_names:
                if layer.has_param(name):
                    param = ops.to_numpy(layer.get_param(name))
                    n_grown = param.ndim if every_axis else 1
                    shape = (len(new_labels),) * n_grown + param.shape[n_grown:]
                    grown[name] = numpy.zeros(shape, dtype=param.dtype)
                    grown[name][numpy.ix_(*[old] * n_grown)] = param
                    layer.set_param(name, None)  # thinc resizes only unallocated layers
            layer.set_dim("nO", len(new_labels), force=True)
            for name, param in grown.items():
                layer.set_param(name, ops.asarray(param))
                if layer.has_grad(name):
                    layer.set_grad(name, ops.alloc(param.shape, dtype=param.dtype))
        self._sync_transition_mask()

    def output_ids_of(self, label: str) -> List[int]:
        """The output labels (ids) that stand for the component label ``label``."""
        return [self._label_index()[label]]

    def _unseen_output_ids(self) -> List[int]:
        return [i for label in self.cfg.get("unseen_labels", []) for i in self.output_ids_of(label)]

    def validate_label(self, label: str) -> None:
        """Raise ValueError if ``label`` cannot be written by this component."""

    # --- prediction -------------------------------------------------------------
    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterable[Doc]:
        """``TrainablePipe.pipe``, except for which docs are predicted together: the
        docs of ``SORT_WINDOW`` batches at a time are sorted by length and cut into
        batches of ``batch_size`` (the recursions step through the longest doc of a
        batch, so similar lengths waste fewer steps), and each doc longer than
        ``long_rows.LONG_ROW`` tokens is predicted in a batch of its own (memory then
        stays proportional to the tokens). Docs come out in their order."""
        for window in util.minibatch(stream, size=batch_size * SORT_WINDOW):
            if len(window) <= batch_size and all(len(doc) <= long_rows.LONG_ROW for doc in window):
                yield from super().pipe(window, batch_size=batch_size)
                continue
            by_length = sorted(window, key=len)
            short = [doc for doc in by_length if len(doc) <= long_rows.LONG_ROW]
            groups = list(util.minibatch(short, size=batch_size))
            groups += [[doc] for doc in by_length[len(short):]]
            for group in groups:
                for _ in super().pipe(group, batch_size=len(group)):  # annotates in place
                    pass
            yield from window

    def predict(self, docs: Iterable[Doc]) -> Predictions:
        """Viterbi label ids per doc and the posterior marginal of each (None per doc
        with ``confidences`` off), given the labels already fixed on the docs
        (``fixed_labels``)."""
        docs = list(docs)
        scores = self.scores(docs)
        if scores is None:
            return [], []
        return self.decode(self.clamped(scores, docs), confidences=self.confidences)

    def fixed_labels(self, doc: Doc) -> Optional[numpy.ndarray]:
        """(n_tokens, n_output_labels) bool: the labels each token may take given the
        annotation already on ``doc`` that this component keeps; None if nothing is
        fixed. Decoding and confidences are then conditioned on it (clamping, as for
        partially annotated training data)."""
        return None

    def clamped(self, scores: CRFScores, docs: Sequence[Doc]) -> CRFScores:
        """``scores`` with the emissions of the labels that ``fixed_labels`` excludes
        set to -inf, so that Viterbi, the marginals and span probabilities are those
        of the CRF given the fixed labels."""
        allowed = [self.fixed_labels(doc) for doc in docs]
        unseen = self._unseen_output_ids()
        if not unseen and all(a is None for a in allowed):
            return scores
        xp = self.model.ops.xp
        mask = xp.ones(scores.emissions.shape, dtype=bool)
        for i, a in enumerate(allowed):
            if a is not None:
                mask[i, : len(a)] = xp.asarray(a, dtype=bool)
        if unseen:  # labels added after training are off, unless fixed on a token
            mask[:, :, unseen] &= mask.sum(axis=2, keepdims=True) == 1
        emissions = clamp_emissions(xp, scores.emissions, mask)
        return CRFScores(emissions, scores.lengths, scores.potentials)

    def decode(self, scores: CRFScores, confidences: bool = True) -> Predictions:
        """Label ids per doc and a confidence for each (here: Viterbi and the posterior
        marginals; without ``confidences``, Viterbi alone and None per doc); a
        component with another chain layer decodes its own way."""
        if not confidences:
            return crf_viterbi(self.model.ops, scores), [None] * int(scores.lengths.shape[0])
        return crf_decode(self.model.ops, scores)

    def scores(self, docs: Iterable[Doc], temperature: Optional[float] = None) -> Optional[CRFScores]:
        """The CRF's scores (emissions and potentials) for ``docs``, divided by
        ``temperature`` (by default the component's); None for no docs."""
        docs = list(docs)
        if not self.labels:
            raise ValueError(f"[{self.name}] has no labels: call initialize() first")
        if not docs:
            return None
        return tempered(self.model.predict(docs), self.temperature if temperature is None else temperature)

    def confidence_pairs(self, examples: Sequence[Example], scores: CRFScores) -> Tuple[numpy.ndarray, numpy.ndarray]:
        """The confidence of each decoded label of the predicted docs of ``examples``
        under ``scores`` (their scores, say at another temperature), and whether it is
        the gold label: float (N,) and bool (N,), over tokens with a known gold label.
        What calibration is measured (and the temperature fitted) on."""
        index = self._label_index()
        neg = self.cfg["neg_prefix"]
        paths, confidences = self.decode(self.clamped(scores, [eg.predicted for eg in examples]))
        conf_out, hit_out = [], []
        for eg, path, conf in zip(examples, paths, confidences):
            gold = numpy.asarray([
                -2 if not label or (neg and label.startswith(neg)) else index.get(label, -1)
                for label in self.gold_labels(eg)
            ])
            known = gold != -2  # an unknown label (-1) counts as an error
            conf_out.append(self.model.ops.to_numpy(conf)[known])
            hit_out.append(self.model.ops.to_numpy(path)[known] == gold[known])
        return numpy.concatenate(conf_out), numpy.concatenate(hit_out)

    @property
    def temperature(self) -> float:
        """Divides every CRF score at prediction (calibration; 1.0: none). Viterbi
        paths do not depend on it, confidences do. Saved in ``cfg``."""
        return float(self.cfg.get("temperature", 1.0))

    def check_cfg(self) -> None:
        """ValueError unless the fitted settings in ``cfg`` (a loaded one) are valid."""
        check_temperature(self.cfg.get("temperature", 1.0))

    def set_temperature(self, value: float) -> None:
        """Set the temperature (see ``spacy_seqlab.calibration.fit_component_temperature``)."""
        self.cfg["temperature"] = check_temperature(value)

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
        self._mark_seen(allowed)
        if not math.isfinite(loss):
            raise ValueError(
                f"[{self.name}] the loss is {loss}: the gold labels of a batch are "
                f"impossible under the transition constraints, or scores diverged"
            )
        return loss, d_scores

    def _mark_seen(self, allowed: List[numpy.ndarray]) -> None:
        """Labels added after training become predictable once gold has them."""
        unseen = self.cfg.get("unseen_labels")
        if not unseen or not allowed:
            return
        gold = numpy.concatenate([a[a.sum(axis=1) == 1] for a in allowed]).any(axis=0)
        self.cfg["unseen_labels"] = [
            label for label in unseen if not gold[self.output_ids_of(label)].any()
        ]

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

    # --- saving and loading ---------------------------------------------------------
    def to_bytes(self, *, exclude=tuple()) -> bytes:
        """cfg, vocab and the weights, with the header that ``from_bytes`` checks."""
        self._validate_serialization_attrs()
        weights = self.model.to_bytes()
        serialize = {
            HEADER: lambda: srsly.json_dumps(make_header(self.component_type, weights)),
            "cfg": lambda: srsly.json_dumps(self.cfg),
            "vocab": lambda: self.vocab.to_bytes(exclude=exclude),
            "model": lambda: weights,
        }
        return util.to_bytes(serialize, exclude)

    def to_disk(self, path, *, exclude=tuple()) -> None:
        """Files ``seqlab`` (the header), ``cfg``, ``model`` (and ``vocab``) in ``path``."""
        self._validate_serialization_attrs()
        weights = self.model.to_bytes()
        serialize = {
            HEADER: lambda p: srsly.write_json(p, make_header(self.component_type, weights)),
            "cfg": lambda p: srsly.write_json(p, self.cfg),
            "vocab": lambda p: self.vocab.to_disk(p, exclude=exclude),
            "model": lambda p: p.write_bytes(weights),
        }
        util.to_disk(path, serialize, exclude)

    def from_disk(self, path, *, exclude=tuple()) -> "CRFPipe":
        path = util.ensure_path(path)
        return self._load(
            lambda key: (path / key).read_bytes(),
            lambda: self.vocab.from_disk(path / "vocab", exclude=exclude),
            f"the component from {path}",
            exclude,
        )

    def from_bytes(self, bytes_data, *, exclude=tuple()) -> "CRFPipe":
        try:
            data = dict(srsly.msgpack_loads(bytes_data))
        except (ValueError, TypeError) as err:
            raise LoadError(
                f"[{self.name}] could not load the component from bytes: they are not a "
                f"saved component ({type(err).__name__}: {err})"
            ) from err
        return self._load(
            data.__getitem__,
            lambda: self.vocab.from_bytes(data["vocab"], exclude=exclude),
            "the component from bytes",
            exclude,
        )

    def _load(
        self, read: Callable[[str], bytes], load_vocab: Callable[[], object], where: str, exclude
    ) -> "CRFPipe":
        """Load through ``read(key) -> bytes``: the header first, refusing data that
        another component type saved, then cfg, vocab and the weights, refusing
        weights whose checksum or label count does not match."""
        self._validate_serialization_attrs()
        try:
            header = parse_header(read(HEADER))
        except (KeyError, OSError):
            header = None
        header = check_header(self.name, self.component_type, header, where)
        try:
            if "cfg" not in exclude:
                self.cfg.update(srsly.json_loads(read("cfg")))
                self.check_cfg()
            if "vocab" not in exclude:
                load_vocab()
            if "model" not in exclude:
                weights = read("model")
                check_weights(self.name, header, weights, where)
                self.model.from_bytes(weights)
                self._check_label_count(where)
        except LoadError:
            raise
        except (ValueError, KeyError, TypeError, OSError, AttributeError) as err:
            raise LoadError(
                f"[{self.name}] could not load {where}: files or fields are missing, or "
                f"corrupted or truncated ({type(err).__name__}: {err})"
            ) from err
        self._sync_transition_mask()
        return self

    def _check_label_count(self, where: str) -> None:
        """LoadError unless the loaded output and chain layers are sized for the
        loaded labels."""
        n = len(self.output_labels)
        for ref in ("output_layer", self.chain_ref):
            layer = self.model.get_ref(ref)
            if layer.has_dim("nO") and layer.get_dim("nO") != n:
                raise LoadError(
                    f"[{self.name}] could not load {where}: its cfg has {len(self.labels)} "
                    f"labels ({n} output labels), but the weights of {ref!r} are sized "
                    f"for {layer.get_dim('nO')}"
                )
