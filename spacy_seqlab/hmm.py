"""A TnT-style hidden Markov model tagger (Brants 2000) in numpy.

P(x, y) = prod_i P(x_i | y_i) P(y_i | y_{i-order} .. y_{i-1}) for order 1 (bigram) or 2
(trigram) models. The hidden states are the labels or, with ``capitalization`` (TnT's
capitalization flags), (label, is the word capitalized) pairs: state = label + n_labels *
case_class(word), so that the context sees whether the neighbours are capitalized.
Every sentence is padded with a boundary state (the last index): ``order`` of them
before it and one after, so start and end transitions are ordinary transitions. All
probabilities are relative frequencies of counts:

- transitions: deleted interpolation of the unigram .. (order+1)-gram estimates (TnT), or
  add-k on the (order+1)-gram counts;
- known words: P(word | state) = f(word, state) / f(state), unsmoothed as in TnT (the
  lexicon restricts a known word to the labels it was seen with) unless
  ``lexicon_smoothing`` adds the suffix model's guesses to the counts of rare words;
- unknown words: P(label | suffix) from the tokens of rare words, smoothed by successive
  abstraction over ever shorter suffixes, separately for capitalized and other words,
  and turned into an emission score by Bayes' rule.
"""
import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from numpy.lib.stride_tricks import sliding_window_view

SMOOTHING = ("interpolation", "add_k")
N_CASE_CLASSES = 2

# (words, label ids): one sentence, label id -1 where the gold label is missing
Sentence = Tuple[Sequence[str], Sequence[int]]


def case_class(word: str) -> int:
    """1 for a capitalized word, else 0. TnT keeps their suffix statistics apart: an
    unknown capitalized word is most likely a proper noun whatever its ending."""
    return int(word[:1].isupper())


