"""Every config in configs/ validates (as `spacy debug config` does) and trains a few
steps on a tiny in-memory corpus with `spacy train`."""
import json
from pathlib import Path

import pytest
import spacy
from spacy.cli.train import train
from spacy.schemas import ConfigSchemaTraining
from spacy.tokens import Doc, DocBin
from spacy.util import load_config, load_model_from_config, registry, resolve_dot_names

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.cfg"))

# (word, XPOS, UPOS)
SENTENCES = [
    [("I", "PRP", "PRON"), ("like", "VBP", "VERB"), ("green", "JJ", "ADJ"), ("eggs", "NNS", "NOUN"), (".", ".", "PUNCT")],
    [("She", "PRP", "PRON"), ("ate", "VBD", "VERB"), ("the", "DT", "DET"), ("cake", "NN", "NOUN"), ("!", ".", "PUNCT")],
    [("Dogs", "NNS", "NOUN"), ("bark", "VBP", "VERB"), ("loudly", "RB", "ADV"), ("at", "IN", "ADP"), ("night", "NN", "NOUN")],
    [("Paris", "NNP", "PROPN"), ("is", "VBZ", "AUX"), ("very", "RB", "ADV"), ("big", "JJ", "ADJ"), (".", ".", "PUNCT")],
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A DocBin with TAG and POS set on every token, used as train and dev."""
    vocab = spacy.blank("en").vocab
    docs = [
        Doc(vocab, words=[w for w, _, _ in sent], tags=[t for _, t, _ in sent], pos=[p for _, _, p in sent])
        for sent in SENTENCES * 3
    ]
    path = tmp_path_factory.mktemp("corpus") / "tiny.spacy"
    DocBin(docs=docs, attrs=["ORTH", "TAG", "POS"]).to_disk(path)
    return path


def paths(corpus: Path) -> dict:
    return {"paths.train": str(corpus), "paths.dev": str(corpus)}


def test_configs_found():
    names = {path.stem for path in CONFIGS}
    assert {"ewt_xpos_crf", "ewt_upos_crf", "ewt_xpos_featcrf", "ewt_upos_featcrf"} <= names


@pytest.mark.parametrize("config_path", CONFIGS, ids=lambda p: p.stem)
def test_config_header(config_path):
    """Each config opens with a two-line comment saying what it trains and how."""
    first, second = config_path.read_text(encoding="utf8").splitlines()[:2]
    assert first.startswith("# ") and second.startswith("# ")
    assert f"configs/{config_path.name}" in first + second


@pytest.mark.parametrize("config_path", CONFIGS, ids=lambda p: p.stem)
def test_config_validates(config_path, corpus):
    """The checks of `spacy debug config`: the pipeline, [training] and the corpora resolve."""
    config = load_config(config_path, overrides=paths(corpus))
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    filled = nlp.config.interpolate()
    T = registry.resolve(filled["training"], schema=ConfigSchemaTraining)
    resolve_dot_names(filled, [T["train_corpus"], T["dev_corpus"]])
    # The main score is the accuracy of the attribute the crf_tagger writes.
    attr = filled["components"]["crf_tagger"]["attr"]
    weights = {k: v for k, v in filled["training"]["score_weights"].items() if v}
    assert weights == {f"{attr}_acc": 1.0}


@pytest.mark.parametrize("config_path", CONFIGS, ids=lambda p: p.stem)
def test_config_trains(config_path, corpus, tmp_path):
    overrides = {**paths(corpus), "training.max_steps": 6, "training.eval_frequency": 3}
    train(config_path, tmp_path, overrides=overrides)
    nlp = spacy.load(tmp_path / "model-last")
    attr = nlp.get_pipe("crf_tagger").cfg["attr"]
    doc = nlp("I like the big cake .")
    assert all(getattr(token, f"{attr}_") for token in doc)
    meta = json.loads((tmp_path / "model-best" / "meta.json").read_text(encoding="utf8"))
    assert 0.0 <= meta["performance"][f"{attr}_acc"] <= 1.0
