"""Where confidences live: spancat's ``doc.spans[key].attrs["scores"]``, ``Doc.to_json``
through a Doc extension, and retokenized docs (kept when still meaningful, else None)."""
import numpy
import pytest
import spacy
from spacy.tokens import DocBin, Span
from spacy.training import Example

from spacy_seqlab.components.crf_ner import (
    CONFIDENCE_EXTENSION,
    ENTS_CONFIDENCE_EXTENSION,
)

from .tiny_pipelines import fit, span_examples

TRAIN = [
    ("Who is Shaka Khan in London ?", [(2, 4, "PER"), (5, 6, "LOC")]),
    ("I like London and New York .", [(2, 3, "LOC"), (4, 6, "LOC")]),
    ("The New York Times hired John .", [(0, 4, "ORG"), (5, 6, "PER")]),
]
TEXT = "Shaka Khan likes New York ."


def trained_ner(spans_key=None):
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_ner", config={"spans_key": spans_key})
    return fit(nlp, span_examples(nlp, TRAIN, spans_key), 40)


@pytest.fixture(scope="module")
def ner_ents():
    return trained_ner()


def test_spans_mode_writes_scores_like_spancat(tmp_path):
    nlp = trained_ner("chunks")
    doc = nlp(TEXT)
    group = doc.spans["chunks"]
    assert len(group) >= 2
    scores = group.attrs["scores"]
    assert len(scores) == len(group)
    assert [float(s) for s in scores] == pytest.approx(
        [getattr(span._, CONFIDENCE_EXTENSION) for span in group], abs=1e-6
    )
    assert all(0.0 < s <= 1.0 for s in scores)
    (restored,) = DocBin().from_bytes(DocBin(docs=[doc]).to_bytes()).get_docs(nlp.vocab)
    assert list(restored.spans["chunks"].attrs["scores"]) == pytest.approx(list(scores))


def test_entity_confidences_in_doc_to_json(ner_ents):
    doc = ner_ents(TEXT)
    data = doc.to_json(underscore=[ENTS_CONFIDENCE_EXTENSION])
    confidences = data["_"][ENTS_CONFIDENCE_EXTENSION]
    assert len(confidences) == len(data["ents"]) == len(doc.ents) >= 2
    for ent_json, ent, conf in zip(data["ents"], doc.ents, confidences):
        assert (ent_json["start"], ent_json["end"]) == (ent.start_char, ent.end_char)
        assert conf == getattr(ent._, CONFIDENCE_EXTENSION)
        assert 0.0 < conf <= 1.0


def test_entity_confidences_survive_merge_entities(ner_ents):
    doc = ner_ents(TEXT)
    before = {(e.text, e.label_): getattr(e._, CONFIDENCE_EXTENSION) for e in doc.ents}
    assert any(len(e) > 1 for e in doc.ents)
    merger = spacy.blank("en").add_pipe("merge_entities")
    merged = merger(doc)
    assert len(merged) < len(TEXT.split())
    after = {(e.text, e.label_): getattr(e._, CONFIDENCE_EXTENSION) for e in merged.ents}
    assert after == before
    assert None not in after.values()


def test_entity_confidence_is_none_for_a_changed_span(ner_ents):
    doc = ner_ents(TEXT)
    ent = doc.ents[0]
    assert getattr(ent._, CONFIDENCE_EXTENSION) is not None
    relabelled = Span(doc, ent.start, ent.end, label="SOMETHING_ELSE")
    shorter = Span(doc, ent.start, ent.end - 1, label=ent.label_) if len(ent) > 1 else None
    assert getattr(relabelled._, CONFIDENCE_EXTENSION) is None
    if shorter is not None:
        assert getattr(shorter._, CONFIDENCE_EXTENSION) is None


@pytest.fixture(scope="module")
def tagger():
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_tagger")
    data = [
        ("I will fight", ["PRP", "MD", "VB"]),
        ("They fight the will", ["PRP", "VBP", "DT", "NN"]),
        ("She will read books", ["PRP", "MD", "VB", "NNS"]),
    ]
    return fit(nlp, [Example.from_dict(nlp.make_doc(t), {"tags": tags}) for t, tags in data], 30)


def test_token_confidences_after_retokenization_are_kept_or_none(tagger):
    doc = tagger("She will fight the books")
    before = [t._.tag_confidence for t in doc]
    assert None not in before
    with doc.retokenize() as retokenizer:
        retokenizer.merge(doc[1:3])  # "will fight"
    assert len(doc) == 4
    after = [t._.tag_confidence for t in doc]
    # untouched tokens keep theirs (though their indices moved); the merged one has none
    assert after == [before[0], None, before[3], before[4]]
    with doc.retokenize() as retokenizer:
        retokenizer.split(doc[3], ["bo", "oks"], heads=[doc[3], doc[2]])
    assert [t._.tag_confidence for t in doc] == [before[0], None, before[3], None, None]


