"""A recurrent context encoder (LSTM, GRU or Elman RNN) for ``spacy.Tok2Vec.v2``."""
from functools import partial
from typing import Callable, Dict, List, Optional, Tuple, cast

import torch
from spacy.util import registry
from thinc.api import (
    ArgsKwargs,
    Model,
    Padded,
    PyTorchWrapper_v2,
    get_torch_default_device,
    torch2xp,
    with_padded,
    xp2torch,
)
from thinc.types import Floats2d, Floats3d

InT = List[Floats2d]
OutT = List[Floats2d]

CELLS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}


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
        raise ValueError(f"RNNEncoder cell must be one of {sorted(CELLS)}, got {cell!r}")
    if depth < 1:
        raise ValueError(f"RNNEncoder depth must be >= 1, got {depth}")
    if width < 1 or (bidirectional and width % 2):
        raise ValueError(
            f"RNNEncoder width must be a positive{' even' if bidirectional else ''} "
            f"number{' (width // 2 per direction)' if bidirectional else ''}, got {width}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"RNNEncoder dropout must be in [0, 1), got {dropout}")
    rnn = _PackedRNN(cell, width // 2 if bidirectional else width, depth, bidirectional, dropout)
    wrapper = PyTorchWrapper_v2(rnn, convert_inputs=_padded_to_torch, convert_outputs=_torch_to_padded)
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
    rnn: "_PackedRNN", model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None
) -> None:
    if X:
        model.set_dim("nI", X[0].shape[1])
    rnn.build(model.get_dim("nI"))


class _PackedRNN(torch.nn.Module):
    """A torch RNN built once its input width is known: at ``initialize``, or from the
    weights when a model is deserialized."""

    def __init__(self, cell: str, hidden: int, depth: int, bidirectional: bool, dropout: float) -> None:
        super().__init__()
        self.config = {
            "hidden_size": hidden,
            "num_layers": depth,
            "bidirectional": bidirectional,
            "dropout": dropout if depth > 1 else 0.0,
        }
        self.cell = cell
        self.dropout = torch.nn.Dropout(dropout)
        self.rnn: Optional[torch.nn.RNNBase] = None

    def build(self, nI: int) -> None:
        self.rnn = CELLS[self.cell](nI, **self.config).to(get_torch_default_device())

    def load_state_dict(self, state_dict: Dict[str, "torch.Tensor"], *args, **kwargs):
        self.build(state_dict["rnn.weight_ih_l0"].shape[1])
        return super().load_state_dict(state_dict, *args, **kwargs)

    def forward(self, X: "torch.Tensor", lengths: "torch.Tensor") -> "torch.Tensor":
        """X: (T, B, nI) sorted longest first; lengths: (B,) on the CPU. Empty rows
        (length 0) read one padding step whose output the caller drops."""
        packed = torch.nn.utils.rnn.pack_padded_sequence(self.dropout(X), lengths.clamp(min=1))
        Y, _ = torch.nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], total_length=X.shape[0])
        return self.dropout(Y)


def _padded_to_torch(model: Model, Xp: Padded, is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    Xtorch = xp2torch(Xp.data, requires_grad=is_train, device=model.shims[0].device)
    lengths = torch.as_tensor(model.ops.to_numpy(Xp.lengths), dtype=torch.int64)

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
