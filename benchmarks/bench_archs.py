"""Architecture benchmark: the neural sequence labelers (BiLSTM-CRF, char-LSTM /
char-CNN + BiLSTM-CRF, BiGRU-CRF, BiLSTM-softmax) and spaCy's default efficiency
pipeline, trained for the same number of epochs as the flair baseline
(``bench_flair.py``) on UD English EWT (UPOS, XPOS) and CoNLL-2003 NER.

Tasks (``--tasks``) and architectures (``--archs``); configs from ``configs/``:
  ewt_upos   ``ewt_upos_<arch>.cfg``: ``crf_tagger`` with ``attr = "pos"``, scored with
             ``pos_acc``; ``bilstm_softmax`` (spaCy's ``tagger``) is trained and tested on
             the UPOS-as-TAG copy of the corpus (scripts/upos_as_tag.py), ``tag_acc``.
  ewt_xpos   ``ewt_xpos_<arch>.cfg``, ``tag_acc``.
  conll03    ``conll03_<arch>.cfg`` (``crf_ner``, BILUO, ``doc.ents``), ``ents_f``;
             no ``bilstm_softmax``.
  ``spacy_default``: ``spacy init config -p tagger|ner -o efficiency`` (spaCy's
  ``tagger`` on the UPOS-as-TAG corpus for ewt_upos), for reference.
EWT: ``spacy convert -c conllu -n 10`` of ``../shared/data/ud_english_ewt`` (as
bench_tagger.py); CoNLL-2003: eng.train / eng.testa (dev) / eng.testb (test) through
scripts/convert_conll.py (as bench_ner.py).

Every run: ``training.max_epochs = --epochs`` (default 10, flair's budget),
``max_steps = 0``, no early stopping (patience 0), dev eval every ``--eval-frequency``
(1000) steps, ``--seed`` 0; ``model-last`` is scored on the test split with gold
tokenization. Training and inference run in fresh child processes of
``_spacy_runs.py`` with ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` = ``--torch-threads``,
``torch.set_num_threads(--torch-threads)`` and ``OPENBLAS_NUM_THREADS =
--blas-threads`` (all 1 by default). Per (task, arch): test accuracy (EWT) or span F1
(CoNLL), OOV-token accuracy for EWT (OOV: a test token whose exact form never occurs
in the training split, from the exported per-token gold/pred), train words/s (words of
the batches drawn / loop time minus dev evaluations), inference words/s (``nlp.pipe``
on pre-tokenized test Docs, ``--batch-size`` 256, best of ``--passes``), model size
(bytes of the saved ``model-last`` directory), peak RSS (``ru_maxrss`` of the inference
process, and of the training process). flair's figures come from
``benchmarks/results/flair_<task>.json`` (``--flair-dir``) when present.

The result files ``archs{_TAG}.{json,md}`` in ``--out`` are rewritten after each
finished run; runs already in the JSON (from another invocation with the same
settings, e.g. a second queue) are kept, so several invocations can fill one table.
Queues: each run holds an flock on ``RUN_DIR/claim.lock`` while it runs, and a run whose
lock another process holds is skipped; with ``--skip-done``, runs already in the result
file (same settings, no error) are skipped too. Two queues over the same runs in
opposite orders thus share the work without running anything twice.

Run:  .venv/bin/python benchmarks/bench_archs.py         # everything (17 runs), ~1.5 h on 1 free core
      .venv/bin/python benchmarks/bench_archs.py --tasks ewt_upos --archs charcnn_bilstm_crf
      .venv/bin/python benchmarks/bench_archs.py --tasks conll03 --archs bilstm_crf \\
          --epochs 1 --limit 50 --tag smoke --out /tmp/archs_smoke     (smoke run)
Models and logs: ``benchmarks/work/runs/archs_<task>_<arch>_e<epochs>[_l<limit>][_TAG]/``
(``run.log``: the children's output).
"""
import argparse
import fcntl
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# bench_vectors.py imports dir_bytes, split_file, token_scores and train_forms from here
from _env import (  # noqa: E402,F401
    RESULTS, blas_info, dir_bytes, fmt, limit_overrides, now, split_file, token_scores,
    train_forms, trained_run, updated_results,
)
from _spacy_runs import (  # noqa: E402
    ROOT, add_common_args, init_spacy_config, make_spec,
)

