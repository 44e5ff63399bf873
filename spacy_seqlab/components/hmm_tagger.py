"""``hmm_tagger``: the lecture's HMM baseline (TnT, Brants 2000) as a spaCy component.

It is a plain ``Pipe``, not a ``TrainablePipe``: the HMM is estimated once, by counting,
in ``initialize``, and has no gradients, optimizer state or thinc model for
TrainablePipe's machinery (``finish_update``, model serialization, rehearsal, listeners)
to act on. It still has an ``update``, a no-op that reports a loss of 0.0, so that
``spacy train`` runs it like any other component: the training loop calls ``update`` on
every component that has one and ``finish_update`` only on trainable ones, so a few
steps of training just evaluate the counted model.
"""
from dataclasses import asdict, fields
from itertools import pairwise
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
import srsly
from spacy.language import Language
from spacy.parts_of_speech import IDS as UPOS_IDS
from spacy.pipeline import Pipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import ensure_path
from spacy.vocab import Vocab

from ..hmm import HMMParams, HMMSettings, fit_hmm
from ..scorers import token_attr_score
from .crf_tagger import ATTRS
from .pipe_meta import announce_meta, token_attr_meta
from .saved import HEADER, LoadError, check_header, check_weights, make_header, parse_header

SETTINGS = [field.name for field in fields(HMMSettings)]


@Language.factory(
    "hmm_tagger",
    assigns=token_attr_meta("tag")["assigns"],
    default_config={
        "attr": "tag",
        **asdict(HMMSettings()),
        "overwrite": False,
        "scorer": {"@scorers": "spacy_seqlab.token_attr_scorer.v1"},
    },
    default_score_weights=token_attr_meta("tag")["score_weights"],
)
def make_hmm_tagger(
    nlp: Language,
    name: str,
    attr: str,
    order: int,
    smoothing: str,
    k: float,
    capitalization: bool,
    suffix_length: int,
    rare_threshold: int,
    theta: Optional[float],
    lexicon_smoothing: float,
    overwrite: bool,
    scorer: Optional[Callable],
) -> "HMMTagger":
    """A TnT-style HMM tagger writing ``token.tag_`` (attr="tag") or ``token.pos_``
    (attr="pos"); the settings are those of ``spacy_seqlab.hmm.HMMSettings``."""
    settings = dict(
        order=order, smoothing=smoothing, k=k, capitalization=capitalization, suffix_length=suffix_length,
        rare_threshold=rare_threshold, theta=theta, lexicon_smoothing=lexicon_smoothing,
    )
    tagger = HMMTagger(nlp.vocab, name, attr=attr, overwrite=overwrite, scorer=scorer, **settings)
    announce_meta(nlp, name, "hmm_tagger", **token_attr_meta(attr))
    return tagger


