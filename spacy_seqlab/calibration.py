"""Calibration of the CRF's confidences: expected calibration error over equal-mass
bins, reliability curves, one temperature per component fitted on dev, and for span
components a logistic map of each span's probability (per label or length) on top.

A temperature ``T`` divides every CRF score (emissions, transitions, start, end):
``P_T(y | x) ∝ exp(score(y) / T)``. The Viterbi path is unchanged; token and span
posteriors are flattened (``T > 1``) or sharpened (``T < 1``).
"""
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy

from .crf import ChainPotentials
from .layers.crf import CRFScores


@dataclass
class Bin:
    """One reliability bin: mean confidence, accuracy and size."""

    confidence: float
    accuracy: float
    count: int


def reliability_bins(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 15) -> List[Bin]:
    """Predictions sorted by confidence and cut into ``n_bins`` bins of (nearly) equal
    size, each with its mean confidence and accuracy."""
    conf = numpy.asarray(confidences, dtype="float64")
    hit = numpy.asarray(correct, dtype="float64")
    if conf.shape != hit.shape or conf.ndim != 1:
        raise ValueError(f"need two 1-d arrays of the same length, got {conf.shape} and {hit.shape}")
    if not len(conf):
        raise ValueError("no predictions to bin")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    if ((conf < -1e-6) | (conf > 1 + 1e-6) | ~numpy.isfinite(conf)).any():
        raise ValueError("confidences must lie in [0, 1]")
    conf = numpy.clip(conf, 0.0, 1.0)  # float32 rounding
    order = numpy.argsort(conf, kind="stable")
    return [
        Bin(float(conf[part].mean()), float(hit[part].mean()), len(part))
        for part in numpy.array_split(order, min(n_bins, len(conf)))
    ]


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 15) -> float:
    """ECE with equal-mass bins: ``sum_b (n_b / N) |mean confidence_b - accuracy_b|``."""
    bins = reliability_bins(confidences, correct, n_bins)
    total = sum(b.count for b in bins)
    return sum(b.count / total * abs(b.confidence - b.accuracy) for b in bins)


def tempered(scores: CRFScores, temperature: float) -> CRFScores:
    """``scores`` with every CRF score divided by ``temperature``."""
    if temperature == 1.0:
        return scores
    pot = scores.potentials

    def scale(x):
        return None if x is None else x / temperature

    return CRFScores(
        scores.emissions / temperature,
        scores.lengths,
        ChainPotentials(scale(pot.transitions), scale(pot.start), scale(pot.end), pot.mask),
    )