ARCHS = ["bilstm_crf", "charlstm_bilstm_crf", "charcnn_bilstm_crf", "bigru_crf",
         "bilstm_softmax", "spacy_default"]
TASKS: Dict[str, Dict[str, Any]] = {
    "ewt_upos": {"title": "UD EWT UPOS", "pipe": "tagger", "attr": "pos", "metric": "accuracy"},
    "ewt_xpos": {"title": "UD EWT XPOS", "pipe": "tagger", "attr": "tag", "metric": "accuracy"},
    "conll03": {"title": "CoNLL-2003 NER", "pipe": "ner", "metric": "span_f1"},
}
SOFTMAX_ARCHS = {"bilstm_softmax", "spacy_default"}  # spaCy's own heads (tagger / ner)
TARGETS = {
    "ewt_upos_charcnn_bilstm_crf_acc": 95.5,
    "conll03_f1": 87.0,
    "infer_vs_flair": 3.0,
}
SETTINGS = ("epochs", "steps", "limit", "seed", "eval_frequency", "batch_size", "passes",
            "torch_threads", "blas_threads")
PACKAGES = ("numpy", "torch", "thinc", "spacy", "spacy-seqlab")


# --- data ---------------------------------------------------------------------------
def corpora(tasks: List[str], work: Path) -> Dict[str, Dict[str, Path]]:
    """task -> variant -> directory with train/dev/test .spacy files; variants:
    ``plain`` and, for ewt_upos, ``upos_as_tag``."""
    out: Dict[str, Dict[str, Path]] = {}
    if any(t.startswith("ewt_") for t in tasks):
        from bench_tagger import prepare_corpus, upos_as_tag_corpus

        ewt = prepare_corpus(None, work)
        for t in tasks:
            if t.startswith("ewt_"):
                out[t] = {"plain": ewt}
        if "ewt_upos" in tasks:
            out["ewt_upos"]["upos_as_tag"] = upos_as_tag_corpus(ewt, work)
    if "conll03" in tasks:
        from bench_ner import TASKS as NER_TASKS, prepare_corpora

        out["conll03"] = {"plain": prepare_corpora(NER_TASKS["ner"], "ner", work)["ents"]}
    return out


# --- one run ------------------------------------------------------------------------
def run_suffix(args: argparse.Namespace) -> str:
    return (f"_e{args.epochs}" if args.epochs else f"_s{args.steps}") + \
        (f"_l{args.limit}" if args.limit else "") + (f"_{args.tag}" if args.tag else "")


def build_spec(task: str, arch: str, data: Dict[str, Path], args: argparse.Namespace,
               work: Path) -> Dict[str, Any]:
    t = TASKS[task]
    run_dir = work / "runs" / f"archs_{task}_{arch}{run_suffix(args)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if arch == "spacy_default":
        config = init_spacy_config(run_dir / "spacy_default.cfg", t["pipe"])
    else:
        config = ROOT / "configs" / f"{task}_{arch}.cfg"
    corpus = data["plain"]
    if t["metric"] == "accuracy":
        if arch in SOFTMAX_ARCHS:  # spaCy's tagger writes token.tag_ only
            score_key, export = "tag_acc", "tag"
            if task == "ewt_upos":
                corpus = data["upos_as_tag"]
        else:
            score_key, export = f"{t['attr']}_acc", t["attr"]
    else:
        score_key, export = "ents_f", None
    return make_spec(
        arch, f"{task} {arch}", str(config), split_file(task, corpus, "train"),
        split_file(task, corpus, "dev"), split_file(task, corpus, "test"), run_dir, args,
        limit_overrides(args.limit), task=task, score_key=score_key, export_tokens=export,
        test_limit=args.limit, torch_threads=args.torch_threads,
    )


def run_one(task: str, arch: str, data: Dict[str, Path], forms: Optional[Set[str]],
            args: argparse.Namespace, work: Path) -> Dict[str, Any]:
    spec = build_spec(task, arch, data, args, work)
    budget = f"{args.epochs} epochs" if args.epochs else f"{args.steps} steps"
    accuracy = TASKS[task]["metric"] == "accuracy"
    run, inf = trained_run(spec, budget, (forms or set()) if accuracy else None)
    scores = inf["scores"]
    run.update(test_score=scores[spec["score_key"]] * 100, threads=inf.get("threads"),
               s_per_epoch=run["train_s"] / args.epochs if args.epochs else None)
    if accuracy:
        tok = run["tokens"]
        print(f"    OOV accuracy {tok['oov_acc']:.2f} ({tok['oov_tokens']} tokens); token "
              f"accuracy from the export {tok['acc']:.2f}", flush=True)
    else:
        run["p"] = scores["ents_p"] * 100
        run["r"] = scores["ents_r"] * 100
        run["per_type_f"] = {k: v["f"] * 100 for k, v in sorted((scores.get("ents_per_type") or {}).items())}
    return run


