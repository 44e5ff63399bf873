"""Loading refuses, with a ValueError naming what was expected and what was found, a
component saved by another component type, one whose labels do not fit its weights,
and weights with flipped bytes (their sha256 is saved next to them)."""
import shutil

import pytest
import spacy
import srsly

from spacy_seqlab.components.saved import HEADER

from .tiny_pipelines import model_config, train

FACTORIES = {
    "crf_tagger": model_config("spacy_seqlab.CRFTagger.v1", "cnn"),
    "crf_ner": model_config("spacy_seqlab.CRFTagger.v1", "cnn"),
    "memm_tagger": model_config("spacy_seqlab.MEMMTagger.v1", "cnn"),
    "hmm_tagger": {},
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """factory -> (trained pipeline, its directory)."""
    root = tmp_path_factory.mktemp("saved")
    out = {}
    for factory, config in FACTORIES.items():
        nlp = train(factory, config)
        nlp.to_disk(root / factory)
        out[factory] = (nlp, root / factory)
    return out


def fresh(factory: str):
    """A new component (loaded as spacy.load loads it: without its own vocab)."""
    return spacy.blank("en").add_pipe(factory, config=FACTORIES[factory])


@pytest.mark.parametrize("found,expected", [
    ("crf_ner", "crf_tagger"), ("memm_tagger", "crf_tagger"), ("crf_tagger", "memm_tagger"),
    ("hmm_tagger", "crf_tagger"), ("crf_tagger", "hmm_tagger"), ("crf_tagger", "crf_ner"),
])
def test_another_component_type_is_refused(saved, found, expected):
    nlp, path = saved[found]
    message = rf"\[{expected}\] could not load .*saved by a '{found}' component, but this component is a '{expected}'"
    with pytest.raises(ValueError, match=message):
        fresh(expected).from_disk(path / found, exclude=["vocab"])
    with pytest.raises(ValueError, match=message):
        fresh(expected).from_bytes(nlp.get_pipe(found).to_bytes())


def test_spacy_load_refuses_a_swapped_directory(saved, tmp_path):
    """A pipeline whose crf_tagger directory was overwritten by a crf_ner's."""
    shutil.copytree(saved["crf_tagger"][1], tmp_path / "nlp")
    shutil.rmtree(tmp_path / "nlp" / "crf_tagger")
    shutil.copytree(saved["crf_ner"][1] / "crf_ner", tmp_path / "nlp" / "crf_tagger")
    with pytest.raises(ValueError, match="saved by a 'crf_ner' component, but this component is a 'crf_tagger'"):
        spacy.load(tmp_path / "nlp")


def test_a_directory_without_a_seqlab_header_is_refused(tmp_path):
    """spaCy's own tagger writes cfg and model but no header."""
    nlp = spacy.blank("en")
    nlp.add_pipe("tagger").add_label("NN")
    nlp.initialize()
    nlp.to_disk(tmp_path)
    with pytest.raises(ValueError, match=r"\[crf_tagger\] could not load .*no valid spacy_seqlab header"):
        fresh("crf_tagger").from_disk(tmp_path / "tagger", exclude=["vocab"])


@pytest.mark.parametrize("factory", ["crf_tagger", "crf_ner", "memm_tagger"])
def test_a_label_count_that_does_not_fit_the_weights_is_refused(saved, factory, tmp_path):
    shutil.copytree(saved[factory][1] / factory, tmp_path / factory)
    cfg = srsly.read_json(tmp_path / factory / "cfg")
    n = len(cfg["labels"])
    cfg["labels"] = cfg["labels"] + ["EXTRA"]
    srsly.write_json(tmp_path / factory / "cfg", cfg)
    with pytest.raises(ValueError, match=rf"\[{factory}\] could not load .*its cfg has {n + 1} labels .*sized for"):
        fresh(factory).from_disk(tmp_path / factory, exclude=["vocab"])


def flip(data: bytes) -> bytes:
    """``data`` with one byte in the middle inverted (the length is unchanged)."""
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]


@pytest.mark.parametrize("factory", list(FACTORIES))
def test_flipped_bytes_in_the_weights_are_refused(saved, factory, tmp_path):
    nlp, path = saved[factory]
    shutil.copytree(path / factory, tmp_path / factory)
    weights = tmp_path / factory / "model"
    weights.write_bytes(flip(weights.read_bytes()))
    message = rf"\[{factory}\] could not load .*the weights are corrupted or were replaced"
    with pytest.raises(ValueError, match=message):
        fresh(factory).from_disk(tmp_path / factory, exclude=["vocab"])
    data = srsly.msgpack_loads(nlp.get_pipe(factory).to_bytes())
    data["model"] = flip(data["model"])
    with pytest.raises(ValueError, match=message):
        fresh(factory).from_bytes(srsly.msgpack_dumps(data))


@pytest.mark.parametrize("factory", list(FACTORIES))
def test_intact_data_loads_and_predicts_the_same(saved, factory):
    nlp, path = saved[factory]
    header = srsly.read_json(path / factory / HEADER)
    assert header["component"] == factory and len(header["weights_sha256"]) == 64
    loaded = spacy.load(path)
    text = "Anna runs to the dog ."
    assert loaded(text).to_json() == nlp(text).to_json()
