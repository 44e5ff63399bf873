"""Every config in configs/ passes `spacy debug config` (its own function: no
auto-fill, so a missing block fails) and trains a few steps on a tiny in-memory corpus
with `spacy train`; its score weights are the scores its components report."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.cli.debug_config import debug_config
from spacy.cli.train import train
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.util import load_config, load_model_from_config

from spacy_seqlab.extras import install_hint

from .missing_packages import skip_without_torch, without_packages

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.cfg"))

# (word, XPOS, UPOS); entities and chunks as (start, end, label) token spans
SENTENCES = [
    [("I", "PRP", "PRON"), ("like", "VBP", "VERB"), ("green", "JJ", "ADJ"), ("eggs", "NNS", "NOUN"), (".", ".", "PUNCT")],
    [("She", "PRP", "PRON"), ("ate", "VBD", "VERB"), ("the", "DT", "DET"), ("cake", "NN", "NOUN"), ("!", ".", "PUNCT")],
    [("Dogs", "NNS", "NOUN"), ("bark", "VBP", "VERB"), ("loudly", "RB", "ADV"), ("at", "IN", "ADP"), ("night", "NN", "NOUN")],
    [("Paris", "NNP", "PROPN"), ("is", "VBZ", "AUX"), ("very", "RB", "ADV"), ("big", "JJ", "ADJ"), (".", ".", "PUNCT")],
]
ENTS = [[], [], [], [(0, 1, "LOC")]]
CHUNKS = [[(0, 1, "NP"), (1, 2, "VP"), (2, 4, "NP")], [(0, 1, "NP"), (1, 2, "VP"), (2, 4, "NP")],
          [(0, 1, "NP"), (1, 2, "VP"), (3, 4, "PP"), (4, 5, "NP")], [(0, 1, "NP"), (1, 2, "VP")]]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A DocBin with TAG, POS, entities and doc.spans["chunks"] on every doc, used as
    train and dev."""
    vocab = spacy.blank("en").vocab
    docs = []
    for sent, ents, chunks in list(zip(SENTENCES, ENTS, CHUNKS)) * 3:
        doc = Doc(vocab, words=[w for w, _, _ in sent], tags=[t for _, t, _ in sent], pos=[p for _, _, p in sent])
        doc.set_ents([Span(doc, *ent) for ent in ents], default="outside")
        doc.spans["chunks"] = [Span(doc, *chunk) for chunk in chunks]
        docs.append(doc)
    path = tmp_path_factory.mktemp("corpus") / "tiny.spacy"
    DocBin(docs=docs).to_disk(path)
    return path


def paths(corpus: Path, config_path: Path, request) -> dict:
    """Train and dev on the tiny corpus; transformer configs get the tiny local BERT,
    vectors configs the tiny local vectors table."""
    skip_without_torch(config_path.read_text(encoding="utf8"))
    out = {"paths.train": str(corpus), "paths.dev": str(corpus)}
    config_paths = load_config(config_path, interpolate=False)["paths"]
    if "transformer" in config_paths:
        out["paths.transformer"] = str(request.getfixturevalue("tiny_transformer"))
    if config_paths.get("vectors") is not None:  # the *_vectors_* configs: a tiny table
        out["paths.vectors"] = str(request.getfixturevalue("tiny_vectors"))
    return out


def main_scores(components: dict) -> dict:
    """The score each trainable component is selected on: component name -> key."""
    keys = {}
    for name, cfg in components.items():
        factory = cfg.get("factory")
        if factory in ("crf_tagger", "memm_tagger", "hmm_tagger"):
            keys[name] = f"{cfg['attr']}_acc"
        elif factory == "tagger":
            keys[name] = "tag_acc"
        elif factory == "crf_ner":
            keys[name] = "ents_f" if cfg["spans_key"] is None else f"spans_{cfg['spans_key']}_f"
        elif factory == "ner":
            keys[name] = "ents_f"
    return keys


def reported_scores(components: dict) -> set:
    """Every score the components report: a seqlab tagger its attribute's accuracy,
    crf_ner the P/R/F of doc.ents or of its span group; spaCy's components the scores
    of their (static) factory meta."""
    keys = set()
    for cfg in components.values():
        factory = cfg.get("factory")
        if factory in ("crf_tagger", "memm_tagger", "hmm_tagger"):
            keys.add(f"{cfg['attr']}_acc")
        elif factory == "crf_ner":
            prefix = "ents" if cfg["spans_key"] is None else f"spans_{cfg['spans_key']}"
            keys |= {f"{prefix}_{x}" for x in ("f", "p", "r", "per_type")}
        elif factory is not None:
            keys |= set(Language.get_factory_meta(factory).default_score_weights or {})
    return keys


