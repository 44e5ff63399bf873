"""Label bias, as in the lecture's "will to fight": NN TO VB is right, an MEMM says
MD TO VB.

"will" is MD in most training sentences ("will you fight") and NN in a few ("will to
live"); "to" is always TO and only ever follows NN. Both taggers see one feature per
token (its ORTH, no window), so at "will" the features cannot tell the two readings
apart: only "to" can, through the transition MD -> TO that never occurs. The MEMM
normalizes per token, so P(TO | MD, "to") is ~1 like P(TO | NN, "to"): that evidence is
lost and the majority tag of "will" wins. The CRF normalizes per sequence and keeps it.
"""
from typing import List, Tuple

import numpy
import pytest
import spacy
from spacy.language import Language
from spacy.training import Example
from spacy.util import fix_random_seed
from thinc.api import Adam

import spacy_seqlab.components.memm_tagger as memm_tagger
from spacy_seqlab.layers.crf import crf_decode, crf_loss
from spacy_seqlab.layers.memm import local_log_probs

# one hashed ORTH feature per token, no context window: the same for both taggers
TOK2VEC = {
    "@architectures": "spacy_seqlab.HashFeatures.v1",
    "width": 16,
    "attrs": ["ORTH"],
    "rows": [1000],
    "window_size": 0,
}
ARCHITECTURES = {"memm_tagger": "spacy_seqlab.MEMMTagger.v1", "crf_tagger": "spacy_seqlab.CRFTagger.v1"}
CORPUS: List[Tuple[str, List[str]]] = [
    *[(f"will {subj} {verb}", ["MD", "PRP", "VB"])
      for subj, verb in [("you", "fight"), ("we", "go"), ("they", "win"),
                         ("you", "live"), ("we", "fight"), ("they", "go")]],
    ("will to live", ["NN", "TO", "VB"]),
    ("will to win", ["NN", "TO", "VB"]),
]
TEXT = "will to fight"  # not a training sentence
STEPS = 200
LEARN_RATE = 0.05


def train_toy(factory: str) -> Language:
    """``factory`` ("memm_tagger" or "crf_tagger") trained on CORPUS: same features,
    seed, optimizer and number of full-batch steps."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    model = {"@architectures": ARCHITECTURES[factory], "tok2vec": TOK2VEC}
    nlp.add_pipe(factory, name="tagger", config={"model": model})
    examples = [Example.from_dict(nlp.make_doc(text), {"tags": tags}) for text, tags in CORPUS]
    nlp.initialize(lambda: examples)
    optimizer = Adam(LEARN_RATE)
    for _ in range(STEPS):
        nlp.update(examples, sgd=optimizer)
    return nlp


def tags(nlp: Language, text: str = TEXT) -> List[str]:
    return [token.tag_ for token in nlp(text)]


def test_memm_suffers_label_bias_and_crf_does_not():
    memm = train_toy("memm_tagger")
    assert tags(memm) == ["MD", "TO", "VB"]
    tagger = memm.get_pipe("tagger")
    scores = tagger.scores([memm.make_doc(TEXT)])
    log_p = local_log_probs(numpy, scores.emissions, scores.potentials)
    md, nn, to = (tagger.labels.index(tag) for tag in ("MD", "NN", "TO"))
    # "to" is TO whatever precedes it: the never seen MD -> TO costs the MEMM nothing
    assert float(log_p[0, 1, md, to]) == pytest.approx(0.0, abs=0.01)
    assert float(log_p[0, 1, nn, to]) == pytest.approx(0.0, abs=0.01)
    crf = train_toy("crf_tagger")
    assert tags(crf) == ["NN", "TO", "VB"]


def test_memm_with_global_normalization_gets_it_right(monkeypatch):
    """The same MEMM potentials, trained with the CRF loss and decoded with the CRF's
    Viterbi, pick NN TO VB: the MEMM's mistake comes from its normalization alone."""
    monkeypatch.setattr(memm_tagger.MEMMTagger, "chain_loss", staticmethod(crf_loss))
    monkeypatch.setattr(memm_tagger, "memm_decode", lambda ops, scores, decoding: crf_decode(ops, scores))
    assert tags(train_toy("memm_tagger")) == ["NN", "TO", "VB"]
