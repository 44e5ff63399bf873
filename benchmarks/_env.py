"""Shared helpers for the benchmarks: versions, machine, BLAS threads, timing, results
files, and the corpora and token scores of the training benchmarks."""
import contextlib
import ctypes
import datetime
import fcntl
import glob
import json
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
WORK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "work")


def versions(*names: str) -> Dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine() -> Dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu_model": cpu,
        "nproc": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
    }


def blas_info() -> Dict[str, Any]:
    """numpy's BLAS and its thread count: threadpoolctl if installed, else the
    OpenBLAS bundled with numpy queried through ctypes, plus the thread env vars."""
    info: Dict[str, Any] = {
        "env": {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith(("OPENBLAS", "OMP_", "MKL_", "GOTO", "BLIS"))
        }
    }
    try:
        import threadpoolctl

        info["threadpoolctl"] = threadpoolctl.threadpool_info()
        blas = [p for p in info["threadpoolctl"] if p.get("user_api") == "blas"]
        info["numpy_blas_threads"] = blas[0]["num_threads"] if blas else None
        return info
    except ImportError:
        info["threadpoolctl"] = "not installed"
    import numpy

    libdir = os.path.join(os.path.dirname(os.path.dirname(numpy.__file__)), "numpy.libs")
    for path in glob.glob(os.path.join(libdir, "*openblas*.so*")):
        lib = ctypes.CDLL(path)
        for sym, cfg in (
            ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_config64_"),
            ("openblas_get_num_threads64_", "openblas_get_config64_"),
            ("openblas_get_num_threads", "openblas_get_config"),
        ):
            if hasattr(lib, sym):
                info["numpy_blas_threads"] = int(getattr(lib, sym)())
                get_cfg = getattr(lib, cfg, None)
                if get_cfg is not None:
                    get_cfg.restype = ctypes.c_char_p
                    info["openblas_config"] = get_cfg().decode()
                info["openblas_lib"] = os.path.basename(path)
                return info
    info["numpy_blas_threads"] = None
    return info


def _openblas():
    import numpy

    libdir = os.path.join(os.path.dirname(os.path.dirname(numpy.__file__)), "numpy.libs")
    for path in glob.glob(os.path.join(libdir, "*openblas*.so*")):
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_openblas_", "openblas_"):
            for suffix in ("64_", ""):
                if hasattr(lib, f"{prefix}set_num_threads{suffix}"):
                    return lib, prefix, suffix
    return None, "", ""


def set_blas_threads(n: int) -> bool:
    """Set the thread count of the OpenBLAS bundled with numpy at run time
    (threadpoolctl if installed); False if neither is available."""
    try:
        import threadpoolctl

        threadpoolctl.threadpool_limits(n, user_api="blas")
        return True
    except ImportError:
        pass
    lib, prefix, suffix = _openblas()
    if lib is None:
        return False
    getattr(lib, f"{prefix}set_num_threads{suffix}")(ctypes.c_int(n))
    return True


def wait_idle(max_wait_s: float, threshold: float = 0.5, poll_s: float = 15.0) -> Dict[str, Any]:
    """Wait until the 1-min load average drops below ``threshold`` (at most ``max_wait_s``)."""
    t0 = time.time()
    while os.getloadavg()[0] >= threshold and time.time() - t0 < max_wait_s:
        time.sleep(poll_s)
    return {"waited_s": round(time.time() - t0), "idle": os.getloadavg()[0] < threshold,
            "threshold": threshold}


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def time_interleaved(
    fns: Dict[str, Callable[[], Any]], reps: int, warmup: int, rounds: int = 3
) -> Dict[str, Dict[str, float]]:
    """Median, min and max wall time (ms) of each function, run in ``rounds``
    alternating blocks of ``reps // rounds`` calls so that all of them see the same
    machine load."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    per_round = max(1, reps // rounds)
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1000.0)
    return {
        name: {
            "median_ms": statistics.median(ts),
            "min_ms": min(ts),
            "max_ms": max(ts),
            "reps": len(ts),
        }
        for name, ts in times.items()
    }


def write_results(out_dir: str, stem: str, result: Dict[str, Any], markdown: str) -> None:
    """Write ``stem.json`` and ``stem.md`` to ``out_dir`` and print the Markdown."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{stem}.json"), "w", encoding="utf8") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(out_dir, f"{stem}.md"), "w", encoding="utf8") as f:
        f.write(markdown + "\n")
    print(markdown)


def markdown_header(result: Dict[str, Any]) -> str:
    """The line naming date, machine and versions of a results file."""
    m = result["machine"]
    return (f"Last update {result['date']}; {m['cpu_model']}, {m['nproc']} cores. Versions: "
            + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".")