def test_configs_found():
    names = {path.stem for path in CONFIGS}
    assert {"ewt_xpos_crf", "ewt_upos_crf", "ewt_xpos_featcrf", "ewt_upos_featcrf",
            "conll03_ner_crf", "conll00_chunk_crf", "conll03_tagger_ner_crf",
            "ewt_xpos_trf_crf", "ewt_upos_trf_crf", "conll03_trf_crf", "conll03_trf_tagger_ner_crf",
            "ewt_xpos_trf_softmax", "ewt_upos_trf_softmax", "conll03_trf_softmax"} <= names


@pytest.mark.parametrize("config_path", CONFIGS, ids=lambda p: p.stem)
def test_config_header(config_path):
    """Each config opens with a two-line comment saying what it trains and how."""
    first, second = config_path.read_text(encoding="utf8").splitlines()[:2]
    assert first.startswith("# ") and second.startswith("# ")
    assert f"configs/{config_path.name}" in "\n".join(config_path.read_text(encoding="utf8").splitlines()[:3])


@pytest.mark.parametrize("config_path", CONFIGS, ids=lambda p: p.stem)
def test_config_validates(config_path, corpus, request):
    """`spacy debug config` passes: the pipeline, [initialize], [training] and the
    corpora resolve from the file as written. Selected on the main score of each head
    (accuracy of the attribute, span F), with no column that no component reports."""
    overrides = paths(corpus, config_path, request)
    debug_config(config_path, overrides=overrides)
    nlp = load_model_from_config(load_config(config_path, overrides=overrides))
    components = nlp.config.interpolate()["components"]
    weights = nlp.config["training"]["score_weights"]
    expected = main_scores(components)
    assert expected and {k for k, v in weights.items() if v} == set(expected.values())
    assert set(weights) <= reported_scores(components)


def test_debug_config_does_not_fill_a_missing_block(corpus, tmp_path):
    """The config test checks the file as written: a config without its
    [nlp.tokenizer] block fails (spacy train would have filled it in)."""
    text = (CONFIGS[0].parent / "ewt_xpos_crf.cfg").read_text(encoding="utf8")
    block = '[nlp.tokenizer]\n@tokenizers = "spacy.Tokenizer.v1"\n'
    assert block in text
    broken = tmp_path / "no_tokenizer.cfg"
    broken.write_text(text.replace(block, ""), encoding="utf8")
    with pytest.raises(SystemExit):
        debug_config(broken, overrides={"paths.train": str(corpus), "paths.dev": str(corpus)})


@pytest.mark.parametrize("config_path", CONFIGS, ids=lambda p: p.stem)
def test_transformer_configs_declare_their_extra(config_path):
    config = load_config(config_path, interpolate=False)
    before_creation = config["nlp"]["before_creation"]
    if "transformer" in config["components"]:
        assert before_creation == {"@callbacks": "spacy_seqlab.require_extra.v1", "extra": "transformers"}
    else:
        assert before_creation is None


def test_transformer_config_without_the_extra_names_it(corpus):
    """`python -m spacy debug config` on a transformer config, where spacy-transformers
    is not installed, stops with the pip line of the extra (not "[E002] Can't find
    factory for 'transformer'")."""
    config = CONFIGS[0].parent / "ewt_upos_trf_crf.cfg"
    argv = ["spacy", "debug", "config", str(config), "--paths.train", str(corpus), "--paths.dev", str(corpus)]
    code = without_packages(("spacy_transformers", "transformers")) + (
        f"sys.argv = {argv!r}\nfrom spacy.cli import setup_cli\nsetup_cli()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert install_hint("transformers") in result.stderr
    assert "E002" not in result.stderr + result.stdout


@pytest.mark.parametrize("config_path", CONFIGS, ids=lambda p: p.stem)
def test_config_trains(config_path, corpus, tmp_path, request):
    overrides = {**paths(corpus, config_path, request), "training.max_steps": 6,
                 "training.eval_frequency": 3}
    train(config_path, tmp_path, overrides=overrides)
    nlp = spacy.load(tmp_path / "model-last")
    doc = nlp("I like the big cake in Paris .")
    components = {name: nlp.get_pipe_config(name) for name in nlp.pipe_names}
    for name, cfg in components.items():
        if cfg["factory"] in ("crf_tagger", "memm_tagger", "hmm_tagger", "tagger"):
            attr = cfg.get("attr", "tag")
            assert all(getattr(token, f"{attr}_") for token in doc)
        elif cfg["factory"] == "crf_ner" and cfg["spans_key"] is not None:
            assert cfg["spans_key"] in doc.spans
    meta = json.loads((tmp_path / "model-best" / "meta.json").read_text(encoding="utf8"))
    for key in main_scores(components).values():
        assert 0.0 <= meta["performance"][key] <= 1.0
    # the model card (spacy package) lists only scores that the components report
    scores = {key for key in meta["performance"] if not key.endswith("_loss")}
    assert scores <= reported_scores(components)
