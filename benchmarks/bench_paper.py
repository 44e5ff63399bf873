"""Paper-grade accuracy: GloVe 6B 50d (400,000 distinct rows), the papers' recipes
(``configs/*_paper_*.cfg``: Ma & Hovy's BiLSTM-CNN-CRF, Lample et al.'s BiLSTM-char-CRF)
and spaCy's ``ner`` / ``tagger`` on the accuracy tier's CNN with the same vectors and budget.

Runs (``--runs TASK:CONFIG[+VARIANT] ...``, ``--seeds``): ``configs/CONFIG.cfg`` trained by
``_spacy_runs.py`` as in bench_vectors.py (spaCy's loop in a child process, ``--steps``
updates, dev eval every ``--eval-frequency`` steps, no early stopping, ``model-best`` on
dev scored on the test split with gold tokens; 1 thread), ``paths.vectors = --vectors``
(made by ``scripts/fetch_vectors.py --source glove`` if missing). A ``+VARIANT`` adds the
named config overrides of ``VARIANTS`` (accuracy options, chosen on dev; test only reports;
``+a+b`` adds both).
Tasks as bench_vectors.py: ``ewt_xpos``, ``ewt_upos``, ``conll03``, ``conll00``.

``--time-pairs``: each task's winner (best mean dev among our configs) and its spaCy pair
loaded in this process, ``nlp.pipe`` timed interleaved on the pre-tokenized test docs.

Run:  nice -n 5 .venv/bin/python benchmarks/bench_paper.py --runs conll03:conll03_paper_bilstm_cnn_crf \\
          conll03:conll03_vectors_ner --seeds 0 1 2 --steps 8000 --eval-frequency 500
      .venv/bin/python benchmarks/bench_paper.py --time-pairs
Results: ``benchmarks/results/paper_accuracy.{json,md}`` (merged under a lock).
Models and logs: ``benchmarks/work/runs/paper_<task>_<config>[_<variant>]_s<steps>_seed<seed>/``.
"""
import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _env import blas_info, locked_runs, machine, markdown_header, now, versions, write_results  # noqa: E402
from _spacy_runs import ROOT, add_common_args  # noqa: E402
from bench_vectors import TASKS, corpus_dir, fmt, run_one, time_pairs  # noqa: E402

STEM = "paper_accuracy"
SPACY_PAIRS = {"conll03": "conll03_vectors_ner", "ewt_xpos": "ewt_xpos_vectors_softmax"}
SPACY_CONFIGS = set(SPACY_PAIRS.values())
TRF_CONFIGS = {"conll03_vectors_trf_crf", "ewt_upos_vectors_trf_crf", "ewt_xpos_vectors_trf_crf"}
PAPER = {"conll03": "conll03_paper_bilstm_cnn_crf"}  # the lecture's model, its paper's recipe


def pipe_of(config: str) -> str:
    from spacy.util import load_config

    return load_config(ROOT / "configs" / f"{config}.cfg")["nlp"]["pipeline"][0]


# name -> (config, steps) -> overrides; each states the option it tries on top of the config
HASH_ROWS = {"@architectures": "spacy.MultiHashEmbed.v2", "width": 50, "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
             "rows": [5000, 1000, 2500, 2500], "include_static_vectors": False}
# the paper's lr / (1 + 0.05 t) per epoch as a per-step decay: 0.05 / the steps of an epoch
SGD_DECAY = {"conll03_paper_bilstm_cnn_crf": 3.57e-05, "ewt_xpos_paper_bilstm_cnn_crf": 3.99e-05,
             "ewt_upos_paper_bilstm_cnn_crf": 3.99e-05, "conll00_chunk_paper_bilstm_cnn_crf": 5.59e-05}
