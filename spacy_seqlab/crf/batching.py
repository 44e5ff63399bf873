"""Length bookkeeping shared by the batched CRF recursions: validation, longest-first
ordering, and how many rows are still running at each step."""
from typing import List, Tuple

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
