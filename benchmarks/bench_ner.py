"""crf_ner against spaCy's own ``ner`` on CoNLL-2003 NER (and CoNLL-2000 chunking).

``--task ner`` (default): both pipelines are spaCy's ``init config -p ner -o
efficiency`` config (tok2vec with MultiHashEmbed + MaxoutWindowEncoder, listened to by
the head); only the head differs: spaCy's ``ner`` (transition-based) or ``crf_ner``
(linear-chain CRF over BILUO tags, from ``configs/conll03_ner_crf.cfg``). Train
eng.train, dev eng.testa, test eng.testb (``../shared/data/conll2003`` beside the
checkout), converted with ``scripts/convert_conll.py`` (one Doc per document).

``--task chunk``: CoNLL-2000 (train.txt minus its last 90 docs of 10 sentences, which
are the dev set; test.txt) with ``configs/conll00_chunk_crf.cfg`` (the same tok2vec
with ``crf_ner`` as ``chunker``: BIO tags, spans in ``doc.spans["chunks"]``, scored as
``spans_chunks_*``); for reference, spaCy's ``ner`` trained on the same chunks stored
as entities (a second conversion without ``--spans-key``; scored as ``ents_*``).

Same seed, batcher, optimizer and step budget (``--steps``; no early stopping, dev eval
every ``--eval-frequency`` steps) for both models. Training, test scoring (gold
tokenization), inference speed and memory are measured in fresh subprocesses by
``_spacy_runs.py`` (see its docstring and bench_tagger.py's): train words/s without
the dev evaluations, test P/R/F overall and per type from ``nlp.evaluate``,
``nlp.pipe`` words/s on pre-tokenized test Docs (best of ``--passes``), peak RSS.
Children run with ``OPENBLAS_NUM_THREADS=1`` unless ``--blas-threads`` says otherwise.

seqeval cross-check: the gold and predicted spans of every test doc are written as
IOB2 tag sequences; seqeval's ``f1_score`` / ``classification_report`` (default,
conlleval-compatible mode) must give the same F1, overall and per type, as spaCy's
scorer (to 1e-6): both count exact (start, end, label) matches.

Run:  .venv/bin/python benchmarks/bench_ner.py --task ner --steps 6000
      .venv/bin/python benchmarks/bench_ner.py --task chunk --steps 6000
      .venv/bin/python benchmarks/bench_ner.py --task ner --steps 60 --tag smoke --out /tmp/x
Writes benchmarks/results/ner_conll03.{json,md} / chunk_conll00.{json,md} (with
``--tag NAME``: ..._NAME.*); corpora, models and logs go to benchmarks/work/.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _env import write_results  # noqa: E402
from _spacy_runs import (  # noqa: E402
    config_difference_lines,
    ROOT, SHARED_DATA, add_common_args, make_configs, make_spec, markdown_intro, run_info,
    speed_ratios, train_and_infer,
)

CONVERT = ROOT / "scripts" / "convert_conll.py"
TOLERANCE = 1e-6
# model: head component, CRF config (None: spaCy's generated baseline), corpus
# variant, spans key (None: doc.ents) and score prefix
TASKS: Dict[str, Dict[str, Any]] = {
    "ner": {
        "title": "crf_ner vs spaCy ner on CoNLL-2003 English NER",
        "stem": "ner_conll03",
        "data": SHARED_DATA / "conll2003",
        "splits": {"train": "eng.train", "dev": "eng.testa", "test": "eng.testb"},
        "baseline": "spacy_ner",
        "crf": "crf_ner",
        "models": {
            "spacy_ner": {"head": "ner", "config": None, "corpus": "ents", "spans_key": None},
            "crf_ner": {"head": "crf_ner", "config": ROOT / "configs" / "conll03_ner_crf.cfg",
                        "corpus": "ents", "spans_key": None},
        },
        "types": ["PER", "LOC", "ORG", "MISC"],
    },
    "chunk": {
        "title": "crf_ner (chunker, BIO, doc.spans[\"chunks\"]) on CoNLL-2000 chunking",
        "stem": "chunk_conll00",
        "data": SHARED_DATA / "conll2000",
        "splits": {"train": "train.txt", "test": "test.txt"},
        "holdout": 90,
        "baseline": "spacy_ner",
        "crf": "crf_chunker",
        "models": {
            "crf_chunker": {"head": "chunker",
                            "config": ROOT / "configs" / "conll00_chunk_crf.cfg",
                            "corpus": "spans", "spans_key": "chunks"},
            "spacy_ner": {"head": "ner", "config": None, "corpus": "ents", "spans_key": None},
        },
        "types": ["NP", "VP", "PP", "ADVP", "SBAR", "ADJP", "PRT", "CONJP", "INTJ", "LST", "UCP"],
    },
}


# --- data ---------------------------------------------------------------------------
def convert(src: Path, out: Path, extra: List[str], also: List[Path]) -> None:
    """``scripts/convert_conll.py src out extra``, unless the outputs are newer than
    the source and the converter."""
    targets = [out] + also
    newest_input = max(src.stat().st_mtime, CONVERT.stat().st_mtime)
    if all(t.exists() and t.stat().st_mtime >= newest_input for t in targets):
        return
    subprocess.run([sys.executable, str(CONVERT), str(src), str(out)] + extra, check=True)


def prepare_corpora(task: Dict[str, Any], name: str, work: Path) -> Dict[str, Path]:
    """The .spacy corpora of the task, one directory per variant (``ents``: spans in
    doc.ents; ``spans``: in doc.spans["chunks"]), each with train/dev/test.spacy."""
    data, splits = task["data"], task["splits"]
    dirs: Dict[str, Path] = {}
    for variant in sorted({m["corpus"] for m in task["models"].values()}):
        d = work / "corpora" / f"{name}_{variant}"
        d.mkdir(parents=True, exist_ok=True)
        key = ["--spans-key", "chunks"] if variant == "spans" else []
        if "holdout" in task:  # dev = the last N docs of train
            convert(data / splits["train"], d / "train.spacy",
                    key + ["--holdout", str(task["holdout"]), str(d / "dev.spacy")],
                    [d / "dev.spacy"])
        else:
            convert(data / splits["train"], d / "train.spacy", key, [])
            convert(data / splits["dev"], d / "dev.spacy", key, [])
        convert(data / splits["test"], d / "test.spacy", key, [])
        dirs[variant] = d
    return dirs


# --- scores -------------------------------------------------------------------------
def span_scores(scores: Dict[str, Any], spans_key: Any) -> Dict[str, Any]:
    """P/R/F (percent) overall and per type from an ``nlp.evaluate`` dict."""
    prefix = "ents" if spans_key is None else f"spans_{spans_key}"
    per_type = scores.get(f"{prefix}_per_type") or {}
    return {
        "score_prefix": prefix,
        "f": scores[f"{prefix}_f"] * 100,
        "p": scores[f"{prefix}_p"] * 100,
        "r": scores[f"{prefix}_r"] * 100,
        "per_type": {
            label: {k: v * 100 for k, v in prf.items()} for label, prf in sorted(per_type.items())
        },
    }


def seqeval_check(tags_path: Path, spacy_scores: Dict[str, Any]) -> Dict[str, Any]:
    """seqeval (default, conlleval-compatible mode) on the exported IOB2 tags, compared
    with spaCy's scorer overall and per type."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    tags = json.loads(tags_path.read_text())
    gold, pred = tags["gold"], tags["pred"]
    f1 = float(f1_score(gold, pred))
    report = classification_report(gold, pred, digits=4, output_dict=True, zero_division=0)
    report = {label: {k: float(v) for k, v in row.items()} for label, row in report.items()}
    per_type_diff = {}
    labels = set(spacy_scores["per_type"]) | {
        k for k in report if not k.endswith(" avg")
    }
    for label in sorted(labels):
        ours = spacy_scores["per_type"].get(label, {}).get("f", 0.0) / 100
        theirs = report.get(label, {}).get("f1-score", 0.0)
        per_type_diff[label] = abs(ours - theirs)
    diff = abs(f1 - spacy_scores["f"] / 100)
    return {
        "source": tags["source"],
        "spacy_f1": spacy_scores["f"] / 100,
        "seqeval_f1": f1,
        "seqeval_precision": float(precision_score(gold, pred, zero_division=0)),
        "seqeval_recall": float(recall_score(gold, pred, zero_division=0)),
        "abs_diff": diff,
        "per_type_abs_diff": per_type_diff,
        "agree": diff <= TOLERANCE and all(d <= TOLERANCE for d in per_type_diff.values()),
        "report": report,
        "report_text": classification_report(gold, pred, digits=4, zero_division=0),
    }


