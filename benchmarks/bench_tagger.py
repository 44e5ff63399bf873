"""crf_tagger against spaCy's own ``tagger`` on UD English EWT: accuracy and speed.

Both pipelines are spaCy's ``init config -p tagger -o efficiency`` config (a tok2vec
component with MultiHashEmbed + MaxoutWindowEncoder, listened to by the head); only the
head differs: spaCy's ``tagger`` (softmax) or ``crf_tagger`` (linear-chain CRF, from
``configs/ewt_xpos_crf.cfg``). Same corpus, seed, batcher, optimizer and step budget.

For each attribute (``--attrs tag pos``) and each model this script, in fresh
subprocesses:
  1. trains for ``--steps`` updates with spaCy's own training loop
     (``spacy.training.loop.train_while_improving``, what ``spacy train`` runs), counting
     the words of every batch it draws and timing the loop with the dev evaluations
     (every ``--eval-frequency`` steps) subtracted: train words/s = words / that time;
  2. loads ``model-last`` and scores the test set with gold tokenization
     (``nlp.evaluate`` on ``Example(Doc(words, spaces), reference)``);
  3. times ``nlp.pipe`` over fresh pre-tokenized test Docs (``--batch-size`` 256, best of
     ``--passes``) and records the peak RSS of that process (``ru_maxrss``).

UPOS: ``crf_tagger`` is trained with ``attr = "pos"`` and scored with ``pos_acc``.
spaCy's ``tagger`` only writes ``token.tag_``, so for UPOS it is trained and tested on
a copy of the corpus whose TAG column holds the UPOS labels, and scored with
``tag_acc``; both numbers are UPOS accuracy over the same tokens.

Run:  .venv/bin/python benchmarks/bench_tagger.py --steps 4000 --attrs tag pos
      .venv/bin/python benchmarks/bench_tagger.py --steps 300 --attrs tag   (smoke run)
Writes benchmarks/results/tagger_ewt.json and benchmarks/results/tagger_ewt.md (with
``--tag NAME``: tagger_ewt_NAME.*); models and logs go to benchmarks/work/.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _env import RESULTS, WORK, blas_info, machine, now, versions, write_results  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "ud_english_ewt"  # ../shared/data beside the checkout
SPLITS = ("train", "dev", "test")
CRF_CONFIG = ROOT / "configs" / "ewt_xpos_crf.cfg"
TARGETS = {"xpos_acc_gain_points": 0.2, "infer_ratio": 0.95, "train_ratio": 0.85}
HEADS = {"spacy_tagger": "tagger", "crf_tagger": "crf_tagger"}


# --- data and configs ---------------------------------------------------------------
def corpus_file(corpus: Path, split: str) -> Path:
    return corpus / f"en_ewt-ud-{split}.spacy"


def prepare_corpus(corpus: Optional[str], work: Path) -> Path:
    """The .spacy corpus: ``--corpus`` if given, else ``spacy convert -c conllu -n 10``."""
    if corpus:
        path = Path(corpus)
        missing = [s for s in SPLITS if not corpus_file(path, s).exists()]
        if missing:
            sys.exit(f"--corpus {path} lacks en_ewt-ud-{{{','.join(missing)}}}.spacy")
        return path
    path = work / "corpus"
    path.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        if not corpus_file(path, split).exists():
            src = DATA / f"en_ewt-ud-{split}.conllu"
            subprocess.run(
                [sys.executable, "-m", "spacy", "convert", "-c", "conllu", "-n", "10",
                 str(src), str(path)],
                check=True,
            )
    return path


def upos_as_tag_corpus(corpus: Path, work: Path) -> Path:
    """A copy of the corpus with ``token.tag_ = token.pos_`` (for spaCy's tagger)."""
    import spacy
    from spacy.tokens import DocBin

    out = work / "corpus_upos_as_tag"
    out.mkdir(parents=True, exist_ok=True)
    nlp = spacy.blank("en")
    for split in SPLITS:
        target = corpus_file(out, split)
        if target.exists() and target.stat().st_mtime >= corpus_file(corpus, split).stat().st_mtime:
            continue
        db = DocBin().from_disk(corpus_file(corpus, split))
        new = DocBin()
        for doc in db.get_docs(nlp.vocab):
            for token in doc:
                token.tag_ = token.pos_
            new.add(doc)
        new.to_disk(target)
    return out


def make_configs(work: Path, crf_config: Path) -> Dict[str, Any]:
    """spaCy's baseline config (generated) and the CRF config; checks that they agree
    everywhere except the head component and the score weights."""
    from thinc.api import Config

    cfg_dir = work / "configs"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    base = cfg_dir / "spacy_tagger.cfg"
    subprocess.run(
        [sys.executable, "-m", "spacy", "init", "config", "-p", "tagger", "-o",
         "efficiency", "-F", str(base)],
        check=True, stdout=subprocess.DEVNULL,
    )
    shutil.copy(crf_config, cfg_dir / "crf_tagger.cfg")

    def strip(path: Path, head: str) -> Dict[str, Any]:
        cfg = Config().from_disk(path, interpolate=False)
        cfg["components"].pop(head)
        cfg["nlp"].pop("pipeline")
        cfg["training"].pop("score_weights")
        return json.loads(json.dumps(cfg, default=str))

    a, b = strip(base, "tagger"), strip(cfg_dir / "crf_tagger.cfg", "crf_tagger")
    diffs: List[str] = []

    def walk(x: Any, y: Any, where: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y)):
                walk(x.get(key, "<missing>"), y.get(key, "<missing>"), f"{where}.{key}")
        elif x != y:
            diffs.append(f"{where.lstrip('.')}: spacy={x!r} crf={y!r}")

    walk(a, b, "")
    base_cfg = Config().from_disk(base, interpolate=False)
    crf_cfg = Config().from_disk(cfg_dir / "crf_tagger.cfg", interpolate=False)
    return {
        "spacy_tagger": str(base),
        "crf_tagger": str(cfg_dir / "crf_tagger.cfg"),
        "crf_source": str(crf_config),
        "identical_except_head": not diffs,
        "differences": diffs,
        "heads": {
            "spacy_tagger": dict(base_cfg["components"]["tagger"]["model"]),
            "crf_tagger": dict(crf_cfg["components"]["crf_tagger"]["model"]),
        },
    }


