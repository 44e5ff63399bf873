"""Write an HTML page of a crf_ner pipeline's predictions on a corpus with displaCy, each
label with its confidence, spans below --threshold in red, the least confident docs first.

    python scripts/render_confidences.py MODEL CORPUS.spacy OUTPUT.html [--n-docs 300]
        [--highlight 20] [--threshold 0.9] [--component crf_ner]
"""
import argparse
import html
from pathlib import Path
from typing import List, Optional

import spacy
from spacy import displacy
from spacy.tokens import Doc

from spacy_seqlab.cli.least_confident import find_ner, min_confidence, read_corpus
from spacy_seqlab.visualize import confidence_colors, ents_with_confidence, spans_with_confidence

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body {{ font-family: sans-serif; margin: 2em; }} h2 {{ margin-top: 2em; }}
.note {{ color: #555; }}</style></head>
<body><h1>{title}</h1><p class="note">{note}</p>
<h2>The {k} least confident docs</h2>{least}
<h2>The other docs, in corpus order</h2>{rest}
</body></html>
"""


def render(docs: List[Doc], spans_key: Optional[str], threshold: float) -> str:
    """displaCy markup of ``docs``, titled by corpus index and min confidence."""
    make = ents_with_confidence if spans_key is None else spans_with_confidence
    style = "ent" if spans_key is None else "span"
    data = []
    for doc in docs:
        spans = doc.ents if spans_key is None else doc.spans[spans_key]
        title = f"doc {doc.user_data['index']}: min confidence {min_confidence(spans):.3f}"
        data.append(make(doc, spans_key, title=title))
    if not data:
        return "<p>none</p>"
    options = {"colors": confidence_colors(data, threshold)}
    if spans_key is not None:
        options["spans_key"] = spans_key
    return displacy.render(data, style=style, manual=True, page=False, options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("corpus", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--n-docs", type=int, default=300)
    parser.add_argument("--highlight", type=int, default=20)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--component", default=None)
    args = parser.parse_args()
    if args.n_docs < 1 or args.highlight < 0 or not 0.0 <= args.threshold <= 1.0:
        parser.error("--n-docs must be >= 1, --highlight >= 0 and --threshold in [0, 1]")
    nlp = spacy.load(args.model)
    spans_key = nlp.get_pipe(find_ner(nlp, args.component)).spans_key
    docs = []
    for i, doc in enumerate(nlp.pipe(read_corpus(nlp, args.corpus))):
        if i == args.n_docs:
            break
        doc.user_data["index"] = i
        docs.append(doc)
    spans_of = (lambda d: d.ents) if spans_key is None else (lambda d: d.spans[spans_key])
    ranked = sorted(docs, key=lambda d: (min_confidence(spans_of(d)), d.user_data["index"]))
    least = ranked[: args.highlight]
    chosen = {d.user_data["index"] for d in least}
    rest = [d for d in docs if d.user_data["index"] not in chosen]
    n_spans = sum(len(spans_of(d)) for d in docs)
    n_low = sum(
        1 for d in docs for s in spans_of(d)
        if s._.crf_confidence is not None and s._.crf_confidence < args.threshold
    )
    note = (
        f"{html.escape(str(args.model))} on {len(docs)} docs of {html.escape(str(args.corpus))}: "
        f"{n_spans} predicted spans, {n_low} below confidence {args.threshold} (red)."
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        PAGE.format(
            title="Predictions with confidences", note=note, k=len(least),
            least=render(least, spans_key, args.threshold),
            rest=render(rest, spans_key, args.threshold),
        ),
        encoding="utf8",
    )
    print(f"Wrote {args.output}: {len(docs)} docs, {n_low} of {n_spans} spans below {args.threshold}")


if __name__ == "__main__":
    main()
