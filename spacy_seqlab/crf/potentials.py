"""Chain potentials: transition, start and end scores with an optional validity mask.

Pure array code on an array module ``xp`` (numpy or cupy); no spaCy imports.
Shapes: ``L`` labels, ``B`` sequences, ``T`` the padded length.
"""
from dataclasses import dataclass
from typing import Any, Optional, Tuple

NEG_INF = float("-inf")


@dataclass
class TransitionMask:
    """Which label bigrams may be decoded: ``transitions[i, j]`` allows ``i -> j``,
    ``start[j]`` allows a sequence to begin with ``j``, ``end[i]`` to end with ``i``."""

    transitions: Any  # (L, L) bool
    start: Any  # (L,) bool
    end: Any  # (L,) bool


@dataclass
class ChainPotentials:
    """Scores of a linear-chain CRF besides the emissions:
    ``score(y) = sum_t E[t, y_t] + sum_t A[y_{t-1}, y_t] + start[y_1] + end[y_T]``."""

    transitions: Any  # (L, L)
    start: Any  # (L,)
    end: Any  # (L,)
    mask: Optional[TransitionMask] = None

    def masked(
        self, xp, dtype: str = "float64", n_labels: Optional[int] = None
    ) -> Tuple[Any, Any, Any]:
        """Transition, start and end scores as ``dtype``, -inf where the mask forbids.

        The scores themselves must be finite and, given ``n_labels``, of shapes
        (n_labels, n_labels) and (n_labels,) (ValueError naming the parameter
        otherwise): forbidding is the mask's job."""
        A = xp.asarray(self.transitions, dtype=dtype)
        s = xp.asarray(self.start, dtype=dtype)
        e = xp.asarray(self.end, dtype=dtype)
        if n_labels is not None:
            shapes = (A.shape, s.shape, e.shape)
            if shapes != ((n_labels, n_labels), (n_labels,), (n_labels,)):
                raise ValueError(
                    f"Expected transition, start and end scores of shapes "
                    f"({n_labels}, {n_labels}), ({n_labels},), ({n_labels},) for "
                    f"{n_labels} labels, got {shapes}"
                )
        for name, scores in (("transition", A), ("start", s), ("end", e)):
            _check_finite(xp, name, scores)
        if self.mask is not None:
            A = xp.where(xp.asarray(self.mask.transitions), A, NEG_INF)
            s = xp.where(xp.asarray(self.mask.start), s, NEG_INF)
            e = xp.where(xp.asarray(self.mask.end), e, NEG_INF)
        return A, s, e


def _check_finite(xp, name: str, scores) -> None:
    finite = xp.isfinite(scores)
    if not bool(finite.all()):
        where = tuple(int(i[0]) for i in xp.nonzero(~finite))
        value = scores[where]
        raise ValueError(
            f"{name.capitalize()} scores must be finite (forbid with a TransitionMask), "
            f"got {float(value)} at {list(where) if len(where) > 1 else where[0]}"
        )


def clamp_emissions(xp, emissions, allowed_labels):
    """Set the emissions of labels that ``allowed_labels`` (B, T, L) excludes to -inf.

    This clamps the CRF: its partition function then sums only over label sequences
    that agree with the known labels (partially labeled training data)."""
    return xp.where(allowed_labels, emissions, NEG_INF)


def allowed_from_gold(xp, gold, n_labels: int):
    """(B, T, L) bool mask from gold label ids (B, T); -1 marks an unknown label."""
    labels = xp.arange(n_labels)
    known = gold[..., None] >= 0
    return xp.where(known, gold[..., None] == labels, True)


def sequence_scores(xp, emissions, lengths, gold, potentials: ChainPotentials):
    """Score of fully labeled sequences ``gold`` (B, T), padded with any value."""
    B, T, _ = emissions.shape
    A, s, e = potentials.masked(xp)
    rows = xp.arange(B)
    steps = xp.arange(T)
    valid = steps[None, :] < lengths[:, None]
    y = xp.where(valid, gold, 0)
    node = xp.take_along_axis(emissions, y[..., None], axis=2)[..., 0]
    total = xp.where(valid, node, 0.0).sum(axis=1, dtype="float64")
    total += s[y[:, 0]] + e[y[rows, lengths - 1]]
    if T > 1:
        pair_valid = valid[:, 1:]
        pair = A[y[:, :-1], y[:, 1:]]
        total = total + xp.where(pair_valid, pair, 0.0).sum(axis=1)
    return total


def gold_counts(xp, lengths, gold, n_labels: int):
    """One-hot node indicators (B, T, L) of ``gold`` (B, T), and its label bigram
    counts summed over the batch (L, L)."""
    B, T = gold.shape
    valid = xp.arange(T)[None, :] < lengths[:, None]
    nodes = xp.zeros((B, T, n_labels), dtype="float32")
    b, t = xp.nonzero(valid)
    nodes[b, t, gold[b, t]] = 1.0
    pairs = valid[:, 1:]
    bigrams = gold[:, :-1][pairs] * n_labels + gold[:, 1:][pairs]
    counts = xp.bincount(bigrams, minlength=n_labels * n_labels)
    return nodes, counts.reshape(n_labels, n_labels).astype("float64")
