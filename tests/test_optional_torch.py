"""torch is optional (the ``recurrent`` extra): without it every module but the torch
one imports, a CNN crf_tagger trains, and a recurrent architecture fails when it is
built, naming the extra."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from spacy_seqlab.extras import install_hint
from spacy_seqlab.layers.torch_wrapper import require_torch

from .missing_packages import without_packages

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
RECURRENT_EXTRA = install_hint("recurrent")

# A core install: torch and what needs it (the transformers extra) are absent.
WITHOUT_TORCH = without_packages(("torch", "spacy_transformers", "transformers")) + f"""
import importlib, json, pkgutil
import spacy, spacy_seqlab, thinc.compat
from spacy.training import Example
from spacy.util import fix_random_seed, load_config, load_model_from_config

out = {{"has_torch": thinc.compat.has_torch, "import_errors": {{}}, "build_errors": {{}}}}
for info in pkgutil.walk_packages(spacy_seqlab.__path__, "spacy_seqlab."):
    try:
        importlib.import_module(info.name)
    except ImportError as err:
        out["import_errors"][info.name] = str(err)

fix_random_seed(0)
nlp = spacy.blank("en")
nlp.add_pipe("crf_tagger")  # the default model: spaCy's CNN tok2vec
egs = [Example.from_dict(nlp.make_doc("I like ham"), {{"tags": ["PRP", "VBP", "NN"]}})]
optimizer = nlp.initialize(lambda: egs)
out["losses"] = [nlp.update(egs, sgd=optimizer)["crf_tagger"] for _ in range(20)]
out["tags"] = [t.tag_ for t in nlp("I like ham")]

encoder = {{"@architectures": "spacy_seqlab.RNNEncoder.v1", "width": 8}}
char_lstm = {{"@architectures": "spacy_seqlab.CharBiLSTM.v1", "width": 8}}
embed = {{"@architectures": "spacy_seqlab.CharWordEmbed.v1", "width": 8, "attrs": ["NORM"],
          "rows": [50], "char_embed": char_lstm}}
cnn = {{"@architectures": "spacy.MaxoutWindowEncoder.v2", "width": 8, "window_size": 1,
        "maxout_pieces": 2, "depth": 1}}
tok2vecs = {{
    "RNNEncoder": {{"@architectures": "spacy.Tok2Vec.v2", "embed": {{
        "@architectures": "spacy.MultiHashEmbed.v2", "width": 8, "attrs": ["NORM"], "rows": [50],
        "include_static_vectors": False}}, "encode": encoder}},
    "CharBiLSTM": {{"@architectures": "spacy.Tok2Vec.v2", "embed": embed, "encode": cnn}},
}}
for name, tok2vec in tok2vecs.items():
    model = {{"@architectures": "spacy_seqlab.CRFTagger.v1", "tok2vec": tok2vec}}
    try:
        spacy.blank("en").add_pipe("crf_tagger", config={{"model": model}})
    except ImportError as err:
        out["build_errors"][name] = str(err)
try:
    load_model_from_config(load_config({str(CONFIGS / "ewt_xpos_charlstm_bilstm_crf.cfg")!r}))
except ImportError as err:
    out["build_errors"]["config file"] = str(err)
out["torch_imported"] = "torch" in sys.modules
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def without_torch():
    """What the package does in a fresh interpreter where torch cannot be imported."""
    result = subprocess.run([sys.executable, "-c", WITHOUT_TORCH], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_torch_is_really_hidden(without_torch):
    assert without_torch["has_torch"] is False
    assert without_torch["torch_imported"] is False


def test_every_module_imports_but_the_torch_modules_which_name_the_extra(without_torch):
    errors = without_torch["import_errors"]
    assert list(errors) == ["spacy_seqlab.layers.torch_nets"]
    assert RECURRENT_EXTRA in errors["spacy_seqlab.layers.torch_nets"]


def test_a_cnn_crf_tagger_trains_without_torch(without_torch):
    losses = without_torch["losses"]
    assert losses[-1] < 0.1 * losses[0]
    assert without_torch["tags"] == ["PRP", "VBP", "NN"]


def test_recurrent_architectures_name_the_extra_when_built(without_torch):
    errors = without_torch["build_errors"]
    assert set(errors) == {"RNNEncoder", "CharBiLSTM", "config file"}
    assert errors["RNNEncoder"].startswith("spacy_seqlab.RNNEncoder.v1 needs torch")
    assert errors["CharBiLSTM"].startswith("spacy_seqlab.CharBiLSTM.v1 needs torch")
    for message in errors.values():
        assert RECURRENT_EXTRA in message and 'pip install "spacy-seqlab[recurrent]"' in message


def test_require_torch_checks_at_call_time(monkeypatch):
    """In-process: torch is looked up when a layer is built, not when the package is
    imported."""
    torch = pytest.importorskip("torch", reason="the recurrent extra (torch) is not installed")

    assert require_torch("x") is torch
    monkeypatch.setitem(sys.modules, "torch", None)  # now "import torch" fails
    with pytest.raises(ImportError, match=r"CharBiLSTM needs torch.*spacy-seqlab\[recurrent\]"):
        require_torch("CharBiLSTM")
