"""Each component's default score weights and `assigns` follow its settings (attr,
spans_key): no score column that can only read 0.00 (POS_ACC for a TAG tagger, ENTS_F
for a chunker), in `spacy init config`, `nlp.config`, saved pipelines and
`analyze_pipes`. (The model card of a trained, packaged pipeline: test_packaging.py.)"""
import pytest
import spacy
from spacy.cli.init_config import init_config

ENTS = {"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None}
CHUNKS = {"spans_chunks_f": 1.0, "spans_chunks_p": 0.0, "spans_chunks_r": 0.0, "spans_chunks_per_type": None}
CASES = [  # factory, config, score weights, assigns
    ("crf_tagger", {}, {"tag_acc": 1.0}, ["token.tag"]),
    ("crf_tagger", {"attr": "pos"}, {"pos_acc": 1.0}, ["token.pos"]),
    ("memm_tagger", {"attr": "pos"}, {"pos_acc": 1.0}, ["token.pos"]),
    ("hmm_tagger", {}, {"tag_acc": 1.0}, ["token.tag"]),
    ("hmm_tagger", {"attr": "pos"}, {"pos_acc": 1.0}, ["token.pos"]),
    ("crf_ner", {}, ENTS, ["doc.ents", "token.ent_iob", "token.ent_type"]),
    ("crf_ner", {"spans_key": "chunks"}, CHUNKS, ["doc.spans"]),
]


@pytest.mark.parametrize("factory,config,weights,assigns", CASES)
def test_weights_and_assigns_follow_the_settings(factory, config, weights, assigns, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe(factory, config=config)
    assert dict(nlp.config["training"]["score_weights"]) == weights
    assert nlp.analyze_pipes()["summary"][factory]["assigns"] == assigns
    # rebuilt from its config, and loaded from disk (spacy.load goes through from_config)
    assert dict(spacy.blank("en").from_config(nlp.config).config["training"]["score_weights"]) == weights
    nlp.to_disk(tmp_path)
    assert dict(spacy.load(tmp_path).config["training"]["score_weights"]) == weights


def test_init_config_weights():
    """`spacy init config -p crf_tagger` (and -p crf_ner): the default settings' scores."""
    assert dict(init_config(lang="en", pipeline=["crf_tagger"])["training"]["score_weights"]) == {"tag_acc": 1.0}
    assert dict(init_config(lang="en", pipeline=["crf_ner"])["training"]["score_weights"]) == ENTS


def test_a_tagger_and_a_chunker_share_the_weights():
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_tagger", config={"attr": "pos"})
    nlp.add_pipe("crf_ner", name="chunker", config={"spans_key": "chunks"})
    weights = nlp.config["training"]["score_weights"]
    assert weights == {"pos_acc": 0.5, "spans_chunks_f": 0.5, "spans_chunks_p": 0.0,
                       "spans_chunks_r": 0.0, "spans_chunks_per_type": None}
    # a component renamed or removed takes its meta along
    nlp.rename_pipe("chunker", "np_chunker")
    assert nlp.analyze_pipes()["summary"]["np_chunker"]["assigns"] == ["doc.spans"]
    nlp.remove_pipe("np_chunker")
    nlp.add_pipe("crf_ner", name="np_chunker")
    assert nlp.analyze_pipes()["summary"]["np_chunker"]["assigns"][0] == "doc.ents"
