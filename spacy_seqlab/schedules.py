"""Learning-rate schedules of the configs, checked against the length of training."""
from typing import Iterable

from thinc.api import registry, warmup_linear


@registry.schedules("spacy_seqlab.warmup_linear.v1")
def make_warmup_linear(initial_rate: float, warmup_steps: int, total_steps: int) -> Iterable[float]:
    """thinc's ``warmup_linear.v1``: the rate rises linearly to ``initial_rate`` over
    ``warmup_steps``, then falls linearly to 0 at ``total_steps``. A ``total_steps`` of
    0 or less (``${training.max_steps}`` with ``max_steps = 0``: training by epochs) is
    refused: thinc's would go on at a rate of 0 after the warmup and learn nothing."""
    if warmup_steps < 0 or total_steps <= 0:
        raise ValueError(
            f"spacy_seqlab.warmup_linear.v1: total_steps must be > 0 and warmup_steps >= 0, "
            f"got {total_steps} and {warmup_steps}; total_steps is usually "
            "${training.max_steps}: set training.max_steps (training by max_epochs alone "
            "has no step count to decay over), or set total_steps yourself"
        )
    return warmup_linear(initial_rate, warmup_steps, total_steps)
