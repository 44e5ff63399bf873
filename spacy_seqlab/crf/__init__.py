"""Linear-chain CRF math on plain arrays (numpy or cupy through ``xp``)."""
from .decode import decode
from .forward_backward import Marginals, Messages, forward_backward, log_messages
from .nbest import nbest
from .potentials import (
    ChainPotentials,
    TransitionMask,
    allowed_from_gold,
    clamp_emissions,
    gold_counts,
    sequence_scores,
)
from .segments import segment_log_probs
from .viterbi import viterbi

__all__ = [
    "ChainPotentials",
    "Marginals",
    "Messages",
    "TransitionMask",
    "allowed_from_gold",
    "clamp_emissions",
    "decode",
    "forward_backward",
    "gold_counts",
    "log_messages",
    "nbest",
    "segment_log_probs",
    "sequence_scores",
    "viterbi",
]