@contextlib.contextmanager
def locked_runs(out_dir: str, work_dir: str, stem: str, settings: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
    """The runs of ``out_dir/stem.json`` if it was written with the same ``settings``
    (else an empty dict), under an exclusive lock held until the block ends: several
    invocations can fill one results file, each adding its runs and rewriting it."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{stem}.json")
    with open(os.path.join(work_dir, f"{stem}_results.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs: Dict[str, Any] = {}
        try:
            with open(path, encoding="utf8") as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = None
        if old is not None and old.get("settings") == settings:
            runs = old.get("runs", {})
        elif old is not None:
            print(f"NOTE: {path} has other settings ({old.get('settings')}); its runs are "
                  "replaced", flush=True)
        yield runs


def header(*packages: str) -> Dict[str, Any]:
    """The fields every results file opens with: date, Python and ``packages`` versions,
    machine, 1-minute load averages and the command line."""
    return {"date": now(), "versions": versions(*packages), "machine": machine(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "command": " ".join([f"benchmarks/{os.path.basename(sys.argv[0])}", *sys.argv[1:]])}


def tagged(stem: str, tag: str) -> str:
    """A results file's stem, with the ``--tag`` suffix if one is given."""
    return f"{stem}_{tag}" if tag else stem


@contextlib.contextmanager
def updated_results(args: Any, stem: str, settings: Dict[str, Any], packages: Sequence[str],
                    to_markdown: Callable[[Dict[str, Any]], str]) -> Iterator[Dict[str, Any]]:
    """The result of ``args.out/STEM[_TAG].json``: ``header`` + ``settings`` + the
    ``runs`` kept from other invocations with the same settings (under ``locked_runs``).
    The block adds its runs (and any other field); then JSON and Markdown are rewritten."""
    stem = tagged(stem, args.tag)
    with locked_runs(args.out, args.work, stem, settings) as runs:
        result = {**header(*packages), "settings": settings, "runs": runs}
        yield result
        write_results(args.out, stem, result, to_markdown(result))


def fmt(x: Any, spec: str = ".2f", none: str = "-") -> str:
    return none if x is None else format(x, spec)


# --- the training benchmarks' corpora and scores ------------------------------------
def corpus_file(corpus: Path, split: str) -> Path:
    """The UD English EWT split in a converted corpus folder."""
    return corpus / f"en_ewt-ud-{split}.spacy"


def split_file(task: str, directory: Path, split: str) -> Path:
    return corpus_file(directory, split) if task.startswith("ewt_") else directory / f"{split}.spacy"


def train_forms(path: Path, limit: int) -> Set[str]:
    """Word forms of the training split (its first ``limit`` non-empty docs if set,
    as spaCy's Corpus reads them)."""
    import spacy
    from spacy.tokens import DocBin

    forms: Set[str] = set()
    n = 0
    for doc in DocBin().from_disk(path).get_docs(spacy.blank("en").vocab):
        if not len(doc):
            continue
        forms.update(t.text for t in doc)
        n += 1
        if limit and n >= limit:
            break
    return forms


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def token_scores(tokens_path: Path, forms: Set[str]) -> Dict[str, Any]:
    """Accuracy over all and over OOV test tokens (gold value not empty)."""
    tokens = json.loads(tokens_path.read_text())
    ok = n = oov_ok = oov_n = 0
    for words, gold, pred in zip(tokens["words"], tokens["gold"], tokens["pred"]):
        for w, g, p in zip(words, gold, pred):
            if not g:
                continue
            hit = g == p
            ok += hit
            n += 1
            if w not in forms:
                oov_ok += hit
                oov_n += 1
    return {"acc": 100 * ok / n if n else None, "tokens": n,
            "oov_acc": 100 * oov_ok / oov_n if oov_n else None, "oov_tokens": oov_n,
            "attr": tokens["attr"]}


def limit_overrides(limit: int) -> Dict[str, Any]:
    """Config overrides that train and evaluate on the first ``limit`` docs (0: all)."""
    return {"corpora.train.limit": limit, "corpora.dev.limit": limit} if limit else {}


def trained_run(spec: Dict[str, Any], budget: str, forms: Optional[Set[str]] = None,
                reuse: bool = False) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Train and test one ``_spacy_runs.make_spec`` spec (``train_and_infer``, log in
    ``run.log``). Returns the run's record (finish time, config, score key, the
    child's record, model size) with, given the training ``forms``, the token and OOV
    accuracy of the test export; and the inference result."""
    from _spacy_runs import train_and_infer

    key, output = spec["score_key"], Path(spec["output"])
    record, inf = train_and_infer(spec, output / "run.log", budget,
                                  lambda r: f"{key} {r['scores'][key] * 100:.2f}", reuse=reuse)
    run = {"finished": now(), "config": spec["config"], "score_key": key, **record,
           "model_bytes": dir_bytes(output / "model-last"), "log": str(output / "run.log")}
    if forms is not None:
        run["tokens"] = token_scores(Path(inf["test_tokens"]), forms)
        run["oov_acc"] = run["tokens"]["oov_acc"]
    return run, inf