VARIANTS: Dict[str, Callable[[str, int], Dict[str, Any]]] = {
    "docs": lambda c, s: {"corpora.train.gold_preproc": False, "corpora.dev.gold_preproc": False},
    "adam": lambda c, s: {"training.optimizer": {
        "@optimizers": "Adam.v1", "learn_rate": 0.002, "grad_clip": 5.0, "L2": 0.0}},
    "constant": lambda c, s: {"training.optimizer.learn_rate": 0.002},  # Adam's rate never decayed
    "decay": lambda c, s: {"training.optimizer.learn_rate": {  # Adam's rate 0.002 -> 0 over the steps
        "@schedules": "spacy_seqlab.warmup_linear.v1", "initial_rate": 0.002, "warmup_steps": 250,
        "total_steps": s}},
    "sgd": lambda c, s: {"training.optimizer": {  # the paper's SGD recipe, where a config uses Adam
        "@optimizers": "spacy_seqlab.SGDMomentum.v1", "momentum": 0.9, "nesterov": False, "L2": 0.0,
        "grad_clip": 5.0, "use_averages": False,
        "learn_rate": {"@schedules": "decaying.v1", "base_rate": 0.0015, "decay": SGD_DECAY[c], "t": 0}}},
    "hash": lambda c, s: {f"components.{pipe_of(c)}.model.tok2vec.embed.features": HASH_ROWS},
    "frozen": lambda c, s: {f"components.{pipe_of(c)}.model.tok2vec.embed.words.trainable_rows": 0},
    "word_dropout_0.05": lambda c, s: {f"components.{pipe_of(c)}.model.tok2vec.embed.words.word_dropout": 0.05},
    "dropout_0.3": lambda c, s: {f"components.{pipe_of(c)}.model.tok2vec.encode.dropout": 0.3},
}


def parse_run(p: argparse.ArgumentParser, item: str) -> Tuple[str, str, str]:
    task, _, rest = item.partition(":")
    config, _, variant = rest.partition("+")
    if task not in TASKS or not (ROOT / "configs" / f"{config}.cfg").exists():
        p.error(f"--runs {item}: expected TASK:CONFIG[+VARIANT], TASK in {list(TASKS)}, "
                "CONFIG a file in configs/")
    unknown = [v for v in variant.split("+") if variant and v not in VARIANTS]
    if unknown:
        p.error(f"--runs {item}: unknown variant {unknown[0]!r}; choose from {list(VARIANTS)} "
                "(several: a+b)")
    return task, config, variant


def run_key(task: str, config: str, variant: str, seed: int) -> str:
    return f"{task}:{config}{'+' + variant if variant else ''}:seed{seed}"


# --- targets and tables -------------------------------------------------------------
def groups(runs: Dict[str, Dict[str, Any]]) -> Dict[Tuple[str, str, str], List[Dict[str, Any]]]:
    out: Dict[Tuple[str, str, str], List[Dict[str, Any]]] = {}
    for r in runs.values():
        if "error" not in r and "task" in r:
            out.setdefault((r["task"], r["arch"], r["variant"]), []).append(r)
    return out


def winner(runs: Dict[str, Dict[str, Any]], task: str) -> Optional[Tuple[str, List[Dict[str, Any]]]]:
    """Our config (no variant, no transformer) with the best mean dev score on ``task``."""
    have = {c: rs for (t, c, v), rs in groups(runs).items()
            if t == task and not v and c not in SPACY_CONFIGS | TRF_CONFIGS}
    if not have:
        return None
    best = max(have, key=lambda c: statistics.mean(r["best_dev"] for r in have[c]))
    return best, have[best]


def mean_test(rs: List[Dict[str, Any]]) -> float:
    return statistics.mean(r["test_score"] for r in rs)


def score_target(name: str, target: float, rs: Optional[List[Dict[str, Any]]], config: str,
                 n_seeds: int = 3) -> Dict[str, Any]:
    if not rs:
        return {"name": name, "target": target, "value": None, "met": False, "note": f"{config}: not run"}
    value = mean_test(rs)
    out = {"name": name, "target": target, "value": round(value, 2), "met": value >= target and len(rs) >= n_seeds,
           "config": config, "seeds": sorted(r["seed"] for r in rs), "steps": sorted({r["steps"] for r in rs})}
    if len(rs) < n_seeds:
        out["note"] = f"only {len(rs)} of {n_seeds} seeds run: not met by rule"
    return out