def check_temperature(value: float) -> float:
    """``value`` as a float if it is a finite positive number, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"temperature must be a finite positive number, got {value!r}")
    return float(value)


def fit_temperature(
    loss: Callable[[float], float], low: float = 0.2, high: float = 10.0, steps: int = 40
) -> Tuple[float, float]:
    """The temperature in [low, high] minimizing ``loss(T)`` (a dev-set NLL), and that
    loss: a log-spaced grid, then golden-section search between the grid neighbours of
    the best point."""
    grid = numpy.geomspace(low, high, 25)
    values = [loss(float(t)) for t in grid]
    k = int(numpy.argmin(values))
    a, b = math.log(grid[max(k - 1, 0)]), math.log(grid[min(k + 1, len(grid) - 1)])
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = loss(math.exp(c)), loss(math.exp(d))
    for _ in range(steps):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = loss(math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = loss(math.exp(d))
    best, value = (c, fc) if fc <= fd else (d, fd)
    if values[k] < value:  # the grid point itself (an edge of the range)
        return float(grid[k]), float(values[k])
    return math.exp(best), float(value)


def binary_nll(confidences, correct) -> float:
    """Mean negative log-likelihood of ``correct`` (bool) under ``confidences``."""
    p = numpy.clip(numpy.asarray(confidences, dtype="float64"), 1e-12, 1 - 1e-12)
    hit = numpy.asarray(correct, dtype=bool)
    return float(-numpy.where(hit, numpy.log(p), numpy.log1p(-p)).mean())


def fit_component_temperature(pipe, examples: Sequence, batch_size: int = 256) -> Tuple[float, float]:
    """Fit the temperature of a CRF component (``crf_tagger``, ``crf_ner``, ...) on
    ``examples`` (dev, never test) and set it: the one minimizing the NLL of whether
    each decoded label or span is right under its confidence (``confidence_pairs``),
    which is what the expected calibration error measures. Returns (T, NLL at T).
    A span component's span calibration is dropped (fit it again after, with
    ``fit_component_span_calibration``). The predicted docs of ``examples`` must carry what the components before ``pipe``
    write (run them first)."""
    examples = list(examples)
    if not examples:
        raise ValueError(f"[{pipe.name}] fitting a temperature needs examples")
    if hasattr(pipe, "set_span_calibration"):  # fitted on top of a temperature: refit it after
        pipe.set_span_calibration(None)
    batches = scored_batches(pipe, examples, batch_size)
    if not len(pairs_at(pipe.confidence_pairs, batches, 1.0)[0]):
        raise ValueError(
            f"[{pipe.name}] nothing to fit a temperature on: the examples have no gold labels "
            f"where the component predicted (no tags, or no predicted spans)"
        )
    temperature, value = fit_temperature(lambda t: binary_nll(*pairs_at(pipe.confidence_pairs, batches, t)))
    pipe.set_temperature(temperature)
    return temperature, value


def scored_batches(pipe, examples: Sequence, batch_size: int = 256) -> List[Tuple[List, CRFScores]]:
    """``examples`` in batches, each with the component's scores of its predicted docs at
    temperature 1 (``pairs_at`` tempers them)."""
    examples = list(examples)
    return [
        (examples[i : i + batch_size],
         pipe.scores([eg.predicted for eg in examples[i : i + batch_size]], temperature=1.0))
        for i in range(0, len(examples), batch_size)
    ]


def pairs_at(pairs: Callable, batches: Sequence[Tuple[List, CRFScores]], temperature: float) -> Tuple[numpy.ndarray, ...]:
    """``pairs(examples, scores)`` (a component's ``confidence_pairs`` or
    ``span_pairs``) of every batch (``scored_batches``) at ``temperature``, joined
    array by array."""
    parts = [pairs(batch, tempered(scores, temperature)) for batch, scores in batches]
    return tuple(numpy.concatenate([part[k] for part in parts]) for k in range(len(parts[0])))


# --- span calibration: a logistic map of each span's probability, by group ----------
SPAN_GROUPINGS = ("all", "label", "length")
# a group (label, length) with fewer dev spans than this uses the map fitted on all spans
MIN_GROUP_SPANS = 50
LENGTH_GROUPS = 3  # span lengths 1, 2 and 3 or more


def span_group(by: str, label: str, length: int) -> str:
    """The group a span's calibration map is looked up under: "*" (``by="all"``), its
    label, or its length (1, 2, ..., ``LENGTH_GROUPS`` or more)."""
    if by == "label":
        return label
    if by == "length":
        return str(min(length, LENGTH_GROUPS))
    return "*"


def logit(p) -> numpy.ndarray:
    """log(p / (1 - p)), with p kept within 1e-7 of 0 and 1."""
    p = numpy.clip(numpy.asarray(p, dtype="float64"), 1e-7, 1 - 1e-7)
    return numpy.log(p) - numpy.log1p(-p)


def fit_platt(confidences, correct, l2: float = 1e-3, steps: int = 50) -> Tuple[float, float]:
    """``(a, b)`` of the logistic map ``sigmoid(a * logit(p) + b)`` that minimizes the
    NLL of ``correct`` given ``confidences`` (Platt scaling on the logit; a small L2
    pull towards the identity ``(1, 0)`` keeps it finite when every span is right).
    Newton's method on the two parameters."""
    x = logit(confidences)
    y = numpy.asarray(correct, dtype="float64")
    if x.shape != y.shape or not len(x):
        raise ValueError(f"need confidences and outcomes of the same non-zero length, got {x.shape} and {y.shape}")
    w = numpy.array([1.0, 0.0])
    features = numpy.stack([x, numpy.ones_like(x)], axis=1)
    n = len(x)
    for _ in range(steps):
        p = 1 / (1 + numpy.exp(-(features @ w)))
        grad = features.T @ (p - y) / n + l2 * (w - [1.0, 0.0])
        hess = (features * (p * (1 - p))[:, None]).T @ features / n + l2 * numpy.eye(2)
        step = numpy.linalg.solve(hess, grad)
        w = w - step
        if numpy.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def check_span_calibration(value) -> Optional[Dict[str, object]]:
    """``value`` if it is None or a valid span calibration: ``{"by": one of
    SPAN_GROUPINGS, "maps": {group: [a, b], ...}}`` with a "*" map and finite numbers;
    else ValueError saying what is wrong."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"by", "maps"}:
        raise ValueError(f"a span calibration is a dict with the keys 'by' and 'maps', got {value!r}")
    if value["by"] not in SPAN_GROUPINGS:
        raise ValueError(f"span calibration 'by' must be one of {SPAN_GROUPINGS}, got {value['by']!r}")
    maps = value["maps"]
    if not isinstance(maps, dict) or "*" not in maps:
        raise ValueError("span calibration 'maps' must be a dict with a '*' entry (the map for every span)")
    for group, ab in maps.items():
        if (
            not isinstance(ab, (list, tuple)) or len(ab) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in ab)
        ):
            raise ValueError(f"span calibration map {group!r} must be two finite numbers [a, b], got {ab!r}")
    return {"by": value["by"], "maps": {str(g): [float(a), float(b)] for g, (a, b) in maps.items()}}


def apply_span_calibration(calibration: Optional[Dict], probs, labels: Sequence[str], lengths: Sequence[int]) -> numpy.ndarray:
    """Span probabilities (N,) mapped through ``calibration`` (see
    ``fit_span_calibration``; None: unchanged), each by the map of its group."""
    probs = numpy.asarray(probs, dtype="float64")
    if calibration is None or not len(probs):
        return probs
    by, maps = calibration["by"], calibration["maps"]
    ab = numpy.asarray([maps.get(span_group(by, label, n), maps["*"]) for label, n in zip(labels, lengths)])
    return 1 / (1 + numpy.exp(-(ab[:, 0] * logit(probs) + ab[:, 1])))


def fit_span_calibration(by: str, probs, correct, labels: Sequence[str], lengths: Sequence[int]) -> Dict:
    """A span calibration (JSON-able) fitted on dev spans: their probabilities,
    whether each is right, labels and lengths. One logistic map on the logit for all
    spans ("*"), and with ``by="label"`` or ``"length"`` one per group that has at
    least ``MIN_GROUP_SPANS`` spans."""
    if by not in SPAN_GROUPINGS:
        raise ValueError(f"by must be one of {SPAN_GROUPINGS}, got {by!r}")
    probs, correct = numpy.asarray(probs, dtype="float64"), numpy.asarray(correct, dtype=bool)
    maps = {"*": list(fit_platt(probs, correct))}
    if by != "all":
        groups = numpy.asarray([span_group(by, label, n) for label, n in zip(labels, lengths)])
        for group in sorted(set(groups.tolist())):
            chosen = groups == group
            if chosen.sum() >= MIN_GROUP_SPANS:
                maps[group] = list(fit_platt(probs[chosen], correct[chosen]))
    return {"by": by, "maps": maps}


def fit_component_span_calibration(pipe, examples: Sequence, by: str = "label", batch_size: int = 256) -> Dict:
    """Fit and set the span calibration of ``crf_ner`` (``pipe``) on ``examples`` (dev,
    never test), at its current temperature (fit that first): one logistic map of the
    span probabilities per ``by`` group (see ``fit_span_calibration``). Returns it."""
    examples = list(examples)
    if not examples:
        raise ValueError(f"[{pipe.name}] fitting a span calibration needs examples")
    probs, hit, labels, lengths = pairs_at(pipe.span_pairs, scored_batches(pipe, examples, batch_size), pipe.temperature)
    if not len(probs):
        raise ValueError(f"[{pipe.name}] predicted no spans on the examples: nothing to calibrate")
    calibration = fit_span_calibration(by, probs, hit, labels.tolist(), lengths.tolist())
    pipe.set_span_calibration(calibration)
    return calibration
