"""Word-piece -> token pooling for transformer listeners.

spacy-transformers aligns each spaCy token with the word pieces it overlaps (a
``Ragged`` with one row per token) and leaves the reduction to a pooling layer.
``first`` keeps the first piece of each token, as in BERT's tagging recipe (the first
piece carries the label, the rest are ignored); ``mean`` averages them. A token with
no pieces (e.g. a whitespace token) gets a zero vector in both modes, where thinc's
``reduce_first`` would raise.
"""
from typing import Callable, Tuple

from thinc.api import Model, reduce_mean, registry
from thinc.types import Floats2d, Ragged

MODES = ("first", "mean")


@registry.layers("spacy_seqlab.PiecePooling.v1")
def PiecePooling(mode: str = "first") -> Model[Ragged, Floats2d]:
    """Pool each token's word pieces: ``mode`` "first" (first piece) or "mean"."""
    if mode not in MODES:
        raise ValueError(f"PiecePooling mode must be one of {MODES}, got {mode!r}")
    if mode == "mean":
        return reduce_mean()
    return Model("first_piece", first_piece_forward)


def first_piece_forward(
    model: Model[Ragged, Floats2d], Xr: Ragged, is_train: bool
) -> Tuple[Floats2d, Callable[[Floats2d], Ragged]]:
    xp = model.ops.xp
    X = model.ops.reshape2f(Xr.dataXd, Xr.dataXd.shape[0], -1)
    lengths = xp.asarray(Xr.lengths, dtype="int64")
    starts = xp.cumsum(lengths) - lengths
    has_piece = lengths > 0
    firsts = starts[has_piece]
    Y = model.ops.alloc2f(lengths.shape[0], X.shape[1])
    Y[has_piece] = X[firsts]

    def backprop(dY: Floats2d) -> Ragged:
        dX = model.ops.alloc2f(*X.shape)
        dX[firsts] = dY[has_piece]  # the first pieces of distinct tokens are distinct rows
        return Ragged(dX, Xr.lengths)

    return Y, backprop
