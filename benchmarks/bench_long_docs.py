"""Long documents: one 100,000-token doc against the same tokens as 1,000 docs of 100
tokens, through ``crf_tagger`` (EWT XPOS) and ``crf_ner`` (CoNLL-2003, BILUO).

Each component is trained briefly on its corpus's training split (``--steps`` updates
of 32 sentences; cached in benchmarks/work/long_docs/), then runs ``nlp.pipe`` over
fresh pre-tokenized Docs of held-out text (test, then dev, then train sentences laid
end to end): the long doc alone, and the 100-token docs (batch ``--batch-size``),
alternating ``--reps`` times; the ratio is the median long time over the median
short time. Also measured: the long doc without segments (``long_rows`` off: the
one-row recursion), peak traced memory (tracemalloc) of ``nlp.pipe`` over the short
docs and over long docs of 25,000, 50,000 and 100,000 tokens, and the agreement of the
segmented results with the one-row recursion in float64 on the long doc's scores.

Run:  .venv/bin/python benchmarks/bench_long_docs.py
Writes benchmarks/results/long_docs.json (+ .md) and the "long_docs" part of
benchmarks/results/crf_core.json (targets: time ratio <= 1.3 for both components).
"""
import argparse
import os
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy  # noqa: E402
import spacy  # noqa: E402
from spacy.tokens import Doc  # noqa: E402
from spacy.training import Example  # noqa: E402
from spacy.training.converters import conll_ner_to_docs  # noqa: E402
from spacy.training.iob_utils import doc_to_biluo_tags  # noqa: E402
from thinc.api import fix_random_seed  # noqa: E402

from _crf_core import record  # noqa: E402
from _env import (  # noqa: E402
    RESULTS, WORK, blas_info, header, markdown_header, set_blas_threads, wait_idle, write_results,
)
from _spacy_runs import SHARED_DATA  # noqa: E402
from spacy_seqlab.crf import forward_backward, long_rows, viterbi  # noqa: E402

TARGET_RATIO = 1.3
Sentence = Tuple[List[str], List[str]]  # words, labels (XPOS tags or BILUO tags)


def ewt(split: str) -> List[Sentence]:
    sents, words, tags = [], [], []
    path = SHARED_DATA / "ud_english_ewt" / f"en_ewt-ud-{split}.conllu"
    for line in path.read_text(encoding="utf8").splitlines():
        if not line.strip():
            if words:
                sents.append((words, tags))
            words, tags = [], []
        elif not line.startswith("#"):
            cols = line.split("\t")
            if cols[0].isdigit():  # skip multi-word token ranges and empty nodes
                words.append(cols[1])
                tags.append(cols[4])
    return sents


def conll03(split: str) -> List[Sentence]:
    text = (SHARED_DATA / "conll2003" / f"eng.{split}").read_text(encoding="utf8")
    # without the document separators, spaCy's converter gives one doc per sentence
    text = "\n".join(line for line in text.splitlines() if not line.startswith("-DOCSTART-"))
    docs = conll_ner_to_docs(text, n_sents=1, no_print=True)
    return [([t.text for t in d], doc_to_biluo_tags(d)) for d in docs if len(d)]


CORPORA: Dict[str, Dict[str, Any]] = {
    "crf_tagger": {"read": ewt, "splits": ("test", "dev", "train"), "annotation": "tags"},
    "crf_ner": {"read": conll03, "splits": ("testb", "testa", "train"), "annotation": "entities"},
}


