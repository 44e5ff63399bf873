"""Every config in configs/ validates (as `spacy debug config` does) and trains a few
steps on a tiny in-memory corpus with `spacy train`."""
import json
from pathlib import Path

import pytest
import spacy
from spacy.cli.train import train
from spacy.schemas import ConfigSchemaTraining
from spacy.tokens import Doc, DocBin, Span
from spacy.util import load_config, load_model_from_config, registry, resolve_dot_names

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
    """Train and dev on the tiny corpus; transformer configs get the tiny local BERT."""
    out = {"paths.train": str(corpus), "paths.dev": str(corpus)}
    if "transformer" in load_config(config_path, interpolate=False)["paths"]:
        out["paths.transformer"] = str(request.getfixturevalue("tiny_transformer"))
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
    """The checks of `spacy debug config`: the pipeline, [training] and the corpora resolve."""
    config = load_config(config_path, overrides=paths(corpus, config_path, request))
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    filled = nlp.config.interpolate()
    T = registry.resolve(filled["training"], schema=ConfigSchemaTraining)
    resolve_dot_names(filled, [T["train_corpus"], T["dev_corpus"]])
    # Selected on the main score of each head (accuracy of the attribute, span F).
    expected = main_scores(filled["components"])
    weights = {k: v for k, v in filled["training"]["score_weights"].items() if v}
    assert expected and set(weights) == set(expected.values())


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
