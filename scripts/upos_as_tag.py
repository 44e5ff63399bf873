"""Copy a .spacy corpus with each token's UPOS label in its TAG column.

Usage: python scripts/upos_as_tag.py IN_DIR OUT_DIR   (every *.spacy file in IN_DIR)

spaCy's own ``tagger`` writes only ``token.tag_``; trained on this copy it predicts
UPOS, which is how the softmax baselines (``ewt_upos_bilstm_softmax.cfg``, spaCy's
tagger in the benchmarks) are compared with ``crf_tagger`` on UPOS.
"""
import sys
from pathlib import Path

import spacy
from spacy.tokens import DocBin


def upos_as_tag(src: Path, dest: Path) -> None:
    """Write ``dest`` (a DocBin) from ``src`` with ``token.tag_ = token.pos_``."""
    nlp = spacy.blank("en")
    out = DocBin(store_user_data=True)
    for doc in DocBin().from_disk(src).get_docs(nlp.vocab):
        for token in doc:
            token.tag_ = token.pos_
        out.add(doc)
    dest.parent.mkdir(parents=True, exist_ok=True)
    out.to_disk(dest)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src_dir, dest_dir = Path(sys.argv[1]), Path(sys.argv[2])
    for path in sorted(src_dir.glob("*.spacy")):
        upos_as_tag(path, dest_dir / path.name)
        print(f"{path} -> {dest_dir / path.name}")
