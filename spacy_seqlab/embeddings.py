"""Word + character token embeddings: the ``embed`` part of ``spacy.Tok2Vec.v2``."""
from typing import List, Optional

from spacy.ml.models import MultiHashEmbed
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Maxout, Model, chain, concatenate, with_array
from thinc.types import Floats2d


@registry.architectures("spacy_seqlab.CharWordEmbed.v1")
def build_char_word_embed(
    width: int,
    attrs: List[str],
    rows: List[int],
    char_embed: Model[List[Doc], List[Floats2d]],
    include_static_vectors: bool = False,
    maxout_pieces: int = 3,
) -> Model[List[Doc], List[Floats2d]]:
    """spaCy's ``MultiHashEmbed`` word features (``width`` wide) concatenated with a
    character layer (e.g. ``spacy_seqlab.CharCNN.v1``), projected to ``width`` by a
    layer-normalized Maxout. Output: ``(n_tokens, width)`` per doc.

    The characters give words unseen in training a learned representation (``bigly``
    ends like an adverb), where their hashed word rows carry nothing learned about them.
    """
    words = MultiHashEmbed(
        width=width, attrs=attrs, rows=rows, include_static_vectors=include_static_vectors
    )
    return _project(concatenate(words, char_embed), width, maxout_pieces)


@registry.architectures("spacy_seqlab.TransformerCharWordEmbed.v1")
def build_transformer_char_word_embed(
    transformer: Model[List[Doc], List[Floats2d]],
    width: int,
    attrs: List[str],
    rows: List[int],
    char_embed: Model[List[Doc], List[Floats2d]],
    include_static_vectors: bool = True,
    maxout_pieces: int = 3,
) -> Model[List[Doc], List[Floats2d]]:
    """A transformer's token vectors (e.g. ``spacy-transformers.TransformerListener.v1``
    with ``spacy_seqlab.PiecePooling.v1``) beside ``MultiHashEmbed`` word features (with
    the static vectors of ``[initialize] vectors``) and a character layer, concatenated
    and projected to ``width`` by a layer-normalized Maxout. Output: ``(n_tokens, width)``
    per doc.

    An uncased transformer (MiniLM) sees no case: the characters and SHAPE bring it back;
    the static vectors add word knowledge from a larger corpus.
    """
    words = MultiHashEmbed(
        width=width, attrs=attrs, rows=rows, include_static_vectors=include_static_vectors
    )
    return _project(concatenate(transformer, words, char_embed), width, maxout_pieces)


def _project(
    features: Model[List[Doc], List[Floats2d]], width: int, maxout_pieces: int
) -> Model[List[Doc], List[Floats2d]]:
    """``features`` -> layer-normalized Maxout to ``width`` per token."""
    model = chain(
        features,
        with_array(Maxout(nO=width, nP=maxout_pieces, normalize=True, dropout=0.0)),
    )
    model.set_dim("nO", width)
    return model


@registry.architectures("spacy_seqlab.WordCharEmbed.v1")
def build_word_char_embed(
    words: Model[List[Doc], List[Floats2d]],
    char_embed: Model[List[Doc], List[Floats2d]],
    features: Optional[Model[List[Doc], List[Floats2d]]] = None,
) -> Model[List[Doc], List[Floats2d]]:
    """The papers' token representation: a word embedding (e.g.
    ``spacy_seqlab.FineTunedVectors.v1``) and a character layer, plus optional extra
    ``features`` (e.g. ``spacy.MultiHashEmbed.v2`` rows), concatenated with no projection.
    Output: ``(n_tokens, sum of the parts' widths)`` per doc; the encoder (e.g.
    ``spacy_seqlab.RNNEncoder.v1``, whose ``dropout`` applies to this input) infers it.
    """
    parts = [words, char_embed] + ([features] if features is not None else [])
    return concatenate(*parts)