def run_spec(model: str, attr: str, corpus: Path, upos_corpus: Path, configs: Dict,
             args: argparse.Namespace, work: Path) -> Dict[str, Any]:
    """Paths, overrides and score key of one (model, attr) run."""
    data = corpus
    overrides: Dict[str, Any] = {}
    if model == "spacy_tagger":
        if attr == "pos":
            data = upos_corpus
        score_key = "tag_acc"
        overrides["training.score_weights"] = {"tag_acc": 1.0}
    else:
        score_key = f"{attr}_acc"
        overrides["components.crf_tagger.attr"] = attr
        overrides["training.score_weights"] = {score_key: 1.0}
    overrides.update({
        "paths.train": str(corpus_file(data, "train")),
        "paths.dev": str(corpus_file(data, "dev")),
        "training.max_steps": args.steps,
        "training.eval_frequency": args.eval_frequency,
        "training.patience": 0,
        "training.max_epochs": 0,
        "system.seed": args.seed,
    })
    out = work / "runs" / f"{attr}_{model}_{args.steps}"
    return {
        "model": model,
        "attr": attr,
        "config": configs[model],
        "overrides": overrides,
        "output": str(out),
        "test": str(corpus_file(data, "test")),
        "score_key": score_key,
        "batch_size": args.batch_size,
        "passes": args.passes,
        "profile": args.profile,
        "blas_threads": args.blas_threads,
    }


def run_child(mode: str, spec: Dict[str, Any], log: Path) -> Dict[str, Any]:
    out = Path(spec["output"])
    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / f"{mode}_spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    result_path = out / f"{mode}_result.json"
    if result_path.exists():
        result_path.unlink()
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    with open(log, "a", encoding="utf8") as f:
        f.write(f"\n===== {mode} {spec['attr']} {spec['model']} {now()} =====\n")
        f.flush()
        env = dict(os.environ)
        if spec.get("blas_threads"):
            env["OPENBLAS_NUM_THREADS"] = str(spec["blas_threads"])
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), f"_{mode}", str(spec_path)],
            stdout=f, stderr=subprocess.STDOUT, cwd=str(ROOT), env=env,
        )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{mode} of {spec['model']} ({spec['attr']}) failed; see {log}")
    result = json.loads(result_path.read_text())
    result["subprocess_wall_s"] = wall
    result["loadavg_before"] = load_before
    result["loadavg_after"] = os.getloadavg()
    return result


