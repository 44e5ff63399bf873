"""Registered architectures that compose spacy-seqlab's layers for configs."""
from typing import List, Optional

from spacy.ml.featureextractor import FeatureExtractor
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import (
    HashEmbed,
    Linear,
    Model,
    chain,
    concatenate,
    expand_window,
    list2ragged,
    ragged2list,
    with_array,
)
from thinc.types import Floats2d

from .layers.crf import CRF, CRFScores
from .layers.memm import MEMM


@registry.architectures("spacy_seqlab.CRFTagger.v1")
def build_crf_tagger(
    tok2vec: Model[List[Doc], List[Floats2d]], nO: Optional[int] = None
) -> Model[List[Doc], CRFScores]:
    """tok2vec -> Linear (emission scores per label) -> linear-chain CRF.

    The refs "tok2vec", "output_layer" (the Linear) and "crf" are set for components.
    """
    return _chain_tagger(tok2vec, Linear(nO=nO), CRF(nO=nO), "crf")


@registry.architectures("spacy_seqlab.MEMMTagger.v1")
def build_memm_tagger(
    tok2vec: Model[List[Doc], List[Floats2d]], nO: Optional[int] = None
) -> Model[List[Doc], CRFScores]:
    """tok2vec -> Linear (emission scores per label) -> maximum-entropy Markov model
    (locally normalized: P(y_i | y_{i-1}, x) = softmax(E[i] + T[y_{i-1}])).

    The refs "tok2vec", "output_layer" (the Linear) and "memm" are set for components.
    """
    return _chain_tagger(tok2vec, Linear(nO=nO), MEMM(nO=nO), "memm")


def _chain_tagger(
    tok2vec: Model[List[Doc], List[Floats2d]],
    output_layer: Model[Floats2d, Floats2d],
    chain_layer: Model[List[Floats2d], CRFScores],
    chain_ref: str,
) -> Model[List[Doc], CRFScores]:
    model = chain(tok2vec, with_array(output_layer), chain_layer)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("output_layer", output_layer)
    model.set_ref(chain_ref, chain_layer)
    return model


@registry.architectures("spacy_seqlab.HashFeatures.v1")
def build_hash_features(
    width: int, attrs: List[str], rows: List[int], window_size: int = 1
) -> Model[List[Doc], List[Floats2d]]:
    """Hashed lexical features of each token and its ``window_size`` neighbours on
    either side, embedded with no hidden layer.

    Every step is linear, so ``HashFeatures -> CRFTagger`` is the classic feature-based
    linear-chain CRF (indicator features of word, prefix, suffix and shape in a window),
    with the feature weights factored through ``width`` dimensions per attribute.
    Output width: ``width * len(attrs) * (2 * window_size + 1)``.
    """
    if len(attrs) != len(rows):
        raise ValueError(
            f"HashFeatures needs one table size per attribute: got {len(attrs)} "
            f"attrs and {len(rows)} rows"
        )
    embeddings = [
        HashEmbed(nO=width, nV=n_rows, column=i, seed=7 + i)
        for i, n_rows in enumerate(rows)
    ]
    return chain(
        FeatureExtractor(attrs),
        list2ragged(),
        with_array(concatenate(*embeddings)),
        expand_window(window_size=window_size),
        ragged2list(),
    )
