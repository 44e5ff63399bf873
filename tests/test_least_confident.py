"""``python -m spacy seqlab-least-confident``: the least confident docs as JSONL tasks."""
import subprocess
import sys

import pytest
import spacy
import srsly

from spacy_seqlab.cli.least_confident import least_confident

from .tiny_pipelines import fit, span_examples

TRAIN = [
    ("Who is Shaka Khan in London ?", [(2, 4, "PER"), (5, 6, "LOC")]),
    ("I like London and New York .", [(2, 3, "LOC"), (4, 6, "LOC")]),
    ("The New York Times hired John .", [(0, 4, "ORG"), (5, 6, "PER")]),
]
TEXTS = [
    "Who is Shaka Khan in London ?",
    "John likes the Times in Paris .",
    "I like New York .",
    "Khan hired Shaka in Paris and London .",
    "nothing here",
]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_ner")
    fit(nlp, span_examples(nlp, TRAIN), 25)
    path = tmp_path_factory.mktemp("model") / "ner"
    nlp.to_disk(path)
    return nlp, path


def expected_scores(nlp, by):
    ner = nlp.get_pipe("crf_ner")
    out = []
    for text in TEXTS:
        doc = nlp(text)
        if by == "min-span":
            out.append(min((e._.crf_confidence for e in doc.ents), default=1.0))
        else:
            out.append(ner.nbest([nlp.make_doc(text)], n=1)[0][0].probability)
    return out


def check_tasks(nlp, tasks, by):
    scores = expected_scores(nlp, by)
    lowest = sorted(range(len(TEXTS)), key=lambda i: (scores[i], i))[:3]
    assert [t["meta"]["index"] for t in tasks] == lowest
    for t in tasks:
        i = t["meta"]["index"]
        assert t["text"] == TEXTS[i]
        assert t["meta"]["score"] == pytest.approx(scores[i], abs=1e-6)
        doc = nlp(TEXTS[i])
        assert [(s["start"], s["end"], s["token_start"], s["token_end"], s["label"]) for s in t["spans"]] == [
            (e.start_char, e.end_char, e.start, e.end - 1, e.label_) for e in doc.ents
        ]
        assert [s["score"] for s in t["spans"]] == pytest.approx([e._.crf_confidence for e in doc.ents])
        assert [tok["text"] for tok in t["tokens"]] == [tok.text for tok in doc]


def test_cli_exports_the_least_confident_docs(pipeline, tmp_path):
    nlp, path = pipeline
    corpus = tmp_path / "corpus.jsonl"
    srsly.write_jsonl(corpus, [{"text": text} for text in TEXTS])
    output = tmp_path / "tasks.jsonl"
    out = subprocess.run(
        [sys.executable, "-m", "spacy", "seqlab-least-confident", str(path), str(corpus),
         str(output), "--n", "3", "--by", "min-span"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    check_tasks(nlp, list(srsly.read_jsonl(output)), "min-span")


def test_ranking_by_sequence_probability(pipeline):
    nlp, _ = pipeline
    tasks = least_confident(nlp, (nlp.make_doc(text) for text in TEXTS), 3, "sequence", batch_size=2)
    check_tasks(nlp, tasks, "sequence")


def test_bad_arguments_are_clear_errors(pipeline):
    nlp, _ = pipeline
    with pytest.raises(ValueError, match="--by must be one of"):
        least_confident(nlp, [nlp.make_doc("x")], 3, "entropy")
    with pytest.raises(ValueError, match="positive"):
        least_confident(nlp, [nlp.make_doc("x")], 0, "sequence")
    with pytest.raises(ValueError, match="not a crf_ner component"):
        least_confident(nlp, [nlp.make_doc("x")], 1, "sequence", component="tagger")


def test_ranking_computes_the_confidences_even_when_the_pipeline_turns_them_off(pipeline):
    nlp, path = pipeline
    off = spacy.load(path, config={"components": {"crf_ner": {"confidences": False}}})
    tasks = least_confident(off, (off.make_doc(text) for text in TEXTS), 3, "min-span", batch_size=2)
    check_tasks(nlp, tasks, "min-span")
    assert off.get_pipe("crf_ner").confidences is False
