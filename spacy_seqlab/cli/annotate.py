"""``spacy seqlab-annotate PIPELINE INPUT OUTPUT``: annotate a corpus into a folder of shards.

Runs embedded (``--engine local``: ``nlp.pipe``, optionally over ``--n-process``
processes) or on Ray Data (``--engine ray``: ``--workers`` actors each loading the
pipeline once, on a local Ray instance or the cluster at ``--address``). Every input
record ends up exactly once in the output or in ``errors.jsonl``; rerunning an
interrupted command completes the missing shards only.
"""
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

import spacy
import tqdm
from spacy.cli._util import Arg, Opt, app, import_code
from spacy.language import Language
from spacy.tokens import Doc
from wasabi import msg

from .annotate_io import (
    ERRORS_DIR,
    FORMATS,
    BadRecord,
    Record,
    ShardSpec,
    ShardStats,
    merge_errors,
    peak_rss_mb,
    plan_shards,
    read_shard,
    remove_temporary_files,
    shard_path,
    write_atomic,
    write_shard,
)

ENGINES = ("local", "ray")
PLAN_FILE = "plan.json"


@app.command("seqlab-annotate")
def annotate_cli(
    # fmt: off
    pipeline: str = Arg(..., help="Pipeline package name or directory"),
    input_path: Path = Arg(..., help="A .jsonl file (objects with 'text' and optional 'id'), a .parquet file, or a folder of .jsonl, .txt (one doc per file) and .parquet files", exists=True),
    output_dir: Path = Arg(..., help="Folder for the shards, errors.jsonl and plan.json"),
    fmt: str = Opt("jsonl", "--format", "-f", help="Shard format: jsonl (records) or spacy (DocBin with user data)"),
    engine: str = Opt("local", "--engine", "-e", help="local (nlp.pipe) or ray (Ray Data)"),
    n_process: int = Opt(1, "--n-process", "-n", help="local engine: processes of nlp.pipe"),
    workers: int = Opt(2, "--workers", "-w", help="ray engine: actors, one pipeline each"),
    address: Optional[str] = Opt(None, "--address", help="ray engine: address of a running Ray cluster (default: start a local one)"),
    batch_size: int = Opt(64, "--batch-size", "-b", help="Docs per nlp.pipe batch"),
    shard_size: int = Opt(1000, "--shard-size", help="Input lines/rows/files per shard"),
    text_key: str = Opt("text", "--text-key", help="Field holding the text"),
    id_key: str = Opt("id", "--id-key", help="Field holding the record id"),
    code_path: Optional[Path] = Opt(None, "--code", "-c", help="Python file with custom code to import (also in every Ray worker)"),
    # fmt: on
) -> None:
    """Annotate a corpus with a pipeline into a folder of shards, locally or on Ray.
    Bad records go to OUTPUT/errors.jsonl; rerunning resumes an interrupted run."""
    import_code(code_path)
    try:
        summary = annotate(
            pipeline, input_path, output_dir, fmt=fmt, engine=engine, n_process=n_process,
            workers=workers, address=address, batch_size=batch_size, shard_size=shard_size,
            text_key=text_key, id_key=id_key, code_path=code_path, progress=True,
        )
    except ValueError as err:  # bad arguments or input: say what, without a traceback
        msg.fail(str(err), exits=1)
    msg.good(
        f"{summary['docs']} docs, {summary['words']} words in {summary['seconds']:.1f} s "
        f"({summary['words_per_s']:.0f} words/s), {summary['errors']} errors "
        f"({summary['shards_skipped']} of {summary['shards']} shards were already done)"
    )
    if summary["errors"]:
        msg.warn(f"bad records: {output_dir / 'errors.jsonl'}")