def gain_target(name: str, target: float, runs: Dict[str, Dict[str, Any]], task: str) -> Dict[str, Any]:
    """Mean over seeds of (the winner - its spaCy pair), from the seeds with both."""
    w = winner(runs, task)
    base = {r["seed"]: r for r in groups(runs).get((task, SPACY_PAIRS[task], ""), [])}
    if w is None or not base:
        return {"name": name, "target": target, "value": None, "met": False, "note": "not run"}
    diffs = {r["seed"]: r["test_score"] - base[r["seed"]]["test_score"] for r in w[1] if r["seed"] in base}
    if not diffs:
        return {"name": name, "target": target, "value": None, "met": False, "note": "no seed has both"}
    value = statistics.mean(diffs.values())
    out = {"name": name, "target": target, "value": round(value, 3), "met": value >= target and len(diffs) >= 3,
           "config": w[0], "spacy": SPACY_PAIRS[task], "per_seed": {str(k): round(v, 3) for k, v in sorted(diffs.items())}}
    if len(diffs) < 3:
        out["note"] = f"only {len(diffs)} of 3 seeds: not met by rule"
    return out


def targets(runs: Dict[str, Dict[str, Any]], timing: Dict[str, Any]) -> List[Dict[str, Any]]:
    g = groups(runs)
    out = [score_target("CoNLL-2003 test F1, BiLSTM-CNN-CRF with GloVe 50d (the paper: 91.21 at 100d)",
                        90.5, g.get(("conll03", PAPER["conll03"], "")), PAPER["conll03"]),
           gain_target("CoNLL-2003 F1, our best non-transformer pipeline - spaCy ner (CNN, same vectors and budget)",
                       1.5, runs, "conll03")]
    for task, name, target in (("ewt_upos", "EWT UPOS test accuracy", 96.0),
                               ("ewt_xpos", "EWT XPOS test accuracy", 95.5),
                               ("conll00", "CoNLL-2000 chunking test F1", 94.5)):
        w = winner(runs, task)
        out.append(score_target(f"{name} (our config best on dev)", target, w and w[1], w[0] if w else task))
    out.insert(4, gain_target("EWT XPOS, our best - spaCy tagger, same vectors (points)", 0.5, runs, "ewt_xpos"))
    for task in SPACY_PAIRS:
        ratios = {k: v["ratio"] for k, v in timing.items() if k.startswith(task + ":") and "error" not in v}
        name = f"{task} inference words/s, winner / spaCy {SPACY_PAIRS[task]} (timed in one run)"
        out.append({"name": name, "target": 0.5, "value": round(min(ratios.values()), 3) if ratios else None,
                    "met": bool(ratios) and min(ratios.values()) >= 0.5,
                    **({"per_seed": {k: round(v, 3) for k, v in sorted(ratios.items())}} if ratios else {"note": "not timed"})})
    for task in TASKS:
        w = winner(runs, task)
        if w:
            minutes = max((r["train_subprocess_wall_s"]) / 60 for r in w[1])
            out.append({"name": f"{task} winner {w[0]}: training minutes on one core (slowest seed)",
                        "target": 60, "value": round(minutes, 1), "met": minutes <= 60})
    return out


