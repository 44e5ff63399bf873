"""Character-level word representations: one vector per token from its characters.

Both layers read the characters of every token in the batch at once, as a ``Ragged``
of character ids (all characters concatenated, one length per token). A character's
id is its Unicode codepoint modulo ``nV``, so case is preserved and ASCII/Latin-1 get
rows of their own when ``nV >= 256``. Words longer than ``max_chars`` keep their first
``ceil(max_chars / 2)`` and last ``floor(max_chars / 2)`` characters (prefixes and
suffixes carry the morphology). ``CharBiLSTM`` runs on PyTorch (the ``recurrent`` extra),
imported when it is built.
"""
from functools import partial
from typing import Callable, List, Optional, Tuple, cast

import numpy
from spacy.attrs import IDX, LENGTH
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import (
    ArgsKwargs,
    Embed,
    Linear,
    Model,
    Ragged,
    chain,
    expand_window,
    reduce_max,
    torch2xp,
    uniform_init,
    with_array,
    xp2torch,
)
from thinc.types import Floats2d, Ints1d

from .torch_wrapper import PyTorchArrays, require_torch

InT = List[Doc]
OutT = List[Floats2d]
SQRT3 = 3**0.5  # uniform(-SQRT3, SQRT3) has unit variance


@registry.architectures("spacy_seqlab.CharCNN.v1")
def CharCNN(
    width: int = 50, char_width: int = 30, window: int = 1, max_chars: int = 20, nV: int = 1024
) -> Model[InT, OutT]:
    """Character CNN (Ma & Hovy 2016): embed each character (``char_width``), convolve
    ``width`` filters over windows of ``2 * window + 1`` characters within the word,
    and max-pool over the word's characters. Output: ``(n_tokens, width)`` per doc.
    Character embeddings start at unit variance (as torch's ``nn.Embedding`` in
    ``CharBiLSTM``), or the layer-normalized word features they join drown them out.
    """
    _check_sizes("CharCNN", width=width, char_width=char_width, max_chars=max_chars, nV=nV)
    if window < 0:
        raise ValueError(f"CharCNN window must be >= 0, got {window}")
    cnn: Model[Ragged, Floats2d] = chain(
        with_array(Embed(nO=char_width, nV=nV, initializer=partial(uniform_init, lo=-SQRT3, hi=SQRT3))),
        expand_window(window_size=window),
        with_array(Linear(nO=width)),
        reduce_max(),
    )
    return with_token_chars(cnn, width=width, max_chars=max_chars, nV=nV)


