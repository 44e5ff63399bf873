"""A recurrent context encoder (LSTM, GRU or Elman RNN) for ``spacy.Tok2Vec.v2``.
It runs on PyTorch (the ``recurrent`` extra), imported when an encoder is built."""
from functools import partial
from typing import TYPE_CHECKING, Callable, List, Optional, Tuple, cast

from spacy.util import registry
from thinc.api import ArgsKwargs, Model, Padded, torch2xp, with_padded, xp2torch
from thinc.types import Floats2d, Floats3d

from .torch_wrapper import PyTorchArrays, require_torch

if TYPE_CHECKING:
    import torch

    from .torch_nets import PackedRNN

InT = List[Floats2d]
OutT = List[Floats2d]

CELLS = ("gru", "lstm", "rnn")


@registry.architectures("spacy_seqlab.RNNEncoder.v1")
def RNNEncoder(
    width: int,
    depth: int = 1,
    cell: str = "lstm",
    bidirectional: bool = True,
    dropout: float = 0.0,
) -> Model[InT, OutT]:
    """``depth`` stacked recurrent layers over each doc's token vectors; the ``encode``
    part of ``spacy.Tok2Vec.v2``. Output: ``(n_tokens, width)`` per doc; a bidirectional
    encoder concatenates two directions of ``width // 2``. The input width is inferred
    at ``initialize``. Sequences are packed, so padding never reaches a state.
    ``dropout`` applies to the encoder's input, between layers and to its output.
    """
    if cell not in CELLS:
        raise ValueError(f"RNNEncoder cell must be one of {list(CELLS)}, got {cell!r}")
    if depth < 1:
        raise ValueError(f"RNNEncoder depth must be >= 1, got {depth}")
    if width < 1 or (bidirectional and width % 2):
        raise ValueError(
            f"RNNEncoder width must be a positive{' even' if bidirectional else ''} "
            f"number{' (width // 2 per direction)' if bidirectional else ''}, got {width}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"RNNEncoder dropout must be in [0, 1), got {dropout}")
    require_torch("spacy_seqlab.RNNEncoder.v1")
    from .torch_nets import PackedRNN

    rnn = PackedRNN(cell, width // 2 if bidirectional else width, depth, bidirectional, dropout)
    wrapper = PyTorchArrays(rnn, convert_inputs=_padded_to_torch, convert_outputs=_torch_to_padded)
    return Model(
        "rnn_encoder",
        forward,
        init=partial(init, rnn),
        layers=[with_padded(wrapper)],
        dims={"nI": None, "nO": width},
    )


def forward(model: Model[InT, OutT], Xs: InT, is_train: bool) -> Tuple[OutT, Callable]:
    if sum(len(X) for X in Xs):
        return model.layers[0](Xs, is_train)
    # Only empty docs (or none): nothing to run.
    nI, nO = model.get_dim("nI"), model.get_dim("nO")

    def backprop(dYs: OutT) -> InT:
        return [model.ops.alloc2f(0, nI) for _ in dYs]

    return [model.ops.alloc2f(0, nO) for _ in Xs], backprop


def init(
    rnn: "PackedRNN", model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None
) -> None:
    if X:
        model.set_dim("nI", X[0].shape[1])
    rnn.build(model.get_dim("nI"))


def _padded_to_torch(model: Model, Xp: Padded, is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    Xtorch = xp2torch(Xp.data, requires_grad=is_train, device=model.shims[0].device)
    lengths = model.ops.to_numpy(Xp.lengths)  # packing reads the lengths on the CPU

    def backprop(d_args: ArgsKwargs) -> Padded:
        dX = cast(Floats3d, torch2xp(d_args.args[0]))
        return Padded(dX, Xp.size_at_t, Xp.lengths, Xp.indices)

    return ArgsKwargs(args=(Xtorch, lengths), kwargs={}), backprop


def _torch_to_padded(
    model: Model, X_Ytorch: Tuple[Padded, "torch.Tensor"], is_train: bool
) -> Tuple[Padded, Callable]:
    Xp, Ytorch = X_Ytorch
    device = model.shims[0].device

    def backprop(dYp: Padded) -> ArgsKwargs:
        dYtorch = xp2torch(dYp.data, device=device)
        return ArgsKwargs(args=(Ytorch,), kwargs={"grad_tensors": dYtorch})

    Y = cast(Floats3d, torch2xp(Ytorch))
    return Padded(Y, Xp.size_at_t, Xp.lengths, Xp.indices), backprop
