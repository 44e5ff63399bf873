"""The spancat anchor of confidences.py (and calibration.py): spaCy's ``spancat``
trained on the CoNLL-2003 entities (as ``doc.spans["sc"]``) with the tok2vec, optimizer
and static vectors of ``configs/conll03_vectors_ner.cfg`` (spaCy's ``ner`` swapped for
``spancat``: n-gram suggester 1-5, one label per span), GloVe 6B 50d by default as the
CoNLL-2003 winner of bench_paper.py.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spancat_anchor.py [--steps 4000]   # ~50 min on a core
Writes work/spancat/{train,dev,test}.spacy, spancat.cfg and out/model-best.
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import spacy  # noqa: E402
from spacy.tokens import DocBin  # noqa: E402
from thinc.api import Config  # noqa: E402

from _env import WORK  # noqa: E402

SPANCAT = """
[spancat]
factory = "spancat"
spans_key = "sc"
threshold = 0.5
max_positive = 1
[spancat.model]
@architectures = "spacy.SpanCategorizer.v1"
[spancat.model.reducer]
@layers = "spacy.mean_max_reducer.v1"
hidden_size = 128
[spancat.model.scorer]
@layers = "spacy.LinearLogistic.v1"
nO = null
nI = null
[spancat.model.tok2vec]
@architectures = "spacy.Tok2VecListener.v1"
width = ${components.tok2vec.model.encode.width}
[spancat.suggester]
@misc = "spacy.ngram_suggester.v1"
sizes = [1, 2, 3, 4, 5]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path(WORK) / "corpora" / "ner_ents")
    parser.add_argument("--vectors", default=str(HERE.parent / "assets" / "glove_6b_50d"))
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--out", type=Path, default=Path(WORK) / "spancat")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    nlp = spacy.blank("en")
    for split in ("train", "dev", "test"):
        docs = list(DocBin().from_disk(args.corpus / f"{split}.spacy").get_docs(nlp.vocab))
        for doc in docs:
            doc.spans["sc"] = list(doc.ents)
        DocBin(docs=docs).to_disk(args.out / f"{split}.spacy")
    cfg = Config().from_disk(HERE.parent / "configs" / "conll03_vectors_ner.cfg", interpolate=False)
    cfg["nlp"]["pipeline"] = ["tok2vec", "spancat"]
    del cfg["components"]["ner"]
    cfg["components"]["spancat"] = Config().from_str(SPANCAT, interpolate=False)["spancat"]
    cfg["training"]["score_weights"] = {"spans_sc_f": 1.0, "spans_sc_p": 0.0, "spans_sc_r": 0.0}
    cfg.to_disk(args.out / "spancat.cfg", interpolate=False)
    subprocess.run(
        [sys.executable, "-m", "spacy", "train", str(args.out / "spancat.cfg"), "--output", str(args.out / "out"),
         "--paths.train", str(args.out / "train.spacy"), "--paths.dev", str(args.out / "dev.spacy"),
         "--paths.vectors", args.vectors, "--training.max_steps", str(args.steps),
         "--training.eval_frequency", "500", "--training.patience", "0"],
        check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


if __name__ == "__main__":
    main()
