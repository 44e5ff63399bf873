"""Calibration of the CRF's confidences: expected calibration error over equal-mass
bins, reliability curves, and one temperature per component fitted on dev.

A temperature ``T`` divides every CRF score (emissions, transitions, start, end):
``P_T(y | x) ∝ exp(score(y) / T)``. The Viterbi path is unchanged; token and span
posteriors are flattened (``T > 1``) or sharpened (``T < 1``).
"""
import math
from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

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
    The predicted docs of ``examples`` must carry what the components before ``pipe``
    write (run them first)."""
    examples = list(examples)
    if not examples:
        raise ValueError(f"[{pipe.name}] fitting a temperature needs examples")
    pipe.set_temperature(1.0)
    batches = []
    for i in range(0, len(examples), batch_size):
        batch = examples[i : i + batch_size]
        batches.append((batch, pipe.scores([eg.predicted for eg in batch])))

    def loss(temperature: float) -> float:
        pairs = [pipe.confidence_pairs(batch, tempered(scores, temperature)) for batch, scores in batches]
        return binary_nll(numpy.concatenate([c for c, _ in pairs]), numpy.concatenate([h for _, h in pairs]))

    temperature, value = fit_temperature(loss)
    pipe.set_temperature(temperature)
    return temperature, value
