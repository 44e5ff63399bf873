"""Linear-chain CRF math on plain arrays (numpy or cupy through ``xp``)."""
from .forward_backward import Marginals, forward_backward
from .potentials import (
    ChainPotentials,
    TransitionMask,
    allowed_from_gold,
    clamp_emissions,
    gold_counts,
    sequence_scores,
)
from .viterbi import viterbi

__all__ = [
    "ChainPotentials",
    "Marginals",
    "TransitionMask",
    "allowed_from_gold",
    "clamp_emissions",
    "forward_backward",
    "gold_counts",
    "sequence_scores",
    "viterbi",
]