@registry.architectures("spacy_seqlab.CharBiLSTM.v1")
def CharBiLSTM(
    width: int = 50, char_width: int = 30, max_chars: int = 20, nV: int = 1024
) -> Model[InT, OutT]:
    """Character BiLSTM (Lample et al. 2016): the final states of a forward and a
    backward LSTM (``width // 2`` each) over each token's character embeddings
    (``char_width``), concatenated. Output: ``(n_tokens, width)`` per doc.
    """
    _check_sizes("CharBiLSTM", width=width, char_width=char_width, max_chars=max_chars, nV=nV)
    if width % 2:
        raise ValueError(f"CharBiLSTM width must be even (width // 2 per direction), got {width}")
    require_torch("spacy_seqlab.CharBiLSTM.v1")
    from .torch_nets import CharLSTM

    lstm = PyTorchArrays(
        CharLSTM(nV, char_width, width // 2),
        convert_inputs=_ragged_ids_to_torch,
        convert_outputs=_torch_to_floats,
    )
    return with_token_chars(lstm, width=width, max_chars=max_chars, nV=nV)


def with_token_chars(
    layer: Model[Ragged, Floats2d], *, width: int, max_chars: int, nV: int
) -> Model[InT, OutT]:
    """Run ``layer`` on the character ids of all tokens of a batch (a ``Ragged``,
    one sequence per token) and split its ``(n_tokens, width)`` output per doc."""
    return Model(
        "token_chars",
        _token_chars_forward,
        init=_token_chars_init,
        layers=[layer],
        dims={"nO": width},
        attrs={"max_chars": max_chars, "nV": nV},
    )


def _token_chars_forward(
    model: Model[InT, OutT], docs: InT, is_train: bool
) -> Tuple[OutT, Callable]:
    layer = model.layers[0]
    doc_lengths = [len(doc) for doc in docs]
    if not sum(doc_lengths):
        width = model.get_dim("nO")
        return [model.ops.alloc2f(0, width) for _ in docs], lambda dYs: []
    Y, backprop_layer = layer(_char_ids(model, docs), is_train)

    def backprop(dYs: OutT) -> InT:
        backprop_layer(model.ops.flatten(dYs))
        return []

    return model.ops.unflatten(Y, numpy.asarray(doc_lengths, dtype="int32")), backprop


def _token_chars_init(
    model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None
) -> None:
    if X is not None and sum(len(doc) for doc in X):
        model.layers[0].initialize(X=_char_ids(model, X))
    else:
        model.layers[0].initialize()


def _char_ids(model: Model[InT, OutT], docs: InT) -> Ragged:
    """Character ids of every token, concatenated, with the number kept per token."""
    max_chars = model.attrs["max_chars"]
    head = (max_chars + 1) // 2
    texts, starts, lengths, offset = [], [], [], 0
    for doc in docs:
        idx_len = doc.to_array([IDX, LENGTH]).astype("int64")
        starts.append(idx_len[:, 0] + offset)
        lengths.append(idx_len[:, 1])
        texts.append(doc.text)
        offset += len(doc.text)
    text = "".join(texts).encode("utf-32-le", "surrogatepass")
    codepoints = numpy.frombuffer(text, dtype="uint32")
    start, length = numpy.concatenate(starts), numpy.concatenate(lengths)
    kept = numpy.minimum(length, max_chars)
    token = numpy.repeat(numpy.arange(len(kept)), kept)
    j = numpy.arange(kept.sum()) - numpy.repeat(numpy.cumsum(kept) - kept, kept)
    # Past the head of a truncated word, read its last characters instead.
    j = numpy.where((length[token] > max_chars) & (j >= head), j + length[token] - max_chars, j)
    ids = codepoints[start[token] + j] % model.attrs["nV"]
    return Ragged(model.ops.asarray1i(ids), model.ops.asarray1i(kept))


def _ragged_ids_to_torch(model: Model, Xr: Ragged, is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    """Pad the ragged ids to ``(n_tokens, longest)`` for the LSTM; ids get no gradient."""
    xp = model.ops.xp
    lengths = cast(Ints1d, Xr.lengths)
    mask = xp.arange(int(lengths.max()))[None, :] < lengths[:, None]
    padded = xp.zeros(mask.shape, dtype="int64")
    padded[mask] = Xr.dataXd
    ids = xp2torch(padded, device=model.shims[0].device)
    cpu_lengths = model.ops.to_numpy(lengths)  # packing reads the lengths on the CPU

    def backprop(d_args: ArgsKwargs) -> Ragged:
        return Ragged(model.ops.alloc1i(len(Xr.dataXd)), lengths)

    return ArgsKwargs(args=(ids, cpu_lengths), kwargs={}), backprop


def _torch_to_floats(model: Model, X_Ytorch: Tuple, is_train: bool) -> Tuple[Floats2d, Callable]:
    _, Ytorch = X_Ytorch
    device = model.shims[0].device

    def backprop(dY: Floats2d) -> ArgsKwargs:
        return ArgsKwargs(args=(Ytorch,), kwargs={"grad_tensors": xp2torch(dY, device=device)})

    return cast(Floats2d, torch2xp(Ytorch)), backprop


def _check_sizes(layer: str, **sizes: int) -> None:
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{layer} {name} must be >= 1, got {value}")