def test_token_confidence_is_none_once_the_tag_changes(tagger):
    doc = tagger("She will fight")
    assert doc[2]._.tag_confidence is not None
    doc[2].tag_ = "SOMETHING_ELSE"
    assert doc[2]._.tag_confidence is None
    assert doc[0]._.tag_confidence is not None


def test_token_confidences_survive_docbin(tagger):
    doc = tagger("She will fight")
    data = DocBin(docs=[doc], store_user_data=True).to_bytes()
    (restored,) = DocBin().from_bytes(data).get_docs(tagger.vocab)
    assert [t._.tag_confidence for t in restored] == [t._.tag_confidence for t in doc]
    assert numpy.all(numpy.asarray([t._.tag_confidence for t in doc]) > 0)


def test_displacy_data_carries_the_confidences(ner_ents):
    from spacy import displacy

    from spacy_seqlab.visualize import (
        HIGH,
        LOW,
        confidence_colors,
        ents_with_confidence,
        split_label,
    )

    doc = ner_ents(TEXT)
    data = ents_with_confidence(doc, title="t")
    assert [(e["start"], e["end"]) for e in data["ents"]] == [(e.start_char, e.end_char) for e in doc.ents]
    for item, ent in zip(data["ents"], doc.ents):
        label, confidence = split_label(item["label"])
        assert label == ent.label_
        assert confidence == pytest.approx(getattr(ent._, CONFIDENCE_EXTENSION), abs=0.005)
    assert set(confidence_colors([data], threshold=1.01).values()) == {LOW}
    assert set(confidence_colors([data], threshold=0.0).values()) == {HIGH}
    colors = confidence_colors([data], threshold=1.01)
    html = displacy.render([data], style="ent", manual=True, options={"colors": colors})
    assert all(e["label"] in html for e in data["ents"]) and LOW in html
    assert split_label("WORK OF ART") == ("WORK OF ART", None)


# --- confidences = false: the same labels, no forward-backward, no confidences -----------
@pytest.mark.parametrize("spans_key", [None, "chunks"], ids=["ents", "spans"])
def test_confidences_off_keeps_the_spans_and_drops_their_scores(spans_key, tmp_path):
    nlp = trained_ner(spans_key)
    nlp.to_disk(tmp_path)
    off = spacy.load(tmp_path, config={"components": {"crf_ner": {"confidences": False}}})
    assert off.get_pipe("crf_ner").confidences is False
    texts = [TEXT, TRAIN[0][0], "", "London"]
    for with_scores, without in zip(nlp.pipe(texts), off.pipe(texts)):
        on_spans = list(with_scores.ents if spans_key is None else with_scores.spans[spans_key])
        off_spans = list(without.ents if spans_key is None else without.spans[spans_key])
        assert [(s.start, s.end, s.label_) for s in off_spans] == [(s.start, s.end, s.label_) for s in on_spans]
        assert all(getattr(s._, CONFIDENCE_EXTENSION) is not None for s in on_spans)
        assert all(getattr(s._, CONFIDENCE_EXTENSION) is None for s in off_spans)
        if spans_key is not None:
            assert "scores" in with_scores.spans[spans_key].attrs
            assert "scores" not in without.spans[spans_key].attrs


def test_confidences_off_keeps_the_tags_and_removes_stale_confidences(tagger):
    pipe = tagger.get_pipe("crf_tagger")
    doc = tagger("She will fight the books")
    assert all(t._.tag_confidence is not None for t in doc)
    pipe.confidences = False
    try:
        off = pipe(tagger.make_doc(doc.text))
        assert [t.tag_ for t in off] == [t.tag_ for t in doc]
        assert all(t._.tag_confidence is None for t in off)
        pipe.cfg["overwrite"] = True
        doc = pipe(doc)  # tagged with confidences before: those are removed
        assert all(t._.tag_confidence is None for t in doc)
    finally:
        pipe.confidences = True
        pipe.cfg["overwrite"] = False


def test_confidences_setting_must_be_a_bool():
    with pytest.raises(ValueError, match="confidences"):
        spacy.blank("en").add_pipe("crf_ner", config={"confidences": "maybe"})
    from spacy_seqlab.components.crf_tagger import CRFTagger

    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="confidences must be true or false"):
        CRFTagger(nlp.vocab, nlp.add_pipe("crf_tagger").model, confidences=1)


def test_token_confidences_stored_as_label_strings_still_read(tagger):
    # docs annotated by earlier versions keep lists and label strings in user_data
    doc = tagger("She will fight")
    stored = doc.user_data["spacy_seqlab.confidence.tag"]
    doc.user_data["spacy_seqlab.confidence.tag"] = {
        "starts": stored["starts"].tolist(), "ends": stored["ends"].tolist(),
        "labels": [t.tag_ for t in doc], "values": stored["values"].tolist(),
    }
    assert [t._.tag_confidence for t in doc] == pytest.approx(stored["values"].tolist())
    doc[0].tag_ = "XX"
    assert doc[0]._.tag_confidence is None
