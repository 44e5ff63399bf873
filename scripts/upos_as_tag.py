"""Copy a .spacy corpus with each token's UPOS label (or entity IOB2 tag) in its TAG column.

Usage: python scripts/upos_as_tag.py IN_DIR OUT_DIR [--ents]   (every *.spacy file in IN_DIR)

spaCy's own ``tagger`` writes only ``token.tag_``. Trained on this copy it predicts UPOS
(the softmax baselines ``ewt_upos_*_softmax.cfg`` and spaCy's tagger in the benchmarks,
compared with ``crf_tagger`` on UPOS), or with ``--ents`` the IOB2 entity tags
(``conll03_trf_softmax.cfg``: NER as independent per-token decisions, compared with
``crf_ner``).
"""
import sys
from pathlib import Path
from typing import Callable, List

import spacy
from spacy.tokens import Doc, DocBin

from spacy_seqlab.schemes import spans_to_tags


def upos_tags(doc: Doc) -> List[str]:
    return [token.pos_ for token in doc]


def iob2_tags(doc: Doc) -> List[str]:
    return spans_to_tags("BIO", len(doc), [(e.start, e.end, e.label_) for e in doc.ents])


def upos_as_tag(src: Path, dest: Path, tags_of: Callable[[Doc], List[str]] = upos_tags) -> None:
    """Write ``dest`` (a DocBin) from ``src`` with ``token.tag_`` set from ``tags_of(doc)``."""
    nlp = spacy.blank("en")
    out = DocBin(store_user_data=True)
    for doc in DocBin().from_disk(src).get_docs(nlp.vocab):
        for token, tag in zip(doc, tags_of(doc)):
            token.tag_ = tag
        out.add(doc)
    dest.parent.mkdir(parents=True, exist_ok=True)
    out.to_disk(dest)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--ents"]
    if len(args) != 2:
        sys.exit(__doc__)
    src_dir, dest_dir = Path(args[0]), Path(args[1])
    tags_of = iob2_tags if "--ents" in sys.argv else upos_tags
    for path in sorted(src_dir.glob("*.spacy")):
        upos_as_tag(path, dest_dir / path.name, tags_of)
        print(f"{path} -> {dest_dir / path.name}")
