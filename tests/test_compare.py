"""The compare workflow (benchmarks/compare.py) end to end on a tiny corpus: every model
of the lecture's table is trained, tested and reported, with the plot."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin

from .test_configs import SENTENCES

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("matplotlib")
pytest.importorskip("spacy_transformers")


@pytest.fixture
def tiny_ewt(tmp_path) -> Path:
    """en_ewt-ud-{train,dev,test}.spacy with XPOS tags, as the project's convert writes."""
    vocab = spacy.blank("en").vocab
    docs = [Doc(vocab, words=[w for w, _, _ in s], tags=[t for _, t, _ in s]) for s in SENTENCES]
    for split in ("train", "dev", "test"):
        DocBin(docs=docs * 2).to_disk(tmp_path / f"en_ewt-ud-{split}.spacy")
    return tmp_path


def test_compare_workflow_runs_every_model(tiny_ewt, tiny_transformer, tmp_path):
    from benchmarks.compare import MODELS

    out = tmp_path / "results"
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compare.py"), "--corpus", str(tiny_ewt),
         "--epochs", "2", "--trf-epochs", "1", "--transformer", str(tiny_transformer),
         "--passes", "1", "--eval-frequency", "5", "--work", str(tmp_path / "work"),
         "--out", str(out)],
        check=True, cwd=ROOT,
    )
    result = json.loads((out / "compare_ewt_xpos.json").read_text())
    assert set(result["runs"]) == set(MODELS)
    for name, run in result["runs"].items():
        assert "error" not in run, name
        assert 0.0 <= run["test_acc"] <= 100.0 and run["infer_words_per_s"] > 0
        assert run["tokens"]["tokens"] == sum(len(s) for s in SENTENCES) * 2
    # the HMM counts the training split it is tested on here: it tags it back
    assert result["runs"]["hmm"]["test_acc"] > 90.0
    markdown = (out / "compare_ewt_xpos.md").read_text()
    assert all(spec.label in markdown for spec in MODELS.values())
    assert (out / "compare_ewt_xpos.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