def summarize(task: Dict[str, Any], runs: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    base, crf = task["baseline"], task["crf"]
    if not {base, crf} <= set(runs):
        return {}
    s, c = runs[base], runs[crf]
    types = sorted(set(s["test"]["per_type"]) & set(c["test"]["per_type"]))
    return {
        "f_diff_points": c["test"]["f"] - s["test"]["f"],
        "p_diff_points": c["test"]["p"] - s["test"]["p"],
        "r_diff_points": c["test"]["r"] - s["test"]["r"],
        "per_type_f_diff_points": {
            t: c["test"]["per_type"][t]["f"] - s["test"]["per_type"][t]["f"] for t in types
        },
        **speed_ratios(c, s),
    }


# --- report -------------------------------------------------------------------------
def to_markdown(result: Dict[str, Any]) -> str:
    task = TASKS[result["task"]]
    runs, q = result["runs"], result["ratios"]
    order = [m for m in (task["crf"], task["baseline"]) if m in runs]
    if result["task"] == "ner":
        order = order[::-1]
    types = [t for t in task["types"] if any(t in runs[m]["test"]["per_type"] for m in order)]
    inline = result["task"] == "ner"  # per-type F1 as columns (4 types) or a second table
    lines = [f"# {task['title']}", "", *markdown_intro(result, "ner"), ""]
    if result["task"] == "chunk":
        lines += [
            f"CRF side: `{Path(task['models']['crf_chunker']['config']).name}` (`crf_ner` as "
            "`chunker`, BIO, spans in `doc.spans[\"chunks\"]`, scored as `spans_chunks_*`); "
            "the config check compares it with the `-p ner` baseline. Reference: spaCy's "
            "`ner` trained on the same chunks stored as entities (`ents_*`). Dev = the last "
            f"{task['holdout']} docs (10 sentences each) of train.txt.",
            "",
        ]
    head = "| model | F1 | P | R |" + ("".join(f" {t} F1 |" for t in types) if inline else "")
    head += " train words/s | infer words/s | peak RSS (MB) |"
    n_cols = head.count("|") - 1
    lines += [head, "| --- |" + " ---: |" * (n_cols - 1)]
    for m in order:
        r = runs[m]
        t = r["test"]
        row = f"| {m} (`{t['score_prefix']}`) | {t['f']:.2f} | {t['p']:.2f} | {t['r']:.2f} |"
        if inline:
            row += "".join(
                f" {t['per_type'][x]['f']:.2f} |" if x in t["per_type"] else " - |" for x in types
            )
        row += (f" {r['train_words_per_s']:,.0f} | {r['infer_words_per_s']:,.0f} | "
                f"{r['peak_rss_mb']:.0f} |")
        lines.append(row)
    if q:
        row = (f"| **crf / spaCy** | {q['f_diff_points']:+.2f} pts | {q['p_diff_points']:+.2f} | "
               f"{q['r_diff_points']:+.2f} |")
        if inline:
            row += "".join(f" {q['per_type_f_diff_points'].get(x, float('nan')):+.2f} |"
                           for x in types)
        row += (f" {q['train_words_per_s']:.2f}x | {q['infer_words_per_s']:.2f}x | "
                f"{q['peak_rss']:.2f}x |")
        lines.append(row)
    if not inline:
        lines += ["", "Per type (test F1; support = gold chunks):", "",
                  "| type | support |" + "".join(f" {m} |" for m in order),
                  "| --- | ---: |" + " ---: |" * len(order)]
        for x in types:
            support = next((runs[m]["seqeval"]["report"].get(x, {}).get("support")
                            for m in order if "seqeval" in runs[m]), None)
            lines.append(
                f"| {x} | {support:.0f} |" if support is not None else f"| {x} | - |"
            )
            lines[-1] += "".join(
                f" {runs[m]['test']['per_type'][x]['f']:.2f} |"
                if x in runs[m]["test"]["per_type"] else " - |" for m in order
            )
    lines += [
        "",
        "seqeval 1.2.2 cross-check (gold and predicted spans of every test doc as IOB2 "
        "tags; `f1_score`, default conlleval-compatible mode), tolerance "
        f"{TOLERANCE:g} overall and per type:",
        "",
        "| model | spaCy scorer F1 | seqeval F1 | abs diff | max per-type diff | agree |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for m in order:
        s = runs[m]["seqeval"]
        lines.append(
            f"| {m} | {s['spacy_f1']:.6f} | {s['seqeval_f1']:.6f} | {s['abs_diff']:.1e} | "
            f"{max(s['per_type_abs_diff'].values(), default=0.0):.1e} | "
            f"{'yes' if s['agree'] else 'NO'} |"
        )
    lines += [
        "",
        f"Test: {runs[order[0]]['test_docs']} docs, {runs[order[0]]['test_words']:,} words. "
        "Machine load (1-min load average before each subprocess; the machine has "
        f"{result['machine']['nproc']} cores, other jobs distort speed figures): "
        + ", ".join(f"{m} train {runs[m]['train_loadavg_before']:.1f}, infer "
                    f"{runs[m]['infer_loadavg_before']:.1f}" for m in order) + ".",
    ]
    lines += config_difference_lines(result["configs"])
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=sorted(TASKS), default="ner")
    p.add_argument("--models", nargs="+",
                   help="subset of the task's models (ner: spacy_ner crf_ner; "
                   "chunk: crf_chunker spacy_ner); default all")
    add_common_args(p, steps=6000, blas_threads=1)
    args = p.parse_args()
    task = TASKS[args.task]
    models = args.models or list(task["models"])
    unknown = set(models) - set(task["models"])
    if unknown:
        sys.exit(f"unknown models for --task {args.task}: {sorted(unknown)}")

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    suffix = f"_{args.tag}" if args.tag else ""
    log = work / f"{args.task}_{args.steps}{suffix}.log"
    corpora = prepare_corpora(task, args.task, work)
    heads = {m: spec["head"] for m, spec in task["models"].items()}
    configs = make_configs(work / "configs", "ner", task["models"][task["crf"]]["config"],
                           heads, task["baseline"], task["crf"])
    if not configs["identical_except_head"]:
        print("WARNING: configs differ besides the head:\n  " + "\n  ".join(configs["differences"]))

    runs: Dict[str, Dict[str, Any]] = {}
    for model in models:
        m = task["models"][model]
        corpus = corpora[m["corpus"]]
        spec = make_spec(
            model, f"{args.task} {model}", configs[model], corpus / "train.spacy",
            corpus / "dev.spacy", corpus / "test.spacy",
            work / "runs" / f"{args.task}_{model}_{args.steps}{suffix}", args,
            export_spans=True, spans_key=m["spans_key"],
        )

        def describe(inf: Dict[str, Any], key: Any = m["spans_key"]) -> str:
            t = span_scores(inf["scores"], key)
            return f"{t['score_prefix']} F1 {t['f']:.2f} (P {t['p']:.2f}, R {t['r']:.2f})"

        record, inf = train_and_infer(spec, log, args.steps, describe)
        test = span_scores(inf["scores"], m["spans_key"])
        check = seqeval_check(Path(inf["test_tags"]), test)
        print(f"    seqeval F1 {check['seqeval_f1'] * 100:.4f} vs spaCy "
              f"{check['spacy_f1'] * 100:.4f}: {'agree' if check['agree'] else 'DISAGREE'}",
              flush=True)
        runs[model] = {"test": test, **record, "seqeval": check,
                       "test_scores": inf["scores"]}

    result = {
        **run_info(args),
        "task": args.task,
        "data": {split: str(task["data"] / f) for split, f in task["splits"].items()},
        "corpora": {k: str(v) for k, v in corpora.items()},
        "configs": configs,
        "runs": runs,
        "ratios": summarize(task, runs),
    }
    write_results(args.out, f"{task['stem']}{suffix}", result, to_markdown(result))
    bad = [m for m, r in runs.items() if not r["seqeval"]["agree"]]
    if bad:
        raise AssertionError(f"seqeval and spaCy's scorer disagree for {bad} "
                             f"(tolerance {TOLERANCE}); see the result files")


if __name__ == "__main__":
    main()
