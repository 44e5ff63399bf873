"""Batch bookkeeping shared by the batched CRF recursions: validation of lengths and
scores, longest-first ordering, and how many rows are still running at each step."""
from typing import Any, List, Tuple

import numpy


def check_lengths(xp, emissions, lengths) -> None:
    """Raise ValueError unless ``emissions`` is (B, T, L) and 1 <= lengths <= T."""
    if emissions.ndim != 3 or lengths.shape != (emissions.shape[0],):
        raise ValueError(
            f"Expected emissions (batch, length, n_labels) and lengths (batch,), "
            f"got {emissions.shape} and {lengths.shape}"
        )
    if emissions.shape[0] and (
        int(lengths.min()) < 1 or int(lengths.max()) > emissions.shape[1]
    ):
        raise ValueError(
            f"Sequence lengths must lie in [1, {emissions.shape[1]}], got "
            f"[{int(lengths.min())}, {int(lengths.max())}]"
        )


def label_reduce(xp, ufunc: str, emissions) -> Any:
    """``emissions.max(axis=-1)`` (``ufunc="maximum"``) or ``.min`` ("minimum"), NaN
    propagating: over numpy's short last axis as ``reduceat`` on the flat array, about
    ten times faster than the axis reduction for a few dozen labels."""
    if xp is not numpy or emissions.size == 0:
        return emissions.max(axis=-1) if ufunc == "maximum" else emissions.min(axis=-1)
    flat = numpy.ascontiguousarray(emissions).reshape(-1)
    starts = numpy.arange(0, flat.shape[0], emissions.shape[-1])
    return getattr(numpy, ufunc).reduceat(flat, starts).reshape(emissions.shape[:-1])


def check_emissions(xp, emissions, lengths, *, allow_excluded: bool = True) -> Any:
    """Raise ValueError naming the first (batch row, position) inside its row whose
    emissions hold NaN or +inf (or -inf unless ``allow_excluded``: -inf excludes a
    label, see ``clamp_emissions``); padding is ignored. Returns the max over labels
    (B, T), 0 at padding, which the recursions reuse as their shift.

    NaN and +inf propagate through the max, so one reduction finds them."""
    if emissions.shape[2] == 0:
        raise ValueError("Emission scores need at least one label, got shape "
                         f"{emissions.shape}")
    valid = xp.arange(emissions.shape[1])[None, :] < lengths[:, None]
    with numpy.errstate(invalid="ignore"):
        peak = label_reduce(xp, "maximum", emissions)
        bad = xp.isnan(peak) | (peak == numpy.inf)
        if not allow_excluded:
            bad |= label_reduce(xp, "minimum", emissions) == -numpy.inf
    bad &= valid
    if bool(bad.any()):
        b, t = (int(i[0]) for i in xp.nonzero(bad))
        row = emissions[b, t]
        kinds = [("nan", xp.isnan(row)), ("inf", row == numpy.inf), ("-inf", row == -numpy.inf)]
        value, hit = next((name, hit) for name, hit in kinds if bool(hit.any()))
        allowed = "finite or -inf (an excluded label)" if allow_excluded else "finite"
        raise ValueError(
            f"Emission scores must be {allowed}, got {value} at batch row {b}, "
            f"position {t}, label {int(xp.nonzero(hit)[0][0])}"
        )
    return xp.where(valid, peak, 0.0)


def sort_by_length(xp, emissions, lengths) -> Tuple:
    """``order``, emissions and lengths with rows longest first (no copy when they
    already are)."""
    if bool((lengths[:-1] >= lengths[1:]).all()):
        return xp.arange(lengths.shape[0]), emissions, lengths
    order = xp.argsort(-lengths, kind="stable")
    return order, emissions[order], lengths[order]


def inverse_permutation(xp, order):
    """Indices that put rows taken in ``order`` back in their original places."""
    inverse = xp.empty_like(order)
    inverse[order] = xp.arange(order.shape[0])
    return inverse


def active_rows(lengths, T: int) -> List[int]:
    """n_t: how many of the length-sorted rows are still running at step t."""
    host = numpy.asarray(lengths.get() if hasattr(lengths, "get") else lengths)
    return (host[None, :] > numpy.arange(T)[:, None]).sum(axis=1).tolist()
