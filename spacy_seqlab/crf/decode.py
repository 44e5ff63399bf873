"""Decoding for prediction: Viterbi paths and the posterior marginal of each chosen
label, with the checks, the longest-first order and the masked potentials shared
between Viterbi and forward-backward."""
from typing import Any, Optional, Tuple

from . import long_rows
from .batching import check_emissions, check_lengths
from .forward_backward import path_marginals
from .potentials import ChainPotentials
from .viterbi import best_paths


def decode(
    xp, emissions, lengths, potentials: ChainPotentials, *, marginals: bool = True, dtype: str = "float32"
) -> Tuple[Any, Optional[Any]]:
    """The Viterbi paths of ``emissions`` (B, T, L) as ``viterbi`` gives them (B, T;
    -1 at padding) and, with ``marginals``, the posterior marginal of each chosen label
    (B, T) in [0, 1], from forward-backward in ``dtype`` (0 at padding; None without).
    Every length must be at least 1; NaN and +inf emissions inside a row raise
    ValueError. Rows longer than ``long_rows.LONG_ROW`` run in segments."""
    E = xp.asarray(emissions)
    E = E.astype("float64" if E.dtype == xp.float64 else "float32", copy=False)
    lengths = xp.asarray(lengths, dtype="int64")
    check_lengths(xp, E, lengths)
    if bool((lengths > long_rows.LONG_ROW).any()):
        paths, _ = long_rows.viterbi(xp, E, lengths, potentials)
        if not marginals:
            return paths, None
        nodes = long_rows.forward_backward(xp, E, lengths, potentials, counts=None, dtype=dtype).nodes
        chosen = xp.take_along_axis(nodes, xp.maximum(paths, 0)[..., None], axis=2)[..., 0]
    else:
        peak = check_emissions(xp, E, lengths)
        paths = best_paths(xp, E, lengths, potentials)
        if not marginals:
            return paths, None
        chosen = path_marginals(xp, E, lengths, peak, potentials, paths, dtype=dtype)
    return paths, xp.clip(chosen, 0.0, 1.0)  # float32 rounding may pass 1 by ~1e-6
