"""Convert a CoNLL-2003/CoNLL-2000 column file (IOB1 or IOB2 tags in the last column,
POS in the second) to a .spacy DocBin with spaCy's own converter.

Usage: python scripts/convert_conll.py INPUT OUTPUT.spacy [--n-sents 10]
           [--spans-key chunks] [--holdout N HOLDOUT.spacy]

spaCy's reader turns both IOB variants into entities (an I- after O, or after another
label, starts a span), so CoNLL-2003's IOB1 is read correctly. ``--spans-key`` moves the
spans from ``doc.ents`` to ``doc.spans[KEY]`` (chunks are not entities);
``--holdout`` writes the last N docs to a second file (CoNLL-2000 has no dev split).
Files with ``-DOCSTART-`` lines keep their documents (eng.testb's ``-DOCSTART- -X- -X- O``
lines are normalized first, else spaCy reads them as tokens); others get ``--n-sents``
sentences per doc.
"""
import argparse
from pathlib import Path

from spacy.tokens import DocBin
from spacy.training.converters import conll_ner_to_docs

DOC_DELIMITER = "-DOCSTART- -X- O O"  # the form spaCy's reader splits documents on


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--n-sents", type=int, default=10)
    p.add_argument("--spans-key")
    p.add_argument("--holdout", nargs=2, metavar=("N", "HOLDOUT"))
    args = p.parse_args()
    lines = args.input.read_text(encoding="utf8").splitlines()
    text = "\n".join(DOC_DELIMITER if line.startswith("-DOCSTART-") else line for line in lines)
    docs = list(conll_ner_to_docs(text, n_sents=args.n_sents, no_print=True))
    for doc in docs:
        if args.spans_key:
            doc.spans[args.spans_key] = list(doc.ents)
            doc.ents = []
    n_holdout = int(args.holdout[0]) if args.holdout else 0
    if n_holdout >= len(docs):
        raise SystemExit(f"--holdout {n_holdout} leaves no training docs (of {len(docs)})")
    keep, held = docs[: len(docs) - n_holdout], docs[len(docs) - n_holdout :]
    for path, part in ((args.output, keep), (Path(args.holdout[1]) if held else None, held)):
        if path is None:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        DocBin(docs=part, store_user_data=True).to_disk(path)
        n_spans = sum(len(d.spans[args.spans_key]) if args.spans_key else len(d.ents) for d in part)
        print(f"{path}: {len(part)} docs, {sum(len(d) for d in part)} tokens, {n_spans} spans")


if __name__ == "__main__":
    main()
