"""Shared machinery of the spaCy-pipeline benchmarks (bench_tagger.py, bench_ner.py).

- ``make_configs``: generate spaCy's baseline config (``spacy init config -p PIPE -o
  efficiency``), copy the CRF config beside it and check that the two agree everywhere
  except the head component (and ``[nlp] pipeline`` / ``[training.score_weights]``).
- ``make_spec`` / ``run_child`` / ``train_and_infer``: each model is trained, then
  evaluated, in a fresh subprocess running this file:
      python benchmarks/_spacy_runs.py _train RUN_DIR/train_spec.json
      python benchmarks/_spacy_runs.py _infer RUN_DIR/infer_spec.json
  ``_train`` runs spaCy's own loop (``train_while_improving``, what ``spacy train``
  runs) and times it without the dev evaluations; ``_infer`` loads ``model-last``,
  scores the test set with gold tokenization (``nlp.evaluate`` on
  ``Example(Doc(words, spaces), reference)``; the full scores dict is returned), times
  ``nlp.pipe`` over fresh pre-tokenized Docs (best of N passes) and records the peak
  RSS. With ``spec["model_best"]``, ``_train`` also saves the best-on-dev model as
  ``model-best`` (as ``spacy train`` does) and ``_infer`` scores that one instead. With ``spec["export_spans"]`` it also writes the gold and predicted spans of
  every test doc (``doc.ents``, or ``doc.spans[spec["spans_key"]]``) as IOB2 tag
  sequences to ``RUN_DIR/test_tags.json``; with ``spec["export_tokens"]`` (``"tag"`` or
  ``"pos"``) the words and the gold and predicted values of that attribute of every
  test token to ``RUN_DIR/test_tokens.json``. ``spec["test_limit"]``: score and time
  only the first N test docs. ``spec["torch_threads"]``: ``OMP_NUM_THREADS`` /
  ``MKL_NUM_THREADS`` in the child's environment and ``torch.set_num_threads`` in it.
- ``args.epochs`` (if the benchmark has that option and it is set) replaces the step
  budget: ``training.max_epochs = epochs``, ``max_steps = 0``.
"""
import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _env import RESULTS, WORK, blas_info, machine, now, versions  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"  # ../shared/data beside the checkout


# --- command line and configs -------------------------------------------------------
def add_common_args(p: argparse.ArgumentParser, steps: int, blas_threads: int = 0) -> None:
    """The options every spaCy-pipeline benchmark has."""
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--eval-frequency", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=256, help="nlp.pipe batch size")
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true",
                   help="cProfile training and inference (train.prof, infer.prof in the run dirs)")
    p.add_argument("--blas-threads", type=int, default=blas_threads,
                   help="set OPENBLAS_NUM_THREADS in the child processes "
                   f"(default {blas_threads}; 0: leave the environment as it is)")
    p.add_argument("--tag", default="", help="suffix of the result files")
    p.add_argument("--work", default=WORK)
    p.add_argument("--out", default=RESULTS)


