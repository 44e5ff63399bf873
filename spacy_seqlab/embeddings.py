"""Word + character token embeddings: the ``embed`` part of ``spacy.Tok2Vec.v2``."""
from typing import List

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
    model = chain(
        concatenate(words, char_embed),
        with_array(Maxout(nO=width, nP=maxout_pieces, normalize=True, dropout=0.0)),
    )
    model.set_dim("nO", width)
    return model