# --- flair --------------------------------------------------------------------------
def flair_summary(flair_dir: Path, task: str) -> Optional[Dict[str, Any]]:
    path = flair_dir / f"flair_{task}.json"
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    test = d["test"]
    score = test.get("accuracy") if "accuracy" in test else test.get("span_f1_micro")
    return {
        "file": str(path),
        "date": d.get("date"),
        "score": 100 * score if score is not None else None,
        "oov_acc": 100 * test["oov_accuracy"] if test.get("oov_accuracy") is not None else None,
        "train_words_per_s": d["training"]["train_words_per_s"],
        "s_per_epoch": d["training"]["train_loop_s"] / max(1, d["training"]["epochs_done"]),
        "infer_words_per_s": d["inference"]["words_per_s"],
        "model_bytes": d["model"]["size_bytes"],
        "epochs": d["training"]["epochs_done"],
        "limit": d["data"].get("limit", 0),
        "threads": d.get("threads"),
        "model_selection": d["training"].get("model_selection"),
    }


# --- results ------------------------------------------------------------------------
def summarize(runs: Dict[str, Dict[str, Any]], flair: Dict[str, Any]) -> Dict[str, Any]:
    """Ratios to flair per run and the targets."""
    vs_flair: Dict[str, Dict[str, Any]] = {}
    for task, archs in runs.items():
        f = flair.get(task)
        for arch, r in archs.items():
            if "error" in r or not f or f.get("score") is None:
                continue
            q = {
                "score_diff_points": r["test_score"] - f["score"],
                "infer_words_per_s": r["infer_words_per_s"] / f["infer_words_per_s"],
                "train_words_per_s": r["train_words_per_s"] / f["train_words_per_s"],
                "model_bytes": r["model_bytes"] / f["model_bytes"],
            }
            q["infer_3x_at_equal_or_better_score"] = (
                q["infer_words_per_s"] >= TARGETS["infer_vs_flair"] and q["score_diff_points"] >= 0)
            vs_flair.setdefault(task, {})[arch] = q
    targets: Dict[str, Any] = {}
    r = runs.get("ewt_upos", {}).get("charcnn_bilstm_crf")
    if r and "error" not in r:
        targets["ewt_upos_charcnn_bilstm_crf_acc"] = {
            "target": TARGETS["ewt_upos_charcnn_bilstm_crf_acc"], "value": r["test_score"],
            "met": r["test_score"] >= TARGETS["ewt_upos_charcnn_bilstm_crf_acc"]}
    conll = {a: x["test_score"] for a, x in runs.get("conll03", {}).items() if "error" not in x}
    if conll:
        best = max(conll, key=conll.get)
        targets["conll03_f1"] = {"target": TARGETS["conll03_f1"], "best_arch": best,
                                 "value": conll[best], "met": conll[best] >= TARGETS["conll03_f1"],
                                 "met_by": sorted(a for a, v in conll.items() if v >= TARGETS["conll03_f1"])}
    for task, archs in vs_flair.items():
        targets[f"{task}_infer_3x_flair"] = {
            "target": TARGETS["infer_vs_flair"],
            "met": any(q["infer_3x_at_equal_or_better_score"] for q in archs.values()),
            "met_by": sorted(a for a, q in archs.items() if q["infer_3x_at_equal_or_better_score"]),
        }
    return {"vs_flair": vs_flair, "targets": targets}