def init_spacy_config(path: Path, pipe: str) -> Path:
    """spaCy's baseline config for ``pipe``: ``spacy init config -p PIPE -o efficiency``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "spacy", "init", "config", "-p", pipe, "-o",
         "efficiency", "-F", str(path)],
        check=True, stdout=subprocess.DEVNULL,
    )
    return path


def make_configs(cfg_dir: Path, pipe: str, crf_config: Path, models: Dict[str, str],
                 spacy_model: str, crf_model: str) -> Dict[str, Any]:
    """spaCy's baseline config (``init config -p PIPE -o efficiency``) as
    ``cfg_dir/{spacy_model}.cfg`` and a copy of ``crf_config`` as
    ``cfg_dir/{crf_model}.cfg``; checks that they agree everywhere except the head
    component (``models[name]`` is each model's head component name), the pipeline
    list and the score weights."""
    from thinc.api import Config

    cfg_dir.mkdir(parents=True, exist_ok=True)
    base = cfg_dir / f"{spacy_model}.cfg"
    crf = cfg_dir / f"{crf_model}.cfg"
    init_spacy_config(base, pipe)
    shutil.copy(crf_config, crf)

    def strip(path: Path, head: str) -> Dict[str, Any]:
        cfg = Config().from_disk(path, interpolate=False)
        cfg["components"].pop(head)
        cfg["nlp"].pop("pipeline")
        cfg["training"].pop("score_weights")
        return json.loads(json.dumps(cfg, default=str))

    a, b = strip(base, models[spacy_model]), strip(crf, models[crf_model])
    diffs: List[str] = []

    def walk(x: Any, y: Any, where: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y)):
                walk(x.get(key, "<missing>"), y.get(key, "<missing>"), f"{where}.{key}")
        elif x != y:
            diffs.append(f"{where.lstrip('.')}: spacy={x!r} crf={y!r}")

    walk(a, b, "")
    base_cfg = Config().from_disk(base, interpolate=False)
    crf_cfg = Config().from_disk(crf, interpolate=False)
    return {
        spacy_model: str(base),
        crf_model: str(crf),
        "crf_source": str(crf_config),
        "identical_except_head": not diffs,
        "differences": diffs,
        "heads": {
            spacy_model: dict(base_cfg["components"][models[spacy_model]]["model"]),
            crf_model: dict(crf_cfg["components"][models[crf_model]]["model"]),
        },
    }


def make_spec(model: str, label: str, config: str, train: Path, dev: Path, test: Path,
              output: Path, args: argparse.Namespace, overrides: Optional[Dict[str, Any]] = None,
              **extra: Any) -> Dict[str, Any]:
    """One run: ``config`` with the benchmark's overrides (paths, ``--steps`` updates
    or ``--epochs`` epochs, dev eval every ``--eval-frequency`` steps, no early
    stopping, ``--seed``) on top of the run's own ``overrides``; ``extra`` keys go into
    the spec as they are."""
    epochs = getattr(args, "epochs", 0) or 0
    all_overrides: Dict[str, Any] = dict(overrides or {})
    all_overrides.update({
        "paths.train": str(train),
        "paths.dev": str(dev),
        "training.max_steps": 0 if epochs else args.steps,
        "training.eval_frequency": args.eval_frequency,
        "training.patience": 0,
        "training.max_epochs": epochs,
        "system.seed": args.seed,
    })
    spec = {
        "model": model,
        "label": label,
        "config": config,
        "config_sha256": hashlib.sha256(Path(config).read_bytes()).hexdigest(),
        "overrides": all_overrides,
        "output": str(output),
        "test": str(test),
        "batch_size": args.batch_size,
        "passes": args.passes,
        "profile": args.profile,
        "blas_threads": args.blas_threads,
    }
    spec.update(extra)
    return spec


# --- parent side --------------------------------------------------------------------
def run_child(mode: str, spec: Dict[str, Any], log: Path) -> Dict[str, Any]:
    """Run ``_train`` or ``_infer`` of ``spec`` in a fresh process (output appended to
    ``log``) and return its result, with wall time and load averages."""
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
        f.write(f"\n===== {mode} {spec['label']} {now()} =====\n")
        f.flush()
        env = dict(os.environ)
        if spec.get("blas_threads"):
            env["OPENBLAS_NUM_THREADS"] = str(spec["blas_threads"])
        if spec.get("torch_threads"):
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(spec["torch_threads"])
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), f"_{mode}", str(spec_path)],
            stdout=f, stderr=subprocess.STDOUT, cwd=str(ROOT), env=env,
        )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{mode} of {spec['label']} failed; see {log}")
    result = json.loads(result_path.read_text())
    result["subprocess_wall_s"] = wall
    result["loadavg_before"] = load_before
    result["loadavg_after"] = os.getloadavg()
    (out / f"{mode}_record.json").write_text(json.dumps(result, indent=2))
    return result


TRAINING_KEYS = ("config", "config_sha256", "overrides", "torch_threads", "blas_threads", "profile")


def finished_training(spec: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The record of a training already finished in ``spec["output"]`` with the same
    config (path and text), overrides and threads (e.g. by another benchmark sharing the run), or None."""
    out = Path(spec["output"])
    try:
        old = json.loads((out / "train_spec.json").read_text())
        record = json.loads((out / "train_record.json").read_text())
    except (OSError, ValueError):
        return None
    same = all(old.get(k) == spec.get(k) for k in TRAINING_KEYS)
    return record if same and (out / "model-last" / "meta.json").exists() else None


