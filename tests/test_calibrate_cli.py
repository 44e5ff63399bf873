"""``python -m spacy seqlab-calibrate``: a pipeline's confidences fitted on dev and saved."""
import subprocess
import sys

import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span

from spacy_seqlab.cli.calibrate import calibrate, dev_examples

from .tiny_pipelines import fit, span_examples

TRAIN = [
    ("Who is Shaka Khan in London ?", [(2, 4, "PER"), (5, 6, "LOC")]),
    ("I like London and New York .", [(2, 3, "LOC"), (4, 6, "LOC")]),
    ("The New York Times hired John .", [(0, 4, "ORG"), (5, 6, "PER")]),
]
DEV = [
    ("John likes the Times in Paris .", [(0, 1, "PER"), (3, 4, "ORG"), (5, 6, "LOC")]),
    ("Khan hired Shaka in London .", [(0, 1, "PER"), (2, 3, "PER"), (4, 5, "LOC")]),
    ("I like New York .", [(2, 4, "LOC")]),
    ("Angela visited Paris .", [(0, 1, "PER"), (2, 3, "LOC")]),
]


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_ner")
    fit(nlp, span_examples(nlp, TRAIN), 8)  # not to convergence: confidences below 1
    root = tmp_path_factory.mktemp("calibrate")
    nlp.to_disk(root / "ner")
    docs = []
    for text, spans in DEV:
        doc = Doc(nlp.vocab, words=text.split())
        doc.ents = [Span(doc, s, e, label) for s, e, label in spans]
        docs.append(doc)
    DocBin(docs=docs).to_disk(root / "dev.spacy")
    return root


def test_cli_fits_and_saves_the_temperature_and_span_map(paths):
    out = subprocess.run(
        [sys.executable, "-m", "spacy", "seqlab-calibrate", str(paths / "ner"), str(paths / "dev.spacy"),
         str(paths / "calibrated"), "--span-map", "all"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "crf_ner: temperature" in out.stdout
    saved = spacy.load(paths / "calibrated").get_pipe("crf_ner")
    nlp = spacy.load(paths / "ner")
    report = calibrate(nlp, dev_examples(nlp, paths / "dev.spacy"), span_map="all")
    assert saved.temperature == pytest.approx(report["crf_ner"]["temperature"], rel=1e-9) != 1.0
    assert saved.span_calibration["by"] == "all"
    assert saved.span_calibration["maps"]["*"] == pytest.approx(nlp.get_pipe("crf_ner").span_calibration["maps"]["*"], rel=1e-9)


def test_bad_options_are_clear_errors(paths):
    nlp = spacy.load(paths / "ner")
    examples = dev_examples(nlp, paths / "dev.spacy")
    with pytest.raises(ValueError, match="--span-map must be one of"):
        calibrate(nlp, examples, span_map="word")
    with pytest.raises(ValueError, match="not a crf_tagger or crf_ner"):
        calibrate(nlp, examples, ["tagger"])
    with pytest.raises(ValueError, match="no crf_tagger or crf_ner"):
        calibrate(spacy.blank("en"), examples)
    with pytest.raises(ValueError, match="expected a .spacy DocBin"):
        dev_examples(nlp, paths / "dev.jsonl")