def to_markdown(result: Dict[str, Any]) -> str:
    m, s = result["machine"], result["settings"]
    budget = f"{s['epochs']} epochs" if s["epochs"] else f"{s['steps']} steps"
    lines = [
        "# Architecture benchmark: neural CRF taggers vs spaCy default vs flair",
        "",
        f"Last update {result['date']}; {m['cpu_model']}, {m['nproc']} cores; load average "
        f"(1/5/15 min) at this update {', '.join(f'{x:.2f}' for x in result['loadavg'])}. "
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        f"Budget {budget} (`training.max_epochs`, `max_steps = 0`), no early stopping, dev "
        f"eval every {s['eval_frequency']} steps, seed {s['seed']}"
        + (f", **LIMIT: first {s['limit']} docs of each split**" if s["limit"] else "")
        + f"; `model-last` scored on the test split with gold tokenization. Children run with "
        f"OMP_NUM_THREADS=MKL_NUM_THREADS={s['torch_threads']}, "
        f"torch.set_num_threads({s['torch_threads']}), OPENBLAS_NUM_THREADS={s['blas_threads']}. "
        "Train words/s: words of the batches drawn / training-loop time minus dev "
        f"evaluations. Inference: `nlp.pipe` on pre-tokenized test Docs, batch_size "
        f"{s['batch_size']}, best of {s['passes']} passes. Model: bytes of `model-last/`. "
        "Peak RSS: `ru_maxrss` of the inference process (load + evaluate + pipe) / of the "
        "training process. OOV: test tokens whose form never occurs in the training split.",
        "",
        "| task | arch | test score | OOV acc | train words/s | s/epoch | infer words/s | "
        "model MB | peak RSS MB infer / train | vs flair: score | infer | load train / infer |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    vs = result["summary"]["vs_flair"]
    for task in TASKS:
        archs = result["runs"].get(task, {})
        for arch in ARCHS:
            if arch not in archs:
                continue
            r = archs[arch]
            if "error" in r:
                lines.append(f"| {task} | {arch} | FAILED: {r['error']} |" + " |" * 9)
                continue
            q = vs.get(task, {}).get(arch, {})
            oov = (f"{r['oov_acc']:.2f} ({r['tokens']['oov_tokens']})"
                   if r.get("oov_acc") is not None else "-")
            lines.append(
                f"| {task} | {arch} | {r['test_score']:.2f} ({r['score_key']}) | {oov} | "
                f"{r['train_words_per_s']:,.0f} | {fmt(r['s_per_epoch'], '.0f')} | "
                f"{r['infer_words_per_s']:,.0f} | {r['model_bytes'] / 1e6:.1f} | "
                f"{r['peak_rss_mb']:.0f} / {r['train_peak_rss_mb']:.0f} | "
                f"{fmt(q.get('score_diff_points'), '+.2f')} | "
                f"{fmt(q.get('infer_words_per_s'), '.2f')}{'x' if q else ''} | "
                f"{r['train_loadavg_before']:.1f} / {r['infer_loadavg_before']:.1f} |")
    lines += [
        "",
        "flair 0.15.1 baseline (`bench_flair.py`: SequenceTagger, char BiLSTM + one-hot "
        "words -> BiLSTM 256 -> CRF, no pretrained embeddings, SGD lr 0.1, batch 32, "
        "best-on-dev model scored on test; 1 torch thread; inference `predict` with "
        "mini_batch_size 128 sentences):",
        "",
        "| task | test score | OOV acc | train words/s | s/epoch | infer words/s | model MB | epochs | date |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for task in TASKS:
        f = result["flair"].get(task)
        if f is None:
            lines.append(f"| {task} | not available yet | | | | | | | |")
            continue
        lines.append(
            f"| {task} | {fmt(f['score'])} | {fmt(f['oov_acc'])} | {f['train_words_per_s']:,.0f} | "
            f"{f['s_per_epoch']:.0f} | {f['infer_words_per_s']:,.0f} | {f['model_bytes'] / 1e6:.1f} | "
            f"{f['epochs']}{' (LIMIT ' + str(f['limit']) + ')' if f['limit'] else ''} | {f['date']} |")
    t = result["summary"]["targets"]
    lines += ["", "Targets:", ""]
    x = t.get("ewt_upos_charcnn_bilstm_crf_acc")
    lines.append(f"- char-CNN + BiLSTM-CRF EWT UPOS >= {TARGETS['ewt_upos_charcnn_bilstm_crf_acc']} test "
                 "accuracy: " + (f"{x['value']:.2f}, **{'met' if x['met'] else 'NOT met'}**" if x else "not run yet"))
    x = t.get("conll03_f1")
    lines.append(f"- CoNLL-2003 F1 >= {TARGETS['conll03_f1']}: " + (
        f"best {x['value']:.2f} ({x['best_arch']}), **{'met' if x['met'] else 'NOT met'}**" if x else "not run yet"))
    for task in TASKS:
        x = t.get(f"{task}_infer_3x_flair")
        lines.append(f"- {task}: inference >= {TARGETS['infer_vs_flair']:.0f}x flair's words/s at equal "
                     "or better test score: " + (
                         f"**{'met' if x['met'] else 'NOT met'}**"
                         + (f" by {', '.join(x['met_by'])}" if x["met_by"] else "")
                         if x else "no flair result or no run yet"))
    lines += [
        "",
        "Differences to keep in mind: flair keeps its best-on-dev epoch, our runs are scored "
        "at the last step; flair batches sentences (128), `nlp.pipe` batches docs (EWT: 10 "
        "sentences per doc, CoNLL: whole documents); for ewt_upos `bilstm_softmax` and "
        "`spacy_default` (spaCy's `tagger`) are trained on the UPOS-as-TAG copy of the "
        "corpus and scored with `tag_acc`, the CRF taggers with `attr = \"pos\"` and `pos_acc`.",
    ]
    return "\n".join(lines)


def settings(args: argparse.Namespace) -> Dict[str, Any]:
    return {k: getattr(args, k) for k in SETTINGS}


def write(args: argparse.Namespace, new_runs: Dict[str, Dict[str, Any]]) -> None:
    """Merge ``new_runs`` into the result file (runs of other invocations with the same
    settings are kept) and rewrite JSON and Markdown."""
    with updated_results(args, "archs", settings(args), PACKAGES, to_markdown) as result:
        for task, archs in new_runs.items():
            result["runs"].setdefault(task, {}).update(archs)
        flair = {t: f for t in TASKS if (f := flair_summary(Path(args.flair_dir), t))}
        result.update(parent_threads=blas_info(), targets=TARGETS, flair=flair,
                      summary=summarize(result["runs"], flair))


def done_runs(args: argparse.Namespace) -> Set[tuple]:
    """(task, arch) of the successful runs in the result file, if its settings are ours."""
    suffix = f"_{args.tag}" if args.tag else ""
    path = Path(args.out) / f"archs{suffix}.json"
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return set()
    if old.get("settings") != settings(args):
        return set()
    return {(t, a) for t, archs in old.get("runs", {}).items()
            for a, r in archs.items() if "error" not in r}


def claim(task: str, arch: str, args: argparse.Namespace, work: Path) -> Optional[Any]:
    """An open, exclusively flocked ``claim.lock`` in the run dir, or None if another
    process holds it (that run is under way elsewhere)."""
    run_dir = work / "runs" / f"archs_{task}_{arch}{run_suffix(args)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    f = open(run_dir / "claim.lock", "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--archs", nargs="+", default=ARCHS, choices=ARCHS)
    p.add_argument("--epochs", type=int, default=10,
                   help="training.max_epochs (max_steps 0); 0: use --steps instead")
    p.add_argument("--limit", type=int, default=0,
                   help="first N docs of train, dev and test (smoke runs)")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="OMP_NUM_THREADS / MKL_NUM_THREADS and torch.set_num_threads in the children")
    p.add_argument("--flair-dir", default=RESULTS, help="where flair_<task>.json are read from")
    p.add_argument("--skip-done", action="store_true",
                   help="skip runs already in the result file (same settings, no error)")
    add_common_args(p, steps=0, blas_threads=1)
    p.set_defaults(eval_frequency=1000)
    args = p.parse_args()
    if not args.epochs and not args.steps:
        sys.exit("give --epochs or --steps")

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = corpora(args.tasks, work)
    for task in args.tasks:
        forms = None
        if TASKS[task]["metric"] == "accuracy":
            forms = train_forms(split_file(task, data[task]["plain"], "train"), args.limit)
        for arch in args.archs:
            if arch == "bilstm_softmax" and task == "conll03":
                continue
            lock = claim(task, arch, args, work)
            if lock is None:
                print(f"[{now()}] skip {task} {arch}: running in another process", flush=True)
                continue
            try:  # the claim is held until the run is in the result file
                if args.skip_done and (task, arch) in done_runs(args):
                    print(f"[{now()}] skip {task} {arch}: already in the results", flush=True)
                    continue
                try:
                    run = run_one(task, arch, data[task], forms, args, work)
                except SystemExit as e:  # a child failed: record it and go on
                    print(f"    FAILED: {e}", flush=True)
                    run = {"error": str(e), "finished": now()}
                write(args, {task: {arch: run}})
            finally:
                lock.close()


if __name__ == "__main__":
    main()