def train_and_infer(spec: Dict[str, Any], log: Path, steps: Any,
                    describe: Callable[[Dict[str, Any]], str],
                    reuse: bool = False) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Train, then evaluate, one model; print progress (``describe(infer_result)``
    names its test scores; ``steps``: the budget, a step count or a description).
    With ``reuse``, a training already finished in the run dir with the same settings
    (``finished_training``) is evaluated instead of trained again.
    Returns the record shared by all benchmarks and the ``_infer`` result
    (``scores``: the full ``nlp.evaluate`` dict)."""
    budget = f"{steps} steps" if isinstance(steps, int) else steps
    tr = finished_training(spec) if reuse else None
    if tr is not None:
        print(f"[{now()}] reuse the finished training of {spec['label']} in {spec['output']}", flush=True)
    else:
        print(f"[{now()}] train {spec['label']} ({budget}) ...", flush=True)
        tr = run_child("train", spec, log)
    print(f"    {tr['train_words_per_s']:,.0f} train words/s, {tr['words']:,} words, "
          f"{tr['train_s']:.0f}s (+{tr['eval_s']:.0f}s dev eval)", flush=True)
    inf = run_child("infer", spec, log)
    print(f"    test {describe(inf)}, {inf['infer_words_per_s']:,.0f} infer words/s, "
          f"peak RSS {inf['peak_rss_mb']:.0f} MB", flush=True)
    record = {
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
    return record, inf


def speed_ratios(crf: Dict[str, Any], base: Dict[str, Any]) -> Dict[str, float]:
    """crf / spaCy ratios of training and inference words/s and of peak RSS."""
    return {
        "train_words_per_s": crf["train_words_per_s"] / base["train_words_per_s"],
        "infer_words_per_s": crf["infer_words_per_s"] / base["infer_words_per_s"],
        "peak_rss": crf["peak_rss_mb"] / base["peak_rss_mb"],
    }


def run_info(args: argparse.Namespace) -> Dict[str, Any]:
    """Date, versions, machine, threads and the shared settings of a result file."""
    return {
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
    }


def markdown_intro(result: Dict[str, Any], pipe: str) -> List[str]:
    """The environment line and the method paragraph of a result file."""
    m = result["machine"]
    return [
        f"Date {result['date']}; {m['cpu_model']}, {m['nproc']} cores; numpy BLAS threads "
        f"{result['threads'].get('numpy_blas_threads')}"
        + (f" (children run with OPENBLAS_NUM_THREADS={result['blas_threads_override']})"
           if result.get("blas_threads_override") else "")
        + ". Versions: "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        f"Same config (`spacy init config -p {pipe} -o efficiency`; identical except the "
        f"head: {result['configs']['identical_except_head']}), seed {result['seed']}, "
        f"{result['steps']} steps (spaCy's loop runs steps 0..N), dev eval every "
        f"{result['eval_frequency']} steps, no early stopping; `model-last` scored on the "
        f"test set with gold tokenization. Train words/s: words in the batches drawn / "
        f"loop time minus dev evaluations. Inference: `nlp.pipe` on pre-tokenized Docs, "
        f"batch_size {result['batch_size']}, best of {result['passes']} passes. Peak RSS: "
        f"`ru_maxrss` of the inference process (load + evaluate + pipe).",
    ]


def config_difference_lines(configs: Dict[str, Any]) -> List[str]:
    """Markdown lines listing how the two configs differ besides the head, if they do."""
    if configs["identical_except_head"]:
        return []
    return ["", "Config differences besides the head:", ""] + [f"- {d}" for d in configs["differences"]]


# --- child processes ----------------------------------------------------------------
def set_torch_threads(spec: Dict[str, Any]) -> Dict[str, Any]:
    """``torch.set_num_threads(spec["torch_threads"])`` if set; the thread settings the
    child runs with (torch's, if torch is installed, and the environment)."""
    info: Dict[str, Any] = {
        k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    }
    try:
        import torch
    except ImportError:
        return info
    if spec.get("torch_threads"):
        torch.set_num_threads(spec["torch_threads"])
    info["torch_num_threads"] = torch.get_num_threads()
    return info


def child_train(spec: Dict[str, Any]) -> None:
    """Initialize and train with spaCy's loop; time it without the dev evaluations."""
    import spacy  # noqa: F401
    import spacy_seqlab  # noqa: F401  (also registered through entry points)
    from spacy import util
    from spacy.schemas import ConfigSchemaTraining
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import (
        create_evaluation_callback, create_train_batches, train_while_improving,
    )
    from thinc.api import fix_random_seed

    threads = set_torch_threads(spec)
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
            if is_best and spec.get("model_best"):
                e0 = time.perf_counter()
                with nlp.use_params(optimizer.averages):
                    nlp.to_disk(out / "model-best")
                eval_s += time.perf_counter() - e0  # saving is not training time
            losses = {k: float(v) for k, v in info["losses"].items()}
            print(f"step {info['step']:>6} words {words:>9} dev {info['score']:.4f} "
                  f"loss {losses} elapsed {time.perf_counter() - t0:.0f}s", flush=True)
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
        "threads": threads,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    (out / "train_result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def child_infer(spec: Dict[str, Any]) -> None:
    """Test scores with gold tokenization (full ``nlp.evaluate`` dict), nlp.pipe
    words/s, peak RSS; with ``export_spans``, gold and predicted IOB2 tags; with
    ``export_tokens``, gold and predicted token attributes."""
    import spacy
    import spacy_seqlab  # noqa: F401
    from spacy.tokens import Doc, DocBin
    from spacy.training import Example
    from spacy_seqlab.readers import unannotated
    from spacy_seqlab.schemes import spans_to_tags

    threads = set_torch_threads(spec)
    out = Path(spec["output"])
    nlp = spacy.load(out / ("model-best" if spec.get("model_best") else "model-last"))
    refs = list(DocBin().from_disk(spec["test"]).get_docs(nlp.vocab))
    if spec.get("test_limit"):
        refs = refs[: spec["test_limit"]]

    def fresh_docs() -> List[Doc]:
        return [unannotated(ref) for ref in refs]  # gold tokens and sentence boundaries

    examples = [Example(doc, ref) for doc, ref in zip(fresh_docs(), refs)]
    scores = nlp.evaluate(examples)
    n_words = sum(len(ref) for ref in refs)
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    profiler = None
    if spec["profile"]:
        import cProfile

        profiler = cProfile.Profile()
    times = []
    docs: List[Doc] = []
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
        "scores": scores,
        "test_docs": len(refs),
        "test_words": n_words,
        "infer_pass_s": times,
        "infer_words_per_s": n_words / min(times),
        "threads": threads,
        "peak_rss_mb_after_load_and_eval": rss_loaded,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if spec.get("export_spans"):
        # nlp.pipe annotates the given Docs in place: ``docs`` holds the last pass's output
        key = spec.get("spans_key")

        def iob2(doc: Doc) -> List[str]:
            spans = doc.ents if key is None else doc.spans.get(key, [])
            return spans_to_tags("BIO", len(doc), [(s.start, s.end, s.label_) for s in spans])

        tags = {
            "source": "doc.ents" if key is None else f"doc.spans[{key!r}]",
            "gold": [iob2(ref) for ref in refs],
            "pred": [iob2(doc) for doc in docs],
        }
        tags_path = out / "test_tags.json"
        tags_path.write_text(json.dumps(tags))
        result["test_tags"] = str(tags_path)
    if spec.get("export_tokens"):
        attr = f"{spec['export_tokens']}_"
        tokens = {
            "attr": attr,
            "words": [[t.text for t in ref] for ref in refs],
            "gold": [[getattr(t, attr) for t in ref] for ref in refs],
            "pred": [[getattr(t, attr) for t in doc] for doc in docs],
        }
        tokens_path = out / "test_tokens.json"
        tokens_path.write_text(json.dumps(tokens))
        result["test_tokens"] = str(tokens_path)
    (out / "infer_result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "scores"}, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("_train", "_infer"):
        child_spec = json.loads(Path(sys.argv[2]).read_text())
        {"_train": child_train, "_infer": child_infer}[sys.argv[1]](child_spec)
    else:
        sys.exit("usage: python benchmarks/_spacy_runs.py {_train,_infer} SPEC.json")