# --- child processes ----------------------------------------------------------------
def child_train(spec: Dict[str, Any]) -> None:
    """Initialize and train with spaCy's loop; time it without the dev evaluations."""
    import spacy
    import spacy_seqlab  # noqa: F401  (also registered through entry points)
    from spacy import util
    from spacy.schemas import ConfigSchemaTraining
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import (
        create_evaluation_callback, create_train_batches, train_while_improving,
    )
    from thinc.api import fix_random_seed

    out = Path(spec["output"])
    config = util.load_config(spec["config"], overrides=spec["overrides"], interpolate=False)
    t0 = time.perf_counter()
    nlp = init_nlp(config)
    init_s = time.perf_counter() - t0
    config = nlp.config.interpolate()
    fix_random_seed(config["training"]["seed"])
    T = util.registry.resolve(config["training"], schema=ConfigSchemaTraining)
    train_corpus, dev_corpus = util.resolve_dot_names(
        config, [T["train_corpus"], T["dev_corpus"]]
    )
    optimizer = T["optimizer"]
    evaluate = create_evaluation_callback(nlp, dev_corpus, T["score_weights"])
    eval_s = 0.0
    dev_curve: List[Any] = []

    def timed_evaluate():
        nonlocal eval_s
        e0 = time.perf_counter()
        result = evaluate()
        eval_s += time.perf_counter() - e0
        return result

    steps = words = 0
    losses: Dict[str, float] = {}
    profiler = None
    if spec["profile"]:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.perf_counter()
    for batch, info, is_best in train_while_improving(
        nlp, optimizer,
        create_train_batches(nlp, train_corpus, T["batcher"], T["max_epochs"]),
        timed_evaluate,
        dropout=T["dropout"], accumulate_gradient=T["accumulate_gradient"],
        patience=T["patience"], max_steps=T["max_steps"],
        eval_frequency=T["eval_frequency"], exclude=T["frozen_components"],
        annotating_components=T["annotating_components"],
        before_update=T["before_update"],
    ):
        steps = info["step"] + 1
        words = info["words"]
        if is_best is not None:
            dev_curve.append([info["step"], info["score"]])
            losses = dict(info["losses"])
            print(f"step {info['step']:>6} words {words:>9} dev {info['score']:.4f} "
                  f"loss {losses}", flush=True)
    loop_s = time.perf_counter() - t0
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(out / "train.prof"))
    train_s = loop_s - eval_s
    nlp.to_disk(out / "model-last")
    result = {
        "steps": steps,
        "words": words,
        "init_s": init_s,
        "loop_s": loop_s,
        "eval_s": eval_s,
        "train_s": train_s,
        "train_words_per_s": words / train_s,
        "dev_curve": dev_curve,
        "last_losses": losses,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    (out / "train_result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def child_infer(spec: Dict[str, Any]) -> None:
    """Test accuracy with gold tokenization, nlp.pipe words/s, and peak RSS."""
    import spacy
    import spacy_seqlab  # noqa: F401
    from spacy.tokens import Doc, DocBin
    from spacy.training import Example

    out = Path(spec["output"])
    nlp = spacy.load(out / "model-last")
    refs = list(DocBin().from_disk(spec["test"]).get_docs(nlp.vocab))

    def fresh_docs() -> List[Doc]:
        return [
            Doc(nlp.vocab, words=[t.text for t in ref], spaces=[bool(t.whitespace_) for t in ref])
            for ref in refs
        ]

    examples = [Example(doc, ref) for doc, ref in zip(fresh_docs(), refs)]
    scores = nlp.evaluate(examples)
    n_words = sum(len(ref) for ref in refs)
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    profiler = None
    if spec["profile"]:
        import cProfile

        profiler = cProfile.Profile()
    times = []
    for _ in range(spec["passes"]):
        docs = fresh_docs()
        if profiler is not None:
            profiler.enable()
        t0 = time.perf_counter()
        for _doc in nlp.pipe(docs, batch_size=spec["batch_size"]):
            pass
        times.append(time.perf_counter() - t0)
        if profiler is not None:
            profiler.disable()
    if profiler is not None:
        profiler.dump_stats(str(out / "infer.prof"))
    result = {
        "test_acc": scores[spec["score_key"]] * 100,
        "score_key": spec["score_key"],
        "test_docs": len(refs),
        "test_words": n_words,
        "infer_pass_s": times,
        "infer_words_per_s": n_words / min(times),
        "peak_rss_mb_after_load_and_eval": rss_loaded,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    (out / "infer_result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


# --- report -------------------------------------------------------------------------
def summarize(runs: Dict[str, Dict[str, Dict[str, Any]]]) -> Dict[str, Any]:
    ratios: Dict[str, Any] = {}
    for attr, models in runs.items():
        if not {"spacy_tagger", "crf_tagger"} <= set(models):
            continue
        s, c = models["spacy_tagger"], models["crf_tagger"]
        r = {
            "acc_diff_points": c["test_acc"] - s["test_acc"],
            "train_words_per_s": c["train_words_per_s"] / s["train_words_per_s"],
            "infer_words_per_s": c["infer_words_per_s"] / s["infer_words_per_s"],
            "peak_rss": c["peak_rss_mb"] / s["peak_rss_mb"],
        }
        met = {
            "infer_ratio": r["infer_words_per_s"] >= TARGETS["infer_ratio"],
            "train_ratio": r["train_words_per_s"] >= TARGETS["train_ratio"],
        }
        if attr == "tag":
            met["xpos_acc_gain_points"] = r["acc_diff_points"] >= TARGETS["xpos_acc_gain_points"]
        r["targets_met"] = met
        ratios[attr] = r
    return ratios


def to_markdown(result: Dict[str, Any]) -> str:
    names = {"tag": "XPOS (token.tag_)", "pos": "UPOS"}
    m = result["machine"]
    lines = [
        "# crf_tagger vs spaCy tagger on UD English EWT",
        "",
        f"Date {result['date']}; {m['cpu_model']}, {m['nproc']} cores; numpy BLAS threads "
        f"{result['threads'].get('numpy_blas_threads')}"
        + (f" (children run with OPENBLAS_NUM_THREADS={result['blas_threads_override']})"
           if result.get("blas_threads_override") else "")
        + ". Versions: "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        f"Same config (`spacy init config -p tagger -o efficiency`; identical except the "
        f"head: {result['configs']['identical_except_head']}), seed {result['seed']}, "
        f"{result['steps']} steps (spaCy's loop runs steps 0..N), dev eval every "
        f"{result['eval_frequency']} steps, no early stopping; `model-last` scored on the "
        f"test set with gold tokenization. Train words/s: words in the batches drawn / "
        f"loop time minus dev evaluations. Inference: `nlp.pipe` on pre-tokenized Docs, "
        f"batch_size {result['batch_size']}, best of {result['passes']} passes. Peak RSS: "
        f"`ru_maxrss` of the inference process (load + evaluate + pipe).",
        "",
        "| task | model | test acc | train words/s | infer words/s | peak RSS (MB) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for attr, models in result["runs"].items():
        for model in ("spacy_tagger", "crf_tagger"):
            if model not in models:
                continue
            r = models[model]
            lines.append(
                f"| {names[attr]} | {model} ({r['score_key']}) | {r['test_acc']:.2f} | "
                f"{r['train_words_per_s']:,.0f} | {r['infer_words_per_s']:,.0f} | "
                f"{r['peak_rss_mb']:.0f} |"
            )
        if attr in result["ratios"]:
            q = result["ratios"][attr]
            lines.append(
                f"| {names[attr]} | **crf / spaCy** | {q['acc_diff_points']:+.2f} pts | "
                f"{q['train_words_per_s']:.2f}x | {q['infer_words_per_s']:.2f}x | "
                f"{q['peak_rss']:.2f}x |"
            )
    lines += [
        "",
        f"Targets: XPOS accuracy >= +{TARGETS['xpos_acc_gain_points']} points, inference "
        f">= {TARGETS['infer_ratio']}x, training >= {TARGETS['train_ratio']}x spaCy's "
        "words/s. Met: "
        + "; ".join(
            f"{attr}: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in q["targets_met"].items())
            for attr, q in result["ratios"].items()
        ) + ".",
        "",
        "UPOS with spaCy's `tagger`: trained and tested on a copy of the corpus whose TAG "
        "column holds the UPOS labels (spaCy's tagger writes only `token.tag_`), scored "
        "with `tag_acc`; `crf_tagger` uses `attr = \"pos\"` and `pos_acc`.",
        "",
        "Machine load (1-min load average before each subprocess; the machine has "
        f"{m['nproc']} cores, other jobs distort speed figures): "
        + ", ".join(
            f"{attr}/{model} train {r['train_loadavg_before']:.1f}, infer {r['infer_loadavg_before']:.1f}"
            for attr, models in result["runs"].items() for model, r in models.items()
        ) + ".",
    ]
    if not result["configs"]["identical_except_head"]:
        lines += ["", "Config differences besides the head:", ""]
        lines += [f"- {d}" for d in result["configs"]["differences"]]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--attrs", nargs="+", default=["tag", "pos"], choices=["tag", "pos"])
    p.add_argument("--models", nargs="+", default=["spacy_tagger", "crf_tagger"],
                   choices=["spacy_tagger", "crf_tagger"])
    p.add_argument("--corpus", help="dir with en_ewt-ud-{train,dev,test}.spacy "
                   "(default: convert the CoNLL-U into benchmarks/work/corpus)")
    p.add_argument("--crf-config", default=str(CRF_CONFIG))
    p.add_argument("--eval-frequency", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=256, help="nlp.pipe batch size")
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true",
                   help="cProfile training and inference (train.prof, infer.prof in the run dirs)")
    p.add_argument("--blas-threads", type=int, default=0,
                   help="diagnostic: set OPENBLAS_NUM_THREADS in the child processes "
                   "(default 0: leave the environment as it is)")
    p.add_argument("--tag", default="", help="suffix of the result files")
    p.add_argument("--work", default=WORK)
    p.add_argument("--out", default=RESULTS)
    args = p.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = work / f"tagger_{args.steps}{'_' + args.tag if args.tag else ''}.log"
    corpus = prepare_corpus(args.corpus, work)
    upos_corpus = upos_as_tag_corpus(corpus, work) if "pos" in args.attrs else corpus
    configs = make_configs(work, Path(args.crf_config))
    if not configs["identical_except_head"]:
        print("WARNING: configs differ besides the head:\n  " + "\n  ".join(configs["differences"]))

    runs: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for attr in args.attrs:
        for model in args.models:
            spec = run_spec(model, attr, corpus, upos_corpus, configs, args, work)
            print(f"[{now()}] train {attr} {model} ({args.steps} steps) ...", flush=True)
            tr = run_child("train", spec, log)
            print(f"    {tr['train_words_per_s']:,.0f} train words/s, {tr['words']:,} words, "
                  f"{tr['train_s']:.0f}s (+{tr['eval_s']:.0f}s dev eval)", flush=True)
            inf = run_child("infer", spec, log)
            print(f"    test {spec['score_key']} {inf['test_acc']:.2f}, "
                  f"{inf['infer_words_per_s']:,.0f} infer words/s, "
                  f"peak RSS {inf['peak_rss_mb']:.0f} MB", flush=True)
            runs.setdefault(attr, {})[model] = {
                "score_key": spec["score_key"],
                "test_acc": inf["test_acc"],
                "train_words_per_s": tr["train_words_per_s"],
                "infer_words_per_s": inf["infer_words_per_s"],
                "peak_rss_mb": inf["peak_rss_mb"],
                "train_peak_rss_mb": tr["peak_rss_mb"],
                "train_words": tr["words"],
                "train_steps": tr["steps"],
                "train_s": tr["train_s"],
                "dev_eval_s": tr["eval_s"],
                "init_s": tr["init_s"],
                "train_subprocess_wall_s": tr["subprocess_wall_s"],
                "dev_curve": tr["dev_curve"],
                "infer_pass_s": inf["infer_pass_s"],
                "test_words": inf["test_words"],
                "test_docs": inf["test_docs"],
                "train_loadavg_before": tr["loadavg_before"][0],
                "infer_loadavg_before": inf["loadavg_before"][0],
                "overrides": spec["overrides"],
                "run_dir": spec["output"],
            }

    result = {
        "date": now(),
        "versions": versions("numpy", "torch", "thinc", "spacy", "spacy-seqlab"),
        "machine": machine(),
        "threads": blas_info(),
        "steps": args.steps,
        "eval_frequency": args.eval_frequency,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "passes": args.passes,
        "blas_threads_override": args.blas_threads or None,
        "loadavg_end": os.getloadavg(),
        "corpus": str(corpus),
        "configs": configs,
        "targets": TARGETS,
        "runs": runs,
        "ratios": summarize(runs),
    }
    suffix = f"_{args.tag}" if args.tag else ""
    write_results(args.out, f"tagger_ewt{suffix}", result, to_markdown(result))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("_train", "_infer"):
        spec = json.loads(Path(sys.argv[2]).read_text())
        {"_train": child_train, "_infer": child_infer}[sys.argv[1]](spec)
    else:
        main()