@dataclass(frozen=True)
class HMMSettings:
    """How an HMM is estimated.

    order: 1 (bigram) or 2 (trigram) transitions. smoothing: "interpolation" (deleted
    interpolation, TnT) or "add_k" (``k`` added to every transition count).
    capitalization: states are (label, capitalized) pairs, as TnT's capitalization flags.
    suffix_length: longest suffix of the unknown-word model. rare_threshold: the suffix
    model is counted on the tokens of words seen at most this often. theta: weight of
    the shorter suffix in successive abstraction; None for TnT's choice, the standard
    deviation of the label unigram probabilities. lexicon_smoothing: pseudo-counts, spread
    as the suffix model guesses, added to each rare known word, so that it is not
    restricted to the labels it was seen with (0: TnT's unsmoothed lexicon).
    """

    order: int = 2
    smoothing: str = "interpolation"
    k: float = 0.1
    capitalization: bool = True
    suffix_length: int = 10
    rare_threshold: int = 10
    theta: Optional[float] = None
    lexicon_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not _is_int(self.order) or self.order not in (1, 2):
            raise ValueError(f"order must be 1 (bigram) or 2 (trigram), got {self.order!r}")
        if self.smoothing not in SMOOTHING:
            raise ValueError(f"smoothing must be one of {SMOOTHING}, got {self.smoothing!r}")
        if not _is_positive(self.k):
            raise ValueError(f"k must be a positive number, got {self.k!r}")
        if not isinstance(self.capitalization, bool):
            raise ValueError(f"capitalization must be true or false, got {self.capitalization!r}")
        for name in ("suffix_length", "rare_threshold"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if not _is_number(self.lexicon_smoothing) or self.lexicon_smoothing < 0:
            raise ValueError(f"lexicon_smoothing must be a number >= 0, got {self.lexicon_smoothing!r}")
        if self.theta is not None and not _is_positive(self.theta):
            raise ValueError(f"theta must be a positive number or None, got {self.theta!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_positive(value: Any) -> bool:
    return _is_number(value) and value > 0


@dataclass
class HMMParams:
    """An estimated HMM: log probabilities and the lexicons that index them.

    log_trans: (S+1,) * (order+1), log P(s_i | s_{i-order} .. s_{i-1}) over the S =
    n_labels * n_blocks states and the boundary (index S); n_blocks is 2 with
    capitalization, else 1. words: word -> row of log_emit, (n_words, n_labels)
    log P(word | state of the word's block). suffixes[c]: suffix -> row of log_suffix[c],
    (n_suffixes, n_labels) log P(label | suffix) - log P(state), the emission score of an
    unknown word of case class c (log P(suffix | state) up to a per-word constant).
    """

    labels: List[str]
    log_trans: numpy.ndarray
    words: Dict[str, int]
    log_emit: numpy.ndarray
    suffix_length: int
    suffixes: List[Dict[str, int]]
    log_suffix: List[numpy.ndarray]

    @property
    def order(self) -> int:
        return self.log_trans.ndim - 1

    @property
    def n_blocks(self) -> int:
        return (self.log_trans.shape[0] - 1) // max(len(self.labels), 1)

    def decode(self, words: Sequence[str]) -> numpy.ndarray:
        """The most probable label ids of one sentence, (len(words),)."""
        return viterbi(self.log_trans, self.emissions(words)) % len(self.labels)

    def emissions(self, words: Sequence[str]) -> numpy.ndarray:
        """(len(words), S) log emission scores: -inf outside the block of each word's
        case, in it the lexicon for known words, else the suffix model."""
        n = len(self.labels)
        scores = numpy.full((len(words), n * self.n_blocks), -numpy.inf)
        blocks = numpy.fromiter((self.block(w) for w in words), "int64", len(words))
        columns = blocks[:, None] * n + numpy.arange(n)
        rows = numpy.fromiter((self.words.get(w, -1) for w in words), "int64", len(words))
        known = rows >= 0
        scores[numpy.flatnonzero(known)[:, None], columns[known]] = self.log_emit[rows[known]]
        for i in numpy.flatnonzero(~known).tolist():
            scores[i, columns[i]] = self.unknown_scores(words[i])
        return scores

    def block(self, word: str) -> int:
        """Which block of states a word's labels are in."""
        return case_class(word) if self.n_blocks > 1 else 0

    def unknown_scores(self, word: str) -> numpy.ndarray:
        """(n_labels,) emission scores of an unknown word, from its longest suffix seen
        in training."""
        case = case_class(word)
        return self.log_suffix[case][suffix_row(self.suffixes[case], word, self.suffix_length)]

    def to_dict(self) -> Dict[str, Any]:
        """Plain lists and numeric arrays, for srsly's msgpack (no pickle)."""
        return {
            "labels": list(self.labels),
            "log_trans": self.log_trans,
            "words": list(self.words),
            "log_emit": self.log_emit,
            "suffix_length": self.suffix_length,
            "suffixes": [list(table) for table in self.suffixes],
            "log_suffix": list(self.log_suffix),
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "HMMParams":
        """Rebuild from ``to_dict()``; ValueError if a field is missing or inconsistent."""
        try:
            params = cls(
                labels=[str(label) for label in data["labels"]],
                log_trans=_float_array(data["log_trans"], "log_trans"),
                words={str(w): i for i, w in enumerate(data["words"])},
                log_emit=_float_array(data["log_emit"], "log_emit"),
                suffix_length=int(data["suffix_length"]),
                suffixes=[{str(s): i for i, s in enumerate(table)} for table in data["suffixes"]],
                log_suffix=[_float_array(a, "log_suffix") for a in data["log_suffix"]],
            )
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"HMM data is missing a field or has a malformed one ({err!r})") from err
        params.validate()
        return params

    def validate(self) -> None:
        """ValueError unless the arrays have the shapes the lexicons and labels imply."""
        n, order = len(self.labels), self.order
        if not n or order not in (1, 2) or self.n_blocks not in (1, N_CASE_CLASSES):
            raise ValueError(f"HMM has {n} labels, order {order} and {self.n_blocks} state blocks")
        tables = (self.suffixes, self.log_suffix)
        if any(len(t) != N_CASE_CLASSES for t in tables) or any("" not in t for t in self.suffixes):
            raise ValueError(f"HMM needs {N_CASE_CLASSES} suffix tables, each with the empty suffix")
        expected = {
            "log_trans": (self.log_trans.shape, (n * self.n_blocks + 1,) * (order + 1)),
            "log_emit": (self.log_emit.shape, (len(self.words), n)),
        }
        for c, (table, scores) in enumerate(zip(self.suffixes, self.log_suffix)):
            expected[f"log_suffix[{c}]"] = (scores.shape, (len(table), n))
        for name, (shape, want) in expected.items():
            if shape != want:
                raise ValueError(f"HMM {name} has shape {shape}, expected {want}")
        if self.suffix_length < 0:
            raise ValueError(f"HMM suffix_length is {self.suffix_length}")


def suffix_row(table: Dict[str, int], word: str, max_length: int) -> int:
    """The row of the longest suffix of ``word`` (at most ``max_length`` characters) in
    ``table``, which holds the empty suffix."""
    for length in range(min(max_length, len(word)), 0, -1):
        row = table.get(word[len(word) - length:])
        if row is not None:
            return row
    return table[""]


def _float_array(value: Any, name: str) -> numpy.ndarray:
    if not isinstance(value, numpy.ndarray) or value.dtype.kind != "f":
        raise ValueError(f"HMM {name} is not a float array")
    return value


# --- decoding ---------------------------------------------------------------------
def viterbi(log_trans: numpy.ndarray, emissions: numpy.ndarray) -> numpy.ndarray:
    """The state ids (length,) maximizing the sum of transition and emission scores.

    log_trans: (S+1,) * (order+1) with boundary index S, as in ``HMMParams``;
    emissions: (length, S), -inf where a state is impossible. Each position considers
    only the states with a finite emission score, so a known word costs as many states
    as it has labels. The search state at position i is the tuple of its last
    ``order`` states; the backpointers of a position are an array over those tuples,
    so memory is linear in the length.
    """
    order, boundary = log_trans.ndim - 1, log_trans.shape[0] - 1
    length = len(emissions)
    # candidate states and their emission scores at positions -order .. length (the end)
    cands = [numpy.array([boundary])] * order + [_candidates(row) for row in emissions]
    cands.append(numpy.array([boundary]))
    scores = [numpy.zeros(1)] * order + [row[c] for row, c in zip(emissions, cands[order:])]
    scores.append(numpy.zeros(1))
    delta = numpy.zeros((1,) * order)  # best log score of each search state
    backpointers = []
    for i in range(order, length + order + 1):
        # step[z, a.., b] = delta[z, a..] + log P(b | z, a..) + log P(x_i | b)
        step = delta[..., None] + log_trans[numpy.ix_(*cands[i - order: i + 1])] + scores[i]
        best = step.argmax(axis=0)
        delta = numpy.take_along_axis(step, best[None], axis=0)[0]
        backpointers.append(best.astype(numpy.min_scalar_type(boundary)))
    path = numpy.empty(length + 1, dtype="int64")
    state = numpy.unravel_index(int(delta.argmax()), delta.shape)
    for i in range(length, -1, -1):  # position i; backpointers[i] lead to i - order
        path[i] = cands[i + order][state[-1]]
        state = (int(backpointers[i][state]),) + tuple(state[:-1])
    return path[:length]


def _candidates(row: numpy.ndarray) -> numpy.ndarray:
    finite = numpy.flatnonzero(numpy.isfinite(row))
    return finite if len(finite) else numpy.arange(len(row))


# --- estimation -------------------------------------------------------------------
def fit_hmm(sentences: Iterable[Sentence], labels: Sequence[str], settings: HMMSettings) -> HMMParams:
    """Estimate an HMM from labelled sentences (label ids index ``labels``; -1: missing)."""
    n, n_blocks = len(labels), N_CASE_CLASSES if settings.capitalization else 1
    sentences = [(list(words), numpy.asarray(tags, dtype="int64")) for words, tags in sentences]
    blocks = [_blocks(words, n_blocks) for words, _ in sentences]
    states = [numpy.where(tags >= 0, tags + n * b, -1) for (_, tags), b in zip(sentences, blocks)]
    counts = count_transitions(states, n * n_blocks, settings.order)
    if not counts.sum():
        raise ValueError("no labelled tokens to estimate the HMM from")
    words = [w for ws, tags in sentences for w, t in zip(ws, tags.tolist()) if t >= 0]
    tags = numpy.concatenate([tags[tags >= 0] for _, tags in sentences])
    token_blocks = numpy.concatenate([b[tags >= 0] for (_, tags), b in zip(sentences, blocks)])
    return HMMParams(
        labels=list(labels),
        log_trans=transition_log_probs(counts, settings).astype("float32"),
        suffix_length=settings.suffix_length,
        **emission_model(words, tags, token_blocks, n, n_blocks, settings),
    )


def emission_model(
    words: Sequence[str], tags: numpy.ndarray, blocks: numpy.ndarray, n_labels: int, n_blocks: int,
    settings: HMMSettings,
) -> Dict[str, Any]:
    """The lexicon and the suffix model (the emission fields of ``HMMParams``) from the
    labelled tokens: their words, label ids and state blocks."""
    lexicon, word_ids, emit_counts = count_emissions(words, tags, n_labels)
    state_counts = numpy.bincount(tags + n_labels * blocks, minlength=n_labels * n_blocks)
    state_counts = state_counts.reshape(n_blocks, n_labels)
    label_counts = state_counts.sum(axis=0)
    theta = settings.theta if settings.theta is not None else _label_std(label_counts)
    rare = emit_counts.sum(axis=1) <= settings.rare_threshold
    rare_tokens = rare[word_ids]
    suffixes, suffix_probs = suffix_model(
        [w for w, r in zip(words, rare_tokens.tolist()) if r], tags[rare_tokens], n_labels,
        settings.suffix_length, theta, fallback=label_counts,
    )
    if settings.lexicon_smoothing:
        rare_words = [w for w, r in zip(lexicon, rare.tolist()) if r]
        guesses = _suffix_guesses(rare_words, suffixes, suffix_probs, settings.suffix_length)
        emit_counts[rare] = smooth_counts(emit_counts[rare], guesses, settings.lexicon_smoothing)
    word_blocks = numpy.zeros(len(lexicon), dtype="int64")
    word_blocks[word_ids] = blocks
    prior = state_counts / state_counts.sum()
    return {
        "words": lexicon,
        "log_emit": _log(_divide(emit_counts, state_counts[word_blocks])).astype("float32"),
        "suffixes": suffixes,
        "log_suffix": [_bayes(p, prior[case if n_blocks > 1 else 0]) for case, p in enumerate(suffix_probs)],
    }


def smooth_counts(counts: numpy.ndarray, guesses: numpy.ndarray, weight: float) -> numpy.ndarray:
    """(n_words, n) label counts of words plus ``weight`` pseudo-counts spread as the
    rows of ``guesses`` (label distributions), rescaled to each word's count: the word
    keeps its frequency but is no longer restricted to the labels it was seen with."""
    totals = counts.sum(axis=1, keepdims=True)
    return (counts + weight * guesses) * totals / (totals + weight)


def _suffix_guesses(
    words: Sequence[str], suffixes: List[Dict[str, int]], probs: List[numpy.ndarray], max_length: int
) -> numpy.ndarray:
    """(len(words), n) P(label | longest known suffix) of each word."""
    guesses = numpy.empty((len(words), probs[0].shape[1]))
    for i, word in enumerate(words):
        case = case_class(word)
        guesses[i] = probs[case][suffix_row(suffixes[case], word, max_length)]
    return guesses


def _blocks(words: Sequence[str], n_blocks: int) -> numpy.ndarray:
    """The state block of each word: its case class, or 0 without capitalization."""
    if n_blocks == 1:
        return numpy.zeros(len(words), dtype="int64")
    return numpy.fromiter((case_class(w) for w in words), "int64", len(words))


def count_transitions(state_seqs: Iterable[numpy.ndarray], n_states: int, order: int) -> numpy.ndarray:
    """(S+1,) * (order+1) counts of state (order+1)-grams over the boundary-padded
    sentences; an n-gram touching a missing state (-1) is not counted."""
    size = (n_states + 1,) * (order + 1)
    grams = [numpy.empty((0, order + 1), dtype="int64")]
    for states in state_seqs:
        if len(states):
            padded = numpy.concatenate([numpy.full(order, n_states), states, [n_states]])
            windows = sliding_window_view(padded, order + 1)
            grams.append(windows[(windows >= 0).all(axis=1)])
    flat = numpy.ravel_multi_index(numpy.concatenate(grams).T, size)
    return numpy.bincount(flat, minlength=math.prod(size)).reshape(size).astype("float64")


def count_emissions(
    words: Sequence[str], tags: numpy.ndarray, n_labels: int
) -> Tuple[Dict[str, int], numpy.ndarray, numpy.ndarray]:
    """The lexicon (word -> row), each token's row and the (n_words, n) counts f(word, label)."""
    lexicon: Dict[str, int] = {}
    ids = numpy.fromiter((lexicon.setdefault(w, len(lexicon)) for w in words), "int64", len(words))
    counts = numpy.bincount(ids * n_labels + tags, minlength=len(lexicon) * n_labels)
    return lexicon, ids, counts.reshape(len(lexicon), n_labels).astype("float64")


def ngram_estimates(counts: numpy.ndarray) -> List[numpy.ndarray]:
    """Relative frequencies P^(s | previous j states) for j = 0 .. order, each shaped to
    broadcast against ``counts``; 0 for a context never seen."""
    order = counts.ndim - 1
    estimates = []
    for j in range(order + 1):
        marginal = counts.sum(axis=tuple(range(order - j)))
        estimates.append(_normalize(marginal).reshape((1,) * (order - j) + marginal.shape))
    return estimates


def deleted_interpolation(counts: numpy.ndarray) -> numpy.ndarray:
    """The (order+1,) weights of the unigram .. (order+1)-gram estimates (Brants 2000):
    each seen n-gram votes, with its count, for the order whose estimate is highest once
    that n-gram is taken out of the counts (ties go to the lower order)."""
    order = counts.ndim - 1
    seen = numpy.nonzero(counts)
    ratios = []
    for j in range(order + 1):
        marginal = counts.sum(axis=tuple(range(order - j)))
        gram = seen[order - j:]
        numerator, denominator = marginal[gram] - 1, marginal.sum(axis=-1)[gram[:-1]] - 1
        ratios.append(_divide(numerator, numpy.broadcast_to(denominator, numerator.shape)))
    weights = numpy.bincount(numpy.argmax(ratios, axis=0), weights=counts[seen], minlength=order + 1)
    return weights / weights.sum()


def transition_log_probs(counts: numpy.ndarray, settings: HMMSettings) -> numpy.ndarray:
    """log P(s_i | s_{i-order} .. s_{i-1}), smoothed as ``settings`` say."""
    if settings.smoothing == "add_k":
        return _log(_normalize(counts + settings.k))
    weights = deleted_interpolation(counts)
    return _log(sum(w * p for w, p in zip(weights, ngram_estimates(counts))))


def suffix_model(
    words: Sequence[str],
    tags: numpy.ndarray,
    n_labels: int,
    max_length: int,
    theta: float,
    fallback: numpy.ndarray,
) -> Tuple[List[Dict[str, int]], List[numpy.ndarray]]:
    """P(label | suffix) per case class from the tokens of rare words, by successive
    abstraction (Brants 2000): P(y | s) = (P^(y | s) + theta P(y | s[1:])) / (1 + theta).

    The chain ends in the case class (empty suffix) and then in the label distribution
    of all rare tokens (of the ``fallback`` counts if there are none). Returns, per case
    class, the suffix -> row table and the (n_suffixes, n) probabilities.
    """
    index: Dict[Tuple[int, str], int] = {(c, ""): c for c in range(N_CASE_CLASSES)}
    keys, key_tags = [], []
    for word, tag in zip(words, tags.tolist()):
        case = case_class(word)
        for length in range(min(max_length, len(word)) + 1):
            keys.append(index.setdefault((case, word[len(word) - length:]), len(index)))
            key_tags.append(tag)
    counts = numpy.bincount(
        numpy.asarray(keys, dtype="int64") * n_labels + numpy.asarray(key_tags, dtype="int64"),
        minlength=len(index) * n_labels,
    ).reshape(len(index), n_labels)
    root = _normalize(counts[:N_CASE_CLASSES].sum(axis=0) if len(words) else fallback)
    lengths = numpy.fromiter((len(s) for _, s in index), "int64", len(index))
    parents = numpy.fromiter((index[c, s[1:]] for c, s in index), "int64", len(index))
    estimates, seen = _normalize(counts), counts.sum(axis=1, keepdims=True) > 0
    probs = numpy.empty(counts.shape)
    for length in range(lengths.max() + 1):
        rows = numpy.flatnonzero(lengths == length)
        parent = probs[parents[rows]] if length else root[None, :]
        smoothed = (estimates[rows] + theta * parent) / (1 + theta)
        probs[rows] = numpy.where(seen[rows], smoothed, parent)
    return _split_by_case(index, probs)


def _split_by_case(
    index: Dict[Tuple[int, str], int], probs: numpy.ndarray
) -> Tuple[List[Dict[str, int]], List[numpy.ndarray]]:
    tables: List[Dict[str, int]] = []
    rows: List[numpy.ndarray] = []
    for case in range(N_CASE_CLASSES):
        keys = [(s, row) for (c, s), row in index.items() if c == case]
        tables.append({s: i for i, (s, _) in enumerate(keys)})
        rows.append(probs[numpy.fromiter((row for _, row in keys), "int64", len(keys))])
    return tables, rows


def _bayes(probs: numpy.ndarray, prior: numpy.ndarray) -> numpy.ndarray:
    """log P(y | suffix) - log P(state): Bayes' rule without the constant P(suffix);
    -inf for a state never seen in training."""
    with numpy.errstate(divide="ignore", invalid="ignore"):
        scores = numpy.log(probs) - numpy.log(prior)
    return numpy.where((probs > 0) & (prior > 0), scores, -numpy.inf).astype("float32")


def _label_std(label_counts: numpy.ndarray) -> float:
    """TnT's theta: the standard deviation of the label unigram probabilities."""
    if len(label_counts) < 2:
        return 1.0
    return float(numpy.std(label_counts / label_counts.sum(), ddof=1))


def _divide(numerator: numpy.ndarray, denominator: numpy.ndarray) -> numpy.ndarray:
    """numerator / denominator, 0 where the denominator is not positive."""
    return numpy.divide(numerator, denominator, out=numpy.zeros(numerator.shape), where=denominator > 0)


def _normalize(counts: numpy.ndarray) -> numpy.ndarray:
    """Counts divided by their sum over the last axis (0 where that sum is 0)."""
    return _divide(counts, numpy.broadcast_to(counts.sum(axis=-1, keepdims=True), counts.shape))


def _log(probs: numpy.ndarray) -> numpy.ndarray:
    with numpy.errstate(divide="ignore"):
        return numpy.log(probs)