class HMMTagger(Pipe):
    """Tags each sentence (or the whole doc, without sentence boundaries) with the
    Viterbi labels of an HMM counted from the training data."""

    component_type = "hmm_tagger"

    def __init__(
        self,
        vocab: Vocab,
        name: str = "hmm_tagger",
        *,
        attr: str = "tag",
        overwrite: bool = False,
        scorer: Optional[Callable] = token_attr_score,
        **settings: Any,
    ) -> None:
        self.vocab = vocab
        self.name = name
        self.scorer = scorer
        self.cfg = self._validated_cfg({"attr": attr, "overwrite": overwrite, **asdict(HMMSettings()), **settings})
        self.params: Optional[HMMParams] = None

    def _validated_cfg(self, cfg: Dict[str, Any]) -> Dict[str, Any]:
        """``cfg`` if its attr and HMM settings are valid, else a ValueError naming the component."""
        if cfg.get("attr") not in ATTRS:
            raise ValueError(f"[{self.name}] attr must be one of {sorted(ATTRS)}, got {cfg.get('attr')!r}")
        expected = {"attr", "overwrite", *SETTINGS}
        if set(cfg) != expected:
            raise ValueError(
                f"[{self.name}] unknown settings {sorted(set(cfg) - expected)}, missing "
                f"settings {sorted(expected - set(cfg))}"
            )
        try:
            HMMSettings(**{name: cfg[name] for name in SETTINGS})
        except ValueError as err:
            raise ValueError(f"[{self.name}] {err}") from None
        return cfg

    @property
    def attr(self) -> str:
        return self.cfg["attr"]

    @property
    def settings(self) -> HMMSettings:
        return HMMSettings(**{name: self.cfg[name] for name in SETTINGS})

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.params.labels) if self.params is not None else ()

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    def validate_label(self, label: str) -> None:
        """Raise ValueError if ``label`` cannot be written to ``token.{attr}_``."""
        if not isinstance(label, str) or not label:
            raise ValueError(f"[{self.name}] labels must be non-empty strings, got {label!r}")
        if self.attr == "pos" and label not in UPOS_IDS:
            raise ValueError(
                f"[{self.name}] {label!r} is not a Universal POS tag, so it cannot be "
                f"written to token.pos_; use attr='tag' for other tag sets"
            )

    # --- prediction -------------------------------------------------------------
    def __call__(self, doc: Doc) -> Doc:
        self.set_annotations([doc], self.predict([doc]))
        return doc

    def predict(self, docs: Iterable[Doc]) -> List[numpy.ndarray]:
        """The Viterbi label ids of each doc, (len(doc),), decoded sentence by sentence."""
        if self.params is None:
            raise ValueError(
                f"[{self.name}] is not initialized: call nlp.initialize() (or train it) "
                f"before tagging"
            )
        return [self._decode(doc) for doc in docs]

    def _decode(self, doc: Doc) -> numpy.ndarray:
        words = [token.text for token in doc]
        bounds = _sentence_bounds(doc) if doc.has_annotation("SENT_START") else [0, len(doc)]
        paths = [self.params.decode(words[start:end]) for start, end in pairwise(bounds)]
        return numpy.concatenate([numpy.empty(0, dtype="int64"), *paths])

    def set_annotations(self, docs: Iterable[Doc], label_ids: Sequence[numpy.ndarray]) -> None:
        """Write the labels to ``token.{attr}``, keeping existing values unless ``overwrite``."""
        values = self._label_values()
        attr_id = ATTRS[self.attr]
        for doc, ids in zip(docs, label_ids):
            if not len(doc):
                continue
            new = values[ids]
            if not self.cfg["overwrite"]:
                existing = doc.to_array(attr_id).astype("uint64")
                new = numpy.where(existing != 0, existing, new)
            doc.from_array([attr_id], new[:, None])

    def _label_values(self) -> numpy.ndarray:
        """The value each label id is stored as in the doc array of ``attr``."""
        if self.attr == "pos":
            values = [UPOS_IDS[label] for label in self.labels]
        else:
            values = [self.vocab.strings.add(label) for label in self.labels]
        return numpy.asarray(values, dtype="uint64")

    # --- training ---------------------------------------------------------------
    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Iterable[str]] = None,
    ) -> None:
        """Count the HMM from the gold sentences of the examples. ``labels`` fixes the
        label set (gold labels outside it are an error); by default it is every gold
        label seen. Tokens without a gold label are skipped."""
        validate_get_examples(get_examples, f"{type(self).__name__}.initialize")
        sentences = [sent for eg in get_examples() for sent in self._gold_sentences(eg)]
        found = sorted({label for _, gold in sentences for label in gold if label})
        labels = found if labels is None else list(labels)
        if not labels:
            raise ValueError(f"[{self.name}] found no labels in the training examples and none were given")
        for label in labels:
            self.validate_label(label)
        index = {label: i for i, label in enumerate(labels)}
        unknown = [label for label in found if label not in index]
        if unknown:
            raise ValueError(
                f"[{self.name}] gold labels {unknown[:5]} are not among the {len(index)} labels "
                f"given to initialize()"
            )
        ids = [(words, [index[label] if label else -1 for label in gold]) for words, gold in sentences]
        try:
            self.params = fit_hmm(ids, labels, self.settings)
        except ValueError as err:
            raise ValueError(f"[{self.name}] {err}") from None

    def _gold_sentences(self, example: Example) -> List[Tuple[List[str], List[Optional[str]]]]:
        """(words, gold labels) of each gold sentence, on the predicted tokens."""
        words = [token.text for token in example.predicted]
        gold = example.get_aligned(self.attr.upper(), as_string=True)
        starts = [i for i, start in enumerate(example.get_aligned_sent_starts()) if start]
        bounds = sorted({0, *starts, len(words)})
        return [(words[a:b], gold[a:b]) for a, b in pairwise(bounds)]

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Any] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """No-op: the counts are fixed by ``initialize``. Reports a loss of 0.0."""
        validate_examples(examples, f"{type(self).__name__}.update")
        losses = {} if losses is None else losses
        losses.setdefault(self.name, 0.0)
        return losses

    # --- serialization ------------------------------------------------------------
    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        weights = self._weights()
        header = make_header(self.component_type, weights)
        return srsly.msgpack_dumps({HEADER: srsly.json_dumps(header), "cfg": self.cfg, "model": weights})

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "HMMTagger":
        where = "the component from bytes"
        try:
            data = srsly.msgpack_loads(bytes_data)
            header = parse_header(data.get(HEADER)) if isinstance(data, dict) else None
        except (ValueError, TypeError):
            header = None
        header = check_header(self.name, self.component_type, header, where)
        try:
            self._load(header, data["cfg"], data["model"], where)
        except LoadError:
            raise
        except (ValueError, KeyError, TypeError) as err:
            raise LoadError(
                f"[{self.name}] could not load {where}: the data is corrupted or truncated "
                f"({type(err).__name__}: {err})"
            ) from err
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        path = ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        weights = self._weights()
        srsly.write_json(path / HEADER, make_header(self.component_type, weights))
        srsly.write_json(path / "cfg", self.cfg)
        (path / "model").write_bytes(weights)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "HMMTagger":
        path = ensure_path(path)
        where = f"the component from {path}"
        try:
            header = srsly.read_json(path / HEADER)
        except (ValueError, OSError):
            header = None
        header = check_header(self.name, self.component_type, header, where)
        try:
            self._load(header, srsly.read_json(path / "cfg"), (path / "model").read_bytes(), where)
        except LoadError:
            raise
        except (ValueError, KeyError, TypeError, OSError) as err:
            raise LoadError(
                f"[{self.name}] could not load {where}: files are missing or corrupted or "
                f"truncated ({type(err).__name__}: {err})"
            ) from err
        return self

    def _weights(self) -> bytes:
        return srsly.msgpack_dumps(self.params.to_dict() if self.params is not None else None)

    def _load(self, header: Dict[str, Any], cfg: Any, weights: bytes, where: str) -> None:
        check_weights(self.name, header, weights, where)
        if not isinstance(cfg, dict):
            raise ValueError(f"the cfg is a {type(cfg).__name__}, not a mapping")
        cfg = self._validated_cfg(cfg)
        model = srsly.msgpack_loads(weights)
        params = HMMParams.from_dict(model) if model is not None else None
        self.cfg, self.params = cfg, params


def _sentence_bounds(doc: Doc) -> List[int]:
    """0, the start of every sentence after the first, and len(doc)."""
    return [0, *(sent.start for sent in doc.sents if sent.start), len(doc)]