def options(runs: Dict[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """What each variant bought on dev: its best dev score against the best dev score of
    the same config and seed without it over the same steps (the dev curve of a longer
    baseline run is cut at the variant's step cap; the configs' schedules do not depend
    on the cap)."""
    out = []
    for r in runs.values():
        if "error" in r or not r.get("variant"):
            continue
        base = runs.get(run_key(r["task"], r["arch"], r.get("base_variant", ""), r["seed"]))
        if not base or "error" in base:
            continue
        curve = [d for step, d in base["dev_curve"] if step <= r["steps"]]
        if curve:
            variant = "+".join(filter(None, [r.get("base_variant"), r["variant"]]))
            out.append({"task": r["task"], "config": r["arch"], "variant": variant, "seed": r["seed"],
                        "steps": r["steps"], "dev": round(r["best_dev"] * 100, 2),
                        "baseline_dev": round(max(curve) * 100, 2),
                        "gain": round((r["best_dev"] - max(curve)) * 100, 2)})
    return sorted(out, key=lambda o: (o["task"], o["config"], o["variant"], o["seed"]))


def to_markdown(result: Dict[str, Any]) -> str:
    lines = ["# Paper-grade accuracy: GloVe 6B 50d and the papers' recipes", "",
             markdown_header(result), "",
             "Each run: `spacy train`'s loop for the step cap (no early stopping), dev eval every `eval` "
             "steps, `model-best` on dev scored on test with gold tokens; 1 thread per run; vectors "
             "GloVe 6B 50d (`scripts/fetch_vectors.py --source glove`) unless the config says otherwise. "
             "Variants (`+name`) are accuracy options chosen on dev. Load: 1-minute load average when "
             "training started.", "",
             "| task | config | seed | steps / eval | test | best dev | OOV acc | train min | "
             "train words/s | infer words/s | model MB | load |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    runs = {k: v for k, v in result["runs"].items() if k != "_timing"}
    for key in sorted(runs):
        r = runs[key]
        if "error" in r:
            lines.append(f"| {key} | FAILED: {r['error'][:200]} |" + " |" * 10)
            continue
        name = r["arch"] + (f" +{r['variant']}" if r["variant"] else "")
        lines.append(f"| {r['task']} | `{name}` | {r['seed']} | {r['steps']} / {r['eval_frequency']} | "
                     f"{r['test_score']:.2f} | {fmt(r['best_dev'] and r['best_dev'] * 100)} | "
                     f"{fmt(r.get('oov_acc'))} | {r['train_subprocess_wall_s'] / 60:.1f} | "
                     f"{r['train_words_per_s']:,.0f} | {r['infer_words_per_s']:,.0f} | "
                     f"{r['model_bytes_with_vectors'] / 1e6:.1f} | {r['train_loadavg_before']:.1f} |")
    notes = [f"- `{key}`: {r['note']}" for key, r in sorted(runs.items()) if r.get("note")]
    lines += ["", "Notes:", "", *notes] if notes else []
    lines += ["", "Means over seeds:", "", "| task | config | seeds | test | best dev | OOV acc |",
              "| --- | --- | --- | ---: | ---: | ---: |"]
    for (task, config, variant), rs in sorted(groups(runs).items()):
        oov = [r["oov_acc"] for r in rs if r.get("oov_acc") is not None]
        lines.append(f"| {task} | `{config}{' +' + variant if variant else ''}` | "
                     f"{', '.join(str(r['seed']) for r in sorted(rs, key=lambda r: r['seed']))} | "
                     f"{mean_test(rs):.2f} | {statistics.mean(r['best_dev'] for r in rs) * 100:.2f} | "
                     f"{fmt(statistics.mean(oov) if oov else None)} |")
    if result["options"]:
        lines += ["", "Accuracy options on dev (best dev score up to the variant's step cap, against "
                  "the config without it over at most the same steps; `a+b`: option b on top of "
                  "variant a, against a; test scores are not used):", "",
                  "| task | config | option | seed | steps | dev | without | gain |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {o['task']} | `{o['config']}` | {o['variant']} | {o['seed']} | {o['steps']} | "
                  f"{o['dev']:.2f} | {o['baseline_dev']:.2f} | {o['gain']:+.2f} |" for o in result["options"]]
    if result["timing"]:
        lines += ["", "Inference, winner vs spaCy pair, interleaved in one process (`nlp.pipe`, "
                  "pre-tokenized test docs with their sentence starts, best of passes, 1 BLAS thread):", "",
                  "| pair | ours words/s | spaCy words/s | ratio | load |", "| --- | ---: | ---: | ---: | ---: |"]
        for k, v in sorted(result["timing"].items()):
            if "error" not in v:
                w = v["words_per_s"]
                lines.append(f"| {k} {v['crf']} / {v['spacy']} | {w[v['crf']]:,.0f} | {w[v['spacy']]:,.0f} | "
                             f"{v['ratio']:.2f}x | {v['loadavg'][0]:.1f} |")
    lines += ["", "Targets (as measured):", ""]
    for t in result["targets"]:
        extra = "".join(f"; {k} {t[k]}" for k in ("config", "seeds", "per_seed", "note") if k in t)
        lines.append(f"- {t['name']}: target {t['target']}, value {fmt(t['value'], '')}, "
                     f"**{'met' if t['met'] else 'missed'}**{extra}")
    return "\n".join(lines)


def write(args: argparse.Namespace, new_runs: Dict[str, Dict[str, Any]],
          timing: Optional[Dict[str, Any]] = None) -> None:
    with locked_runs(args.out, args.work, STEM, {"stem": STEM}) as runs:
        all_timing = {**runs.pop("_timing", {}), **(timing or {})}
        runs.update(new_runs)
        result = {"date": now(), "versions": versions("numpy", "torch", "thinc", "spacy", "spacy-seqlab"),
                  "machine": machine(), "loadavg": os.getloadavg(), "parent_threads": blas_info(),
                  "settings": {"stem": STEM}, "vectors": args.vectors, "runs": dict(runs),
                  "timing": all_timing, "options": options(runs), "targets": targets(runs, all_timing)}
        md = to_markdown(result)
        result["runs"]["_timing"] = all_timing
        write_results(args.out, STEM, result, md)


def winner_pairs(runs: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Runs re-keyed as bench_vectors.time_pairs reads them: each winner as ``crf``, its
    spaCy pair as ``softmax`` / ``ner``."""
    out = {}
    for task, spacy_config in SPACY_PAIRS.items():
        w = winner(runs, task)
        if w is None:
            continue
        for r in w[1]:
            out[f"{task}:crf:seed{r['seed']}"] = {**r, "arch": "crf"}
        for r in groups(runs).get((task, spacy_config, ""), []):
            out[f"{task}:{'ner' if task == 'conll03' else 'softmax'}:seed{r['seed']}"] = {
                **r, "arch": "ner" if task == "conll03" else "softmax"}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="*", default=[], metavar="TASK:CONFIG[+VARIANT]")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--vectors", default=str(ROOT / "assets" / "glove_6b_50d"))
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--reuse", action="store_true", help="evaluate a finished training with the same settings")
    p.add_argument("--time-pairs", action="store_true")
    p.add_argument("--report", action="store_true", help="only rewrite the result files")
    add_common_args(p, steps=8000, blas_threads=1)
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    todo = [parse_run(p, item) for item in args.runs]
    if todo:
        sys.path.insert(0, str(ROOT / "scripts"))
        from fetch_vectors import resolve

        print(resolve(args.vectors, "glove"), flush=True)
    corpora = {task: corpus_dir(task, work) for task in sorted({t for t, _, _ in todo})}
    for seed in args.seeds:
        for task, config, variant in todo:
            overrides = {k: v for name in filter(None, variant.split("+"))
                         for k, v in VARIANTS[name](config, args.steps).items()}
            try:
                run = run_one(task, config, seed, corpora[task], args, work, variant, overrides,
                              config=ROOT / "configs" / f"{config}.cfg", prefix="paper")
            except SystemExit as e:
                print(f"    FAILED: {e}", flush=True)
                run = {"error": str(e), "finished": now(), "task": task, "arch": config,
                       "variant": variant, "seed": seed}
            write(args, {run_key(task, config, variant, seed): run})
    if args.time_pairs:
        with locked_runs(args.out, args.work, STEM, {"stem": STEM}) as runs:
            done = {k: v for k, v in runs.items() if k != "_timing"}
        write(args, {}, time_pairs(winner_pairs(done), args))
    if args.report:
        write(args, {})


if __name__ == "__main__":
    main()
