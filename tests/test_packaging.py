"""End to end: `spacy train` a tiny tagger + chunker, build both wheels with the
project's `package` command (scripts/build_packages.py), install them into a fresh
virtualenv (no system site-packages, no editable install), and load the pipeline there
by its package name: same labels and confidences, no torch installed, and a model card
with the components' own scores and a note on the confidences.

The virtualenv gets spaCy and its dependencies from pip's index and cache (about a
minute); the pins of constraints.txt keep them at the versions tested here."""
import importlib.metadata
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.cli.train import train
from spacy.tokens import Doc, DocBin, Span

ROOT = Path(__file__).resolve().parent.parent
NAME, VERSION = "seqlab_packaging_test", "0.0.1"
TOK2VEC = {
    "@architectures": "spacy.Tok2Vec.v2",
    "embed": {"@architectures": "spacy.MultiHashEmbed.v2", "width": 16, "attrs": ["NORM", "SHAPE"],
              "rows": [200, 50], "include_static_vectors": False},
    "encode": {"@architectures": "spacy.MaxoutWindowEncoder.v2", "width": 16, "window_size": 1,
               "maxout_pieces": 2, "depth": 1},
}
SENTENCES = [  # words, tags, chunks (start, end, label)
    ("I like green eggs .".split(), ["PRP", "VBP", "JJ", "NNS", "."], [(0, 1, "NP"), (1, 2, "VP"), (2, 4, "NP")]),
    ("She ate the cake".split(), ["PRP", "VBD", "DT", "NN"], [(0, 1, "NP"), (1, 2, "VP"), (2, 4, "NP")]),
]
TEXTS = ["She likes the green cake .", "I ate eggs", ""]

# Run inside the fresh virtualenv: predictions of the installed package, as JSON.
PREDICT = f"""
import importlib.util, json
import spacy
nlp = spacy.load("en_{NAME}")
docs = list(nlp.pipe({TEXTS!r}))
print(json.dumps({{
    "predictions": [[[t.tag_, t._.tag_confidence] for t in doc] for doc in docs],
    "chunks": [[[s.start, s.end, s.label_, s._.crf_confidence] for s in doc.spans["chunks"]] for doc in docs],
    "torch": importlib.util.find_spec("torch") is not None,
    "seqlab_file": __import__("spacy_seqlab").__file__,
}}))
"""


def predictions(nlp):
    docs = list(nlp.pipe(TEXTS))
    return {
        "predictions": [[[t.tag_, t._.tag_confidence] for t in doc] for doc in docs],
        "chunks": [[[s.start, s.end, s.label_, s._.crf_confidence] for s in doc.spans["chunks"]]
                   for doc in docs],
    }


@pytest.fixture(scope="module")
def model_best(tmp_path_factory) -> Path:
    """training/model-best of `spacy train` on a tiny corpus with tags and chunks."""
    root = tmp_path_factory.mktemp("train")
    nlp = spacy.blank("en")
    model = {"@architectures": "spacy_seqlab.CRFTagger.v1", "tok2vec": TOK2VEC}
    nlp.add_pipe("crf_tagger", config={"model": model})
    nlp.add_pipe("crf_ner", name="chunker", config={"model": model, "spans_key": "chunks"})
    nlp.config.to_disk(root / "config.cfg")
    docs = []
    for words, tags, chunks in SENTENCES * 2:
        doc = Doc(nlp.vocab, words=words, tags=tags)
        doc.spans["chunks"] = [Span(doc, *chunk) for chunk in chunks]
        docs.append(doc)
    DocBin(docs=docs).to_disk(root / "tiny.spacy")
    corpus = str(root / "tiny.spacy")
    train(root / "config.cfg", root / "training", overrides={
        "paths.train": corpus, "paths.dev": corpus, "training.max_steps": 20, "training.eval_frequency": 10})
    return root / "training" / "model-best"


def test_packaged_pipeline_installs_in_a_fresh_venv(model_best, tmp_path):
    # `spacy package --build wheel` runs `python -m build` (the test extra); asked by its
    # distribution, since a build/ folder in the checkout imports as a namespace package
    try:
        importlib.metadata.version("build")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the `build` package (test extra) is not installed")
    expected = predictions(spacy.load(model_best))
    packages = tmp_path / "packages"
    build = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_packages.py"), str(model_best),
                            str(packages), "--name", NAME, "--version", VERSION],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    seqlab_wheel, = packages.glob("spacy_seqlab-*.whl")
    pipeline_wheel, = packages.glob(f"en_{NAME}-{VERSION}/dist/*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), "--find-links",
         str(packages), str(seqlab_wheel), str(pipeline_wheel)], capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    result = subprocess.run([python, "-c", PREDICT], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])

    # installed from the wheel into the venv, not this checkout; a CNN pipeline needs no torch
    assert got["seqlab_file"].startswith(str(venv)) and not got["torch"]
    for key in ("predictions", "chunks"):
        assert [[row[:-1] for row in doc] for doc in got[key]] == [[row[:-1] for row in doc] for doc in expected[key]]
        numpy.testing.assert_allclose([row[-1] for doc in got[key] for row in doc],
                                      [row[-1] for doc in expected[key] for row in doc], rtol=1e-6)
    assert any(got["chunks"]) and all(tag for doc in got["predictions"] for tag, _ in doc)

    # the model card: the scores of the components' settings, and how to read confidences
    with zipfile.ZipFile(pipeline_wheel) as wheel:
        readme = wheel.read(next(n for n in wheel.namelist() if n.endswith("/README.md"))).decode()
        requires = wheel.read(next(n for n in wheel.namelist() if n.endswith("METADATA"))).decode()
    assert "`TAG_ACC`" in readme and "`SPANS_CHUNKS_F`" in readme
    assert "`POS_ACC`" not in readme and "`ENTS_F`" not in readme
    assert "How to read the confidences" in readme and "token._.tag_confidence" in readme
    assert 'doc.spans["chunks"].attrs["scores"]' in readme
    assert "Requires-Dist: spacy-seqlab<0.2.0,>=0.1.0" in requires and "torch" not in requires
