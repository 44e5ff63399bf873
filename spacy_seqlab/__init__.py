"""spacy-seqlab: structured sequence labeling for spaCy.

Importing the package registers its factories, architectures, layers and scorers;
installed, the same names resolve through entry points with no import.
"""
from . import architectures, embeddings, extras, optimizers, readers, schedules, scorers  # noqa: F401  (registrations)
from .components.crf_ner import Analysis, CRFEntityRecognizer  # noqa: F401
from .components.crf_tagger import CRFTagger, confidence_extension  # noqa: F401
from .components.hmm_tagger import HMMTagger  # noqa: F401
from .components.memm_tagger import MEMMTagger  # noqa: F401
from .layers import chars, pooling, rnn, sentences, word_vectors  # noqa: F401
from .layers.crf import CRF  # noqa: F401

__version__ = "0.1.0"
