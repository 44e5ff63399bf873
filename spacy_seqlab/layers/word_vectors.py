"""Word embeddings initialized from the vocab's vectors table and fine-tuned, as the
papers do (Collobert et al. 2011, Lample et al. 2016, Ma & Hovy 2016); spaCy's
``StaticVectors`` keeps them fixed.

Each token is looked up by ``attr`` (LOWER by default, so ``Paris`` and ``paris`` share a
row whatever keys the table has) in ``doc.vocab.vectors``. The first ``trainable_rows``
rows of the table are copied into the layer's ``E`` at ``initialize`` and trained; the
others are read from the table and stay as they are (vectors files list words by
frequency, so the trainable rows are the frequent words training updates, and the model
saves ``trainable_rows x width`` floats, not the whole table). A word with no row, and a
training token hit by ``word_dropout``, gets the trained ``unk`` vector instead (word
dropout teaches the model what to do with unknown words, as Lample et al.'s singleton
replacement).
"""
from functools import partial
from typing import Callable, List, Optional, Tuple

import numpy
from spacy.attrs import IDS
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d, Ints1d

InT = List[Doc]
OutT = List[Floats2d]


@registry.architectures("spacy_seqlab.FineTunedVectors.v1")
def FineTunedVectors(
    trainable_rows: int = 100000, attr: str = "LOWER", word_dropout: float = 0.0
) -> Model[InT, OutT]:
    """The vectors table's row of each token, the first ``trainable_rows`` rows trained.
    Output: ``(n_tokens, table width)`` per doc; the width is the table's, read at
    ``initialize``. ``trainable_rows = 0`` keeps every row fixed (only ``unk`` learns).
    """
    if trainable_rows < 0:
        raise ValueError(f"FineTunedVectors trainable_rows must be >= 0, got {trainable_rows}")
    if attr.upper() not in IDS:
        raise ValueError(f"FineTunedVectors attr must be a token attribute such as LOWER or ORTH, got {attr!r}")
    if not 0.0 <= word_dropout < 1.0:
        raise ValueError(f"FineTunedVectors word_dropout must be in [0, 1), got {word_dropout}")
    return Model(
        "fine_tuned_vectors",
        forward,
        init=partial(init, trainable_rows),
        dims={"nO": None, "nV": None, "nT": None},
        params={"E": None, "unk": None},
        attrs={"attr": IDS[attr.upper()], "word_dropout": word_dropout},
    )


def _table(model: Model, docs: InT):
    """The vocab's vectors table, checked against the one the layer was initialized on."""
    vectors = docs[0].vocab.vectors
    rows, width = vectors.shape if vectors.mode == "default" else (0, 0)
    if model.has_dim("nV") and model.get_dim("nV") is not None and (
        (rows, width) != (model.get_dim("nV"), model.get_dim("nO"))
    ):
        raise ValueError(
            f"FineTunedVectors was initialized on a {model.get_dim('nV')} x {model.get_dim('nO')} "
            f"vectors table, but the vocab now has {rows} x {width}: load the pipeline with the "
            "vectors it was trained with"
        )
    if rows == 0:
        raise ValueError(
            "FineTunedVectors needs a vectors table (default mode, not floret) in the vocab: "
            "set [initialize] vectors (paths.vectors) to a pipeline with vectors"
        )
    return vectors


def init(trainable_rows: int, model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    if not X:
        raise ValueError("FineTunedVectors.initialize needs sample docs (X) to find the vectors table")
    vectors = _table(model, X)
    rows, width = vectors.shape
    n_trainable = min(trainable_rows, rows)
    model.set_dim("nV", rows)
    model.set_dim("nO", width)
    model.set_dim("nT", n_trainable)
    model.set_param("E", model.ops.asarray2f(vectors.data[:n_trainable], dtype="float32").copy())
    model.set_param("unk", model.ops.alloc2f(1, width))


def token_rows(model: Model[InT, OutT], docs: InT, is_train: bool) -> Ints1d:
    """Row of each token of ``docs`` (concatenated) in the table; -1: the ``unk`` vector."""
    vectors = _table(model, docs)
    attr = model.attrs["attr"]
    keys = numpy.concatenate([doc.to_array(attr).reshape(-1) for doc in docs])
    rows = numpy.asarray(vectors.find(keys=keys), dtype="int64").reshape(-1)
    p = model.attrs["word_dropout"]
    if is_train and p > 0.0 and rows.size:
        rows[numpy.random.random(rows.size) < p] = -1
    return rows


def forward(model: Model[InT, OutT], docs: InT, is_train: bool) -> Tuple[OutT, Callable]:
    if not docs:
        return [], lambda dYs: []
    rows = token_rows(model, docs, is_train)
    ops = model.ops
    E, unk = model.get_param("E"), model.get_param("unk")
    n_trainable = E.shape[0]
    trained = numpy.flatnonzero((rows >= 0) & (rows < n_trainable))
    fixed = numpy.flatnonzero(rows >= n_trainable)
    unknown = numpy.flatnonzero(rows < 0)
    Y = ops.alloc2f(rows.size, unk.shape[1])
    Y[ops.asarray1i(trained)] = E[ops.asarray1i(rows[trained])]
    Y[ops.asarray1i(fixed)] = ops.asarray2f(docs[0].vocab.vectors.data[rows[fixed]]) if fixed.size else 0.0
    Y[ops.asarray1i(unknown)] = unk
    lengths = [len(doc) for doc in docs]
    Ys = ops.unflatten(Y, ops.asarray1i(lengths))

    def backprop(dYs: OutT) -> InT:
        if dYs:
            dY = ops.flatten(dYs)
            dE = ops.alloc2f(*E.shape)
            ops.scatter_add(dE, ops.asarray1i(rows[trained]), dY[ops.asarray1i(trained)])
            model.inc_grad("E", dE)
            model.inc_grad("unk", dY[ops.asarray1i(unknown)].sum(axis=0, keepdims=True))
        return []

    return Ys, backprop