def trained(component: str, steps: int, work: Path) -> spacy.Language:
    """The component trained for ``steps`` updates of 32 training sentences (seed 0),
    loaded from ``work`` if a run with the same settings saved it there."""
    path = work / f"{component}_{steps}"
    if path.exists():
        try:
            return spacy.load(path)
        except ValueError as err:  # saved by an older format: train again
            print(f"retraining {component}: {err}", flush=True)
    corpus = CORPORA[component]
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe(component)
    examples = [
        Example.from_dict(Doc(nlp.vocab, words=words), {"words": words, corpus["annotation"]: labels})
        for words, labels in corpus["read"](corpus["splits"][-1])
    ]
    optimizer = nlp.initialize(lambda: examples)
    rng = random.Random(0)
    t0 = time.perf_counter()
    for step in range(steps):
        losses = nlp.update(rng.sample(examples, 32), sgd=optimizer)
        if step % 50 == 0:
            print(f"{component} step {step}: loss {losses[component]:.1f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(path)
    return nlp


def text_words(component: str, n_tokens: int) -> List[str]:
    corpus = CORPORA[component]
    words: List[str] = []
    for split in corpus["splits"]:
        for sentence, _ in corpus["read"](split):
            words.extend(sentence)
            if len(words) >= n_tokens:
                return words[:n_tokens]
    raise SystemExit(f"{component}: the corpus has fewer than {n_tokens} tokens")


def pipe_seconds(nlp: spacy.Language, make_docs: Callable[[], List[Doc]], batch_size: int,
                 ) -> Tuple[float, float]:
    """Wall-clock and CPU (this process) seconds of ``nlp.pipe`` over fresh docs."""
    docs = make_docs()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in nlp.pipe(docs, batch_size=batch_size):
        pass
    return time.perf_counter() - t0, time.process_time() - c0


def peak_mb(nlp: spacy.Language, docs: List[Doc], batch_size: int) -> float:
    tracemalloc.start()
    for _ in nlp.pipe(docs, batch_size=batch_size):
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def agreement(nlp: spacy.Language, component: str, words: List[str]) -> Dict[str, Any]:
    """The long doc's (clamped) scores decoded in segments against the one-row
    recursions in float64 (the reference) and in float32 (the components' precision)."""
    pipe = nlp.get_pipe(component)
    doc = Doc(nlp.vocab, words=words)
    scores = pipe.clamped(pipe.scores([doc]), [doc])
    E, lengths, pots = scores.emissions, numpy.asarray(scores.lengths), scores.potentials
    reference = viterbi(numpy, E.astype("float64"), lengths, pots)[0]
    segmented = long_rows.viterbi(numpy, E, lengths, pots)[0]
    one_row = viterbi(numpy, E, lengths, pots)[0]
    exact = forward_backward(numpy, E, lengths, pots, counts=None, dtype="float64")
    split = long_rows.forward_backward(numpy, E, lengths, pots, counts=None, dtype="float64")
    return {
        "viterbi_labels_differing_from_float64_one_row": int((segmented != reference).sum()),
        "one_row_float32_viterbi_labels_differing_from_float64": int((one_row != reference).sum()),
        "marginals_max_abs_diff": float(abs(split.nodes - exact.nodes).max()),
        "log_z_abs_diff": float(abs(split.log_z - exact.log_z).max()),
    }


def run_component(component: str, args: argparse.Namespace) -> Dict[str, Any]:
    nlp = trained(component, args.steps[component], Path(args.work) / "long_docs")
    words = text_words(component, args.tokens)
    n = args.doc_tokens
    long_docs = lambda: [Doc(nlp.vocab, words=words)]  # noqa: E731
    short_docs = lambda: [Doc(nlp.vocab, words=words[i : i + n]) for i in range(0, len(words), n)]  # noqa: E731
    pipe_seconds(nlp, short_docs, args.batch_size)  # warm-up
    pipe_seconds(nlp, lambda: [Doc(nlp.vocab, words=words[:5000])], args.batch_size)
    times: Dict[str, List[float]] = {"long": [], "short": [], "long_cpu": [], "short_cpu": []}
    for _ in range(args.reps):
        for kind, make_docs in (("short", short_docs), ("long", long_docs)):
            wall, cpu = pipe_seconds(nlp, make_docs, args.batch_size)
            times[kind].append(wall)
            times[f"{kind}_cpu"].append(cpu)
    median = {k: statistics.median(v) for k, v in times.items()}
    out: Dict[str, Any] = {
        "labels": len(nlp.get_pipe(component).output_labels),
        "tokens": len(words),
        "times_s": times,
        "median_s": median,
        "ratio": median["long"] / median["short"],
        "cpu_ratio": median["long_cpu"] / median["short_cpu"],
    }
    if not args.no_baseline:
        saved, long_rows.LONG_ROW = long_rows.LONG_ROW, 10**12
        try:
            one_row, one_row_cpu = pipe_seconds(nlp, long_docs, args.batch_size)
        finally:
            long_rows.LONG_ROW = saved
        out["one_row_long_s"] = one_row
        out["one_row_ratio"] = one_row / median["short"]
        out["one_row_cpu_ratio"] = one_row_cpu / median["short_cpu"]
    out["peak_traced_mb"] = {"short": peak_mb(nlp, short_docs(), args.batch_size)}
    for size in (args.tokens // 4, args.tokens // 2, args.tokens):
        out["peak_traced_mb"][f"long_{size}"] = peak_mb(nlp, [Doc(nlp.vocab, words=words[:size])],
                                                        args.batch_size)
    out["agreement"] = agreement(nlp, component, words)
    print(component, out, flush=True)
    return out


def to_markdown(result: Dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        "# Long documents", "", markdown_header(result), "",
        f"One {s['tokens']:,}-token doc vs the same tokens as {s['tokens'] // s['doc_tokens']:,} "
        f"docs of {s['doc_tokens']} tokens, `nlp.pipe` (batch size {s['batch_size']}), median of "
        f"{s['reps']} alternating runs (wall clock; CPU seconds of the process in brackets); "
        f"load average at start {result['loadavg']}.", "",
        "| component | labels | 100-token docs (s) | one long doc (s) | ratio | without segments (s) "
        "| ratio without | peak MB short / 25% / 50% / 100% long |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    nan = float("nan")
    for name, r in result["components"].items():
        mem = " / ".join(f"{v:.0f}" for v in r["peak_traced_mb"].values())
        m = r["median_s"]
        lines.append(
            f"| {name} | {r['labels']} | {m['short']:.2f} ({m['short_cpu']:.2f}) "
            f"| {m['long']:.2f} ({m['long_cpu']:.2f}) | {r['ratio']:.2f} ({r['cpu_ratio']:.2f}) "
            f"| {r.get('one_row_long_s', nan):.2f} | {r.get('one_row_ratio', nan):.2f} "
            f"({r.get('one_row_cpu_ratio', nan):.2f}) | {mem} |"
        )
    lines += ["", "Agreement on the long doc's scores (segments vs the one-row recursion in float64):", ""]
    for name, r in result["components"].items():
        lines.append(f"- {name}: " + ", ".join(f"{k} {v:.3g}" for k, v in r["agreement"].items()))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--components", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    p.add_argument("--tokens", type=int, default=100_000)
    p.add_argument("--doc-tokens", type=int, default=100)
    p.add_argument("--tagger-steps", type=int, default=300)
    p.add_argument("--ner-steps", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=1000, help="nlp.pipe batch size")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--blas-threads", type=int, default=0, help="0: leave as is")
    p.add_argument("--no-baseline", action="store_true", help="skip the run without segments")
    p.add_argument("--no-record", action="store_true", help="leave crf_core.json alone")
    p.add_argument("--work", default=WORK)
    p.add_argument("--out", default=RESULTS)
    args = p.parse_args()
    args.steps = {"crf_tagger": args.tagger_steps, "crf_ner": args.ner_steps}
    if args.blas_threads:
        set_blas_threads(args.blas_threads)
    idle = wait_idle(120)
    settings = {k: getattr(args, k) for k in ("tokens", "doc_tokens", "tagger_steps", "ner_steps",
                                              "batch_size", "reps", "blas_threads")}
    result = {
        **header("numpy", "thinc", "spacy", "spacy-seqlab"),
        "blas": blas_info(),
        "idle": idle,
        "settings": settings,
        "components": {c: run_component(c, args) for c in args.components},
    }
    markdown = to_markdown(result)
    write_results(args.out, "long_docs", result, markdown)
    if not args.no_record:
        targets = [
            {"name": f"long-document time ratio, {c} ({args.tokens:,} tokens in one doc vs "
                     f"{args.doc_tokens}-token docs)",
             "target": f"<= {TARGET_RATIO}", "value": round(r["ratio"], 3), "met": r["ratio"] <= TARGET_RATIO}
            for c, r in result["components"].items()
        ]
        record("long_docs", {"date": result["date"], "command": result["command"],
                             "settings": settings, "components": result["components"],
                             "targets": targets, "markdown": markdown.split("\n", 3)[-1]})


if __name__ == "__main__":
    main()
