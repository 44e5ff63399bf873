"""Growing the label set of a trained crf_tagger / crf_ner: the output and chain layers
resize, what was learned is kept (same predictions and confidences), training goes on."""
import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import fix_random_seed

from .tiny_pipelines import span_examples

TAGS = [
    ("I will fight", ["PRP", "MD", "VB"]),
    ("They fight the will", ["PRP", "VBP", "DT", "NN"]),
    ("She will read books", ["PRP", "MD", "VB", "NNS"]),
]
NEW_TAGS = [("I will fight yesterday", ["PRP", "MD", "VB", "RB"])]
ENTS = [
    ("Who is Shaka Khan in London ?", [(2, 4, "PER"), (5, 6, "LOC")]),
    ("I like London and New York .", [(2, 3, "LOC"), (4, 6, "LOC")]),
]
NEW_ENTS = [("Shaka Khan bought Windows 11 in London .", [(0, 2, "PER"), (3, 5, "PRODUCT"), (6, 7, "LOC")])]
TEXTS = ["I will read the books", "Who is Shaka Khan in New York ?", "fight"]


def tag_examples(nlp, data):
    return [Example.from_dict(nlp.make_doc(text), {"tags": tags}) for text, tags in data]


def ent_examples(nlp, data):
    examples = span_examples(nlp, data)
    return examples


def same(got, expected):
    """Equal labels and spans; confidences equal up to float32 rounding (the matrix
    products now have another shape)."""
    assert [[x[:-1] for x in doc] for doc in got] == [[x[:-1] for x in doc] for doc in expected]
    for doc_got, doc_expected in zip(got, expected):
        assert [x[-1] for x in doc_got] == pytest.approx([x[-1] for x in doc_expected], abs=1e-6)
    return True


def train(nlp, examples, steps, optimizer=None):
    fix_random_seed(0)
    if optimizer is None:
        optimizer = nlp.initialize(lambda: examples)
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer)


def tagger_output(nlp):
    return [[(t.tag_, t._.tag_confidence) for t in doc] for doc in nlp.pipe(TEXTS)]


def ner_output(nlp):
    docs = list(nlp.pipe([Doc(nlp.vocab, words=text.split()) for text in TEXTS]))
    return [[(e.start, e.end, e.label_, e._.crf_confidence) for e in doc.ents] for doc in docs]


@pytest.mark.parametrize("factory", ["crf_tagger", "memm_tagger"])
def test_tagger_add_label_keeps_old_predictions_and_trains_on(factory, tmp_path):
    nlp = spacy.blank("en")
    tagger = nlp.add_pipe(factory)
    train(nlp, tag_examples(nlp, TAGS), 40)
    before = tagger_output(nlp)
    chain = tagger.model.get_ref(tagger.chain_ref)
    old_transitions = chain.get_param("transitions").copy()
    assert tagger.add_label("RB") == 1
    assert tagger.add_label("RB") == 0
    n = len(tagger.labels)
    assert tagger.model.get_ref("output_layer").get_param("W").shape[0] == n
    assert chain.get_param("transitions").shape == (n, n)
    assert numpy.array_equal(chain.get_param("transitions")[:-1, :-1], old_transitions)
    assert same(tagger_output(nlp), before)  # the new label is off until seen
    nlp.to_disk(tmp_path)
    assert same(tagger_output(spacy.load(tmp_path)), before)

    optimizer = nlp.create_optimizer()  # the shapes changed
    train(nlp, tag_examples(nlp, TAGS + NEW_TAGS), 40, optimizer)
    doc = nlp("I will fight yesterday")
    assert [t.tag_ for t in doc] == ["PRP", "MD", "VB", "RB"]
    assert [t.tag_ for t in nlp("She will read books")] == TAGS[2][1]


@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
def test_ner_add_label_keeps_old_predictions_and_trains_on(scheme):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("crf_ner", config={"scheme": scheme})
    train(nlp, ent_examples(nlp, ENTS), 40)
    before = ner_output(nlp)
    assert any(before)
    mask_before = ner.model.get_ref("crf").attrs["transition_mask"].transitions.sum()
    ner.add_label("PRODUCT")
    assert len(ner.output_labels) == ner.model.get_ref("crf").get_param("transitions").shape[0]
    assert ner.model.get_ref("crf").attrs["transition_mask"].transitions.sum() > mask_before
    assert same(ner_output(nlp), before)
    assert ner.cfg["unseen_labels"] == ["PRODUCT"]

    optimizer = nlp.create_optimizer()  # the shapes changed
    train(nlp, ent_examples(nlp, ENTS + NEW_ENTS), 50, optimizer)
    assert ner.cfg["unseen_labels"] == []
    doc = nlp(Doc(nlp.vocab, words=NEW_ENTS[0][0].split()))
    assert [(e.start, e.end, e.label_) for e in doc.ents] == NEW_ENTS[0][1]


def test_add_label_rejects_bad_labels_after_initialize():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("crf_ner")
    train(nlp, ent_examples(nlp, ENTS), 1)
    with pytest.raises(ValueError, match="non-empty"):
        ner.add_label("")
    with pytest.raises(ValueError, match="blank or padded"):
        ner.add_label(" PER ")
