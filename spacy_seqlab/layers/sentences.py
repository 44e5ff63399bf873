"""A tok2vec whose context encoder runs over each sentence on its own, as the papers'
BiLSTM taggers do (Lample et al. 2016, Ma & Hovy 2016): the token vectors of a doc are
split at its sentence starts, encoded sentence by sentence, and joined again.

A recurrent encoder trained on sentences (``gold_preproc = true``) and then run over a
whole document sees sequences many times longer than any it learned from: on CoNLL-2003
that costs a BiLSTM-CRF 4.5 to 5 F1 (dev and test). Splitting at the doc's sentence
starts makes prediction see what training saw. A doc without sentence boundaries (no
parser, ``senter`` or ``sentencizer`` ran before, and none were given) is one sequence,
with a warning when it is longer than any sentence should be.
"""
import warnings
from typing import Callable, List, Optional, Sequence, Tuple

import numpy
from spacy.attrs import SENT_START
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d

InT = List[Doc]
OutT = List[Floats2d]

LONG_UNSPLIT = 250  # tokens: longer than almost any sentence of the corpora trained on
LONG_UNSPLIT_WARNING = (
    f"spacy_seqlab.SentenceTok2Vec.v1 got a doc of over {LONG_UNSPLIT} tokens with no sentence "
    "boundaries and encodes it as one sequence, unlike the sentences it was trained on: add a "
    "'sentencizer' or 'senter' before this component (nlp.add_pipe('sentencizer', first=True)) "
    "or give the docs sent_starts"
)


@registry.architectures("spacy_seqlab.SentenceTok2Vec.v1")
def SentenceTok2Vec(
    embed: Model[List[Doc], List[Floats2d]], encode: Model[List[Floats2d], List[Floats2d]]
) -> Model[InT, OutT]:
    """``spacy.Tok2Vec.v2`` with ``encode`` (e.g. ``spacy_seqlab.RNNEncoder.v1``) run on
    each sentence of each doc. Output: ``(n_tokens, encode's nO)`` per doc."""
    return Model(
        "sentence_tok2vec",
        forward,
        init=init,
        layers=[embed, encode],
        dims={"nO": encode.get_dim("nO") if encode.has_dim("nO") else None},
    )


def sentence_lengths(doc: Doc) -> List[int]:
    """The token count of each sentence of ``doc`` (one entry for a doc with no
    sentence starts set; ``[0]`` for an empty doc)."""
    starts = numpy.flatnonzero(doc.to_array(SENT_START).reshape(-1) == 1)
    bounds = sorted({0, *starts.tolist(), len(doc)})
    return [end - start for start, end in zip(bounds, bounds[1:])] or [0]


def _split(model: Model, Xs: Sequence[Floats2d], lengths: List[List[int]]) -> List[Floats2d]:
    """Each doc's array cut into its sentences' rows; empty docs give no piece."""
    pieces: List[Floats2d] = []
    for X, doc_lengths in zip(Xs, lengths):
        if len(doc_lengths) == 1:
            pieces.extend([X] if X.shape[0] else [])
        else:
            cuts = numpy.cumsum(doc_lengths)[:-1].tolist()
            pieces.extend(model.ops.xp.split(X, cuts, axis=0))
    return pieces


def _join(model: Model, pieces: Sequence[Floats2d], lengths: List[List[int]], width: int) -> List[Floats2d]:
    """The inverse of ``_split``: each doc's sentence arrays stacked again."""
    out: List[Floats2d] = []
    i = 0
    for doc_lengths in lengths:
        if sum(doc_lengths) == 0:
            out.append(model.ops.alloc2f(0, width))
        elif len(doc_lengths) == 1:
            out.append(pieces[i])
            i += 1
        else:
            out.append(model.ops.xp.concatenate(pieces[i : i + len(doc_lengths)], axis=0))
            i += len(doc_lengths)
    return out


def forward(model: Model[InT, OutT], docs: InT, is_train: bool) -> Tuple[OutT, Callable]:
    embed, encode = model.layers
    lengths = [sentence_lengths(doc) for doc in docs]
    if any(len(doc_lengths) == 1 and doc_lengths[0] > LONG_UNSPLIT for doc_lengths in lengths):
        warnings.warn(LONG_UNSPLIT_WARNING, stacklevel=2)
    Xs, backprop_embed = embed(docs, is_train)
    pieces = _split(model, Xs, lengths)
    # only empty docs (or none): no sequence to encode
    Ys, backprop_encode = encode(pieces, is_train) if pieces else ([], lambda dYs: [])
    width_in = Xs[0].shape[1] if len(Xs) else 0
    width_out = Ys[0].shape[1] if len(Ys) else model.get_dim("nO")

    def backprop(dYs: OutT) -> InT:
        dXs = backprop_encode(_split(model, dYs, lengths))
        return backprop_embed(_join(model, dXs, lengths, width_in))

    return _join(model, Ys, lengths, width_out), backprop


def init(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    embed, encode = model.layers
    if X is None:
        embed.initialize()
        encode.initialize()
    else:
        embed.initialize(X=X)
        lengths = [sentence_lengths(doc) for doc in X]
        encode.initialize(X=_split(model, embed.predict(X), lengths))
    model.set_dim("nO", encode.get_dim("nO"))