def annotate(
    pipeline: str,
    input_path: Path,
    output_dir: Path,
    *,
    fmt: str = "jsonl",
    engine: str = "local",
    n_process: int = 1,
    workers: int = 2,
    address: Optional[str] = None,
    batch_size: int = 64,
    shard_size: int = 1000,
    text_key: str = "text",
    id_key: str = "id",
    code_path: Optional[Path] = None,
    progress: bool = False,
) -> Dict[str, Any]:
    """Annotate ``input_path`` into ``output_dir`` (see the module docstring) and return
    a summary of this run: docs, words, seconds, words/s, start-up seconds (until the
    first shard was written, less its own time), shards (and how many an earlier run had
    done), errors (all of ``errors.jsonl``), and the peak memory (MiB) of this process or,
    for Ray, of each worker."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {sorted(FORMATS)}, got {fmt!r}")
    if engine not in ENGINES:
        raise ValueError(f"--engine must be one of {ENGINES}, got {engine!r}")
    for name, value in (("n-process", n_process), ("workers", workers), ("batch-size", batch_size)):
        if value < 1:
            raise ValueError(f"--{name} must be a positive integer, got {value}")
    if engine == "local" and address is not None:
        raise ValueError("--address joins a Ray cluster: use it with --engine ray")
    input_path, output_dir = Path(input_path).resolve(), Path(output_dir).resolve()
    if Path(pipeline).exists():
        pipeline = str(Path(pipeline).resolve())  # Ray workers run elsewhere
    specs = plan_shards(input_path, shard_size)
    _check_plan(output_dir, {
        "pipeline": pipeline, "input": str(input_path), "format": fmt,
        "text_key": text_key, "id_key": id_key, "shards": [asdict(s) for s in specs],
    })
    (output_dir / ERRORS_DIR).mkdir(exist_ok=True)
    remove_temporary_files(output_dir)
    todo = [s for s in specs if not shard_path(output_dir, s, fmt).exists()]
    t0 = time.perf_counter()
    stats: List[ShardStats] = []
    startup_s: Optional[float] = None
    with tqdm.tqdm(total=sum(_units(s) for s in todo), unit="doc",
                   disable=not progress or None, desc="seqlab-annotate") as bar:
        for shard in _engine_results(
            engine, pipeline, todo, output_dir, fmt, batch_size, n_process, workers, address,
            text_key, id_key, code_path,
        ):
            if startup_s is None:
                startup_s = time.perf_counter() - t0 - shard.seconds
            stats.append(shard)
            bar.update(_units(specs[shard.shard]))
    seconds = time.perf_counter() - t0
    if len(stats) != len(todo):
        raise RuntimeError(f"{len(todo) - len(stats)} shards were not written; rerun to resume")
    n_errors = merge_errors(output_dir, specs)
    remove_temporary_files(output_dir)
    docs, words = sum(s.docs for s in stats), sum(s.words for s in stats)
    summary: Dict[str, Any] = {
        "docs": docs, "words": words, "errors": n_errors, "seconds": seconds,
        "docs_per_s": docs / seconds if seconds else 0.0,
        "words_per_s": words / seconds if seconds else 0.0,
        "shards": len(specs), "shards_skipped": len(specs) - len(todo), "startup_s": startup_s,
    }
    if engine == "ray":
        peak: Dict[int, float] = {}
        for s in stats:
            peak[s.pid] = max(peak.get(s.pid, 0.0), s.peak_rss_mb)
        summary["peak_rss_mb_per_worker"] = peak
    else:
        summary["peak_rss_mb"] = peak_rss_mb()
    return summary


def _units(spec: ShardSpec) -> int:
    """Input lines/rows/files of a shard: what the progress bar counts."""
    return spec.stop - spec.start


def _engine_results(
    engine: str, pipeline: str, todo: List[ShardSpec], output_dir: Path, fmt: str,
    batch_size: int, n_process: int, workers: int, address: Optional[str], text_key: str,
    id_key: str, code_path: Optional[Path],
) -> Iterator[ShardStats]:
    """Annotate and write the ``todo`` shards with ``engine``; each one's stats when done."""
    if not todo:
        return iter(())
    if engine == "local":
        nlp = spacy.load(pipeline)
        return _run_local(nlp, todo, output_dir, fmt, batch_size, n_process, text_key, id_key)
    from .annotate_ray import run_ray

    code = str(Path(code_path).resolve()) if code_path else None
    return run_ray(pipeline, todo, output_dir, fmt, batch_size, workers, address, text_key,
                   id_key, code)


def _check_plan(output_dir: Path, plan: Dict[str, Any]) -> None:
    """Record the run's plan in ``output_dir``, or check that it is the recorded one:
    shards from another input, pipeline or shard size must not be mixed."""
    path = output_dir / PLAN_FILE
    plan = json.loads(json.dumps(plan))  # as it reads back: tuples become lists
    if path.exists():
        old = json.loads(path.read_text(encoding="utf8"))
        changed = sorted(k for k in plan if old.get(k) != plan[k])
        if changed:
            raise ValueError(
                f"{output_dir} holds shards of another run (different {', '.join(changed)}); "
                f"use a new output folder, or rerun with the same arguments to resume"
            )
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(plan, indent=1).encode("utf8"))


def _run_local(
    nlp: Language, specs: List[ShardSpec], output_dir: Path, fmt: str, batch_size: int,
    n_process: int, text_key: str, id_key: str,
) -> Iterator[ShardStats]:
    """Annotate the shards with one ``nlp.pipe`` stream (so ``n_process`` workers start
    once) and write each shard as soon as its last doc comes back."""
    open_shards: Dict[int, Tuple[ShardSpec, float, List[Record], List[BadRecord], List[Doc]]] = {}

    def texts() -> Iterable[Tuple[str, Tuple[int, bool]]]:
        for spec in specs:
            records, bad = read_shard(spec, text_key, id_key)
            open_shards[spec.index] = (spec, time.perf_counter(), records, bad, [])
            if not records:  # a marker doc, so that an all-bad shard is written too
                yield "", (spec.index, False)
            for record in records:
                yield record.text, (spec.index, True)

    docs = nlp.pipe(texts(), as_tuples=True, batch_size=batch_size, n_process=n_process)
    for doc, (index, is_record) in docs:
        spec, t0, records, bad, shard_docs = open_shards[index]
        if is_record:
            shard_docs.append(doc)
        if len(shard_docs) == len(records):
            write_shard(output_dir, spec, fmt, records, shard_docs, bad)
            del open_shards[index]
            yield ShardStats(index, len(records), sum(len(d) for d in shard_docs), len(bad),
                             time.perf_counter() - t0, os.getpid(), peak_rss_mb())
