"""Shards of ``seqlab-annotate``: plan them from the input, read one, annotate it, write it.

A shard is a fixed slice of one input source (``SHARD_SIZE`` lines of a JSONL file, rows
of a Parquet file, or ``.txt`` files of a folder), so the same input always gives the same
shards. Each shard's output and its bad records are written atomically (temporary file,
then ``os.replace``): a shard file exists only complete, rewriting it gives the same
content, and a rerun skips the shards that exist.
"""
import json
import os
import resource
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span, Token

from ..components.crf_ner import CONFIDENCE_EXTENSION as SPAN_CONFIDENCE
from ..components.crf_tagger import confidence_extension

FORMATS = {"jsonl": ".jsonl", "spacy": ".spacy"}
ERRORS_DIR = "errors"
ID_KEY = "id"  # the record id, in doc.user_data of the .spacy shards


@dataclass(frozen=True)
class ShardSpec:
    """Input slice ``[start, stop)`` of one source: lines of a JSONL file (``offset``: the
    byte where line ``start`` begins), rows of a Parquet file, or entries of ``files``."""

    index: int
    kind: str  # "jsonl" | "parquet" | "txt"
    root: str  # input path the ids and error sources are relative to
    path: str  # the JSONL/Parquet file; "" for txt
    start: int
    stop: int
    offset: int = 0
    files: Tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"shard-{self.index:06d}"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ShardSpec":
        data = json.loads(text)
        return cls(**{**data, "files": tuple(data["files"])})


@dataclass
class Record:
    id: Union[str, int]
    text: str


@dataclass
class BadRecord:
    source: str
    line: int
    reason: str


@dataclass
class ShardStats:
    shard: int
    docs: int
    words: int
    errors: int
    seconds: float
    pid: int
    peak_rss_mb: float


# --- planning ---------------------------------------------------------------------------
def input_files(input_path: Path) -> List[Path]:
    """The input files: ``input_path`` itself or every file under it, sorted."""
    if input_path.is_file():
        if input_path.suffix not in (".jsonl", ".txt", ".parquet"):
            raise ValueError(f"input file {input_path} is not .jsonl, .txt or .parquet")
        return [input_path]
    if not input_path.is_dir():
        raise ValueError(f"input {input_path} is neither a file nor a folder")
    files = sorted(p for p in input_path.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in files:
        if path.suffix not in (".jsonl", ".txt", ".parquet"):
            raise ValueError(
                f"input file {path} is not .jsonl, .txt or .parquet; seqlab-annotate reads "
                f"only those (move other files out of {input_path})"
            )
    if not files:
        raise ValueError(f"input folder {input_path} holds no .jsonl, .txt or .parquet files")
    return files


def plan_shards(input_path: Path, shard_size: int) -> List[ShardSpec]:
    """Split the input into shards of at most ``shard_size`` lines/rows/files, in a fixed
    order: the files sorted by path, JSONL and Parquet files one by one, then all .txt
    files together."""
    if shard_size < 1:
        raise ValueError(f"shard size must be a positive integer, got {shard_size}")
    files = input_files(input_path)
    root = str(input_path.parent if input_path.is_file() else input_path)
    slices: List[Dict[str, Any]] = []
    for path in files:
        if path.suffix == ".jsonl":
            for start, offset, stop in _jsonl_slices(path, shard_size):
                slices.append(dict(kind="jsonl", path=str(path), start=start, stop=stop, offset=offset))
        elif path.suffix == ".parquet":
            n_rows = _parquet().ParquetFile(path).metadata.num_rows
            for start in range(0, n_rows, shard_size):
                slices.append(dict(kind="parquet", path=str(path), start=start,
                                   stop=min(start + shard_size, n_rows)))
    txt = tuple(str(p) for p in files if p.suffix == ".txt")
    for start in range(0, len(txt), shard_size):
        stop = min(start + shard_size, len(txt))
        slices.append(dict(kind="txt", path="", start=start, stop=stop, files=txt[start:stop]))
    return [ShardSpec(index=i, root=root, **s) for i, s in enumerate(slices)]


def _jsonl_slices(path: Path, shard_size: int) -> Iterator[Tuple[int, int, int]]:
    """(first line, its byte offset, stop line) of each slice of ``shard_size`` lines."""
    n_lines, offset, start_offset = 0, 0, 0
    with open(path, "rb") as f:
        for line in f:
            if n_lines % shard_size == 0:
                start_offset = offset
            n_lines += 1
            offset += len(line)
            if n_lines % shard_size == 0:
                yield n_lines - shard_size, start_offset, n_lines
    if n_lines % shard_size:
        yield n_lines - n_lines % shard_size, start_offset, n_lines


def _parquet():
    try:
        import pyarrow.parquet
    except ImportError as err:
        raise ValueError(
            "Parquet input needs pyarrow: pip install 'spacy-seqlab[parquet]'"
        ) from err
    return pyarrow.parquet


# --- reading ----------------------------------------------------------------------------
def read_shard(
    spec: ShardSpec, text_key: str = "text", id_key: str = "id"
) -> Tuple[List[Record], List[BadRecord]]:
    """The records of a shard, in input order, and its bad records. Records without an id
    get ``"<source>:<line>"`` (Parquet: the 1-based row)."""
    if spec.kind == "txt":
        return _read_txt(spec)
    source = os.path.relpath(spec.path, spec.root)
    records: List[Record] = []
    bad: List[BadRecord] = []
    for line_no, raw in _raw_items(spec, text_key, id_key):
        if raw is None:  # blank line
            continue
        try:
            records.append(_record(raw, text_key, id_key, f"{source}:{line_no}"))
        except ValueError as err:
            bad.append(BadRecord(source, line_no, str(err)))
    return records, bad


def _raw_items(spec: ShardSpec, text_key: str, id_key: str) -> Iterator[Tuple[int, Any]]:
    """(1-based line or row number, the parsed row) for the shard's slice; None for a
    blank line."""
    if spec.kind == "parquet":
        pq = _parquet()
        names = pq.ParquetFile(spec.path).schema_arrow.names
        if text_key not in names:
            raise ValueError(f"Parquet file {spec.path} has no column {text_key!r} (columns: {names})")
        columns = [text_key] + ([id_key] if id_key in names else [])
        table = pq.read_table(spec.path, columns=columns, memory_map=True)
        rows = table.slice(spec.start, spec.stop - spec.start).to_pylist()
        for i, row in enumerate(rows):
            yield spec.start + i + 1, _Parsed(row)
        return
    with open(spec.path, "rb") as f:
        f.seek(spec.offset)
        for line_no in range(spec.start + 1, spec.stop + 1):
            line = f.readline()
            yield line_no, (_Parsed.from_json_line(line) if line.strip() else None)


class _Parsed:
    """A parsed input row, or the reason it could not be parsed (raised on ``get``)."""

    def __init__(self, value: Any = None, error: Optional[str] = None) -> None:
        self.value, self.error = value, error

    @classmethod
    def from_json_line(cls, line: bytes) -> "_Parsed":
        try:
            text = line.decode("utf8")
        except UnicodeDecodeError as err:
            return cls(error=f"undecodable bytes: not UTF-8 ({err.reason} at byte {err.start})")
        try:
            return cls(json.loads(text))
        except json.JSONDecodeError as err:
            return cls(error=f"invalid JSON: {err.msg} at column {err.colno}")

    def get(self) -> Any:
        if self.error is not None:
            raise ValueError(self.error)
        return self.value


def _record(raw: _Parsed, text_key: str, id_key: str, default_id: str) -> Record:
    obj = raw.get()
    if not isinstance(obj, dict):
        raise ValueError(f"not a JSON object but {type(obj).__name__}")
    text = obj.get(text_key)
    if text is None:
        raise ValueError(f"no {text_key!r} field")
    if not isinstance(text, str):
        raise ValueError(f"{text_key!r} is not a string but {type(text).__name__}")
    rid = obj.get(id_key)
    if rid is None:
        rid = default_id
    elif isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise ValueError(f"{id_key!r} is not a string or integer but {type(rid).__name__}")
    return Record(rid, text)


def _read_txt(spec: ShardSpec) -> Tuple[List[Record], List[BadRecord]]:
    records: List[Record] = []
    bad: List[BadRecord] = []
    for path in spec.files:
        source = os.path.relpath(path, spec.root)
        try:
            records.append(Record(source, Path(path).read_bytes().decode("utf8")))
        except UnicodeDecodeError as err:
            bad.append(BadRecord(source, 1, f"undecodable bytes: not UTF-8 ({err.reason} at byte {err.start})"))
    return records, bad


# --- writing ----------------------------------------------------------------------------
def doc_record(doc: Doc, rid: Union[str, int]) -> Dict[str, Any]:
    """The JSONL output of a doc: id, text, entities and spans (label, character offsets,
    confidence) and, where the pipeline tagged, tokens with their tags and confidences."""
    out: Dict[str, Any] = {"id": rid, "text": doc.text}
    if doc.has_annotation("ENT_IOB"):
        out["ents"] = [_span_record(span) for span in doc.ents]
    if doc.spans:
        out["spans"] = {key: [_span_record(s) for s in group] for key, group in doc.spans.items()}
    attrs = [attr for attr in ("tag", "pos") if doc.has_annotation(attr.upper())]
    if attrs:
        out["tokens"] = [_token_record(token, attrs) for token in doc]
    return out


def _span_record(span: Span) -> Dict[str, Any]:
    conf = span._.get(SPAN_CONFIDENCE) if Span.has_extension(SPAN_CONFIDENCE) else None
    return {"start": span.start_char, "end": span.end_char, "label": span.label_, "confidence": conf}


def _token_record(token: Token, attrs: List[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"start": token.idx, "end": token.idx + len(token)}
    for attr in attrs:
        ext = confidence_extension(attr)
        out[attr] = getattr(token, f"{attr}_")
        out[f"{attr}_confidence"] = token._.get(ext) if Token.has_extension(ext) else None
    return out


def shard_path(output_dir: Path, spec: ShardSpec, fmt: str) -> Path:
    return output_dir / f"{spec.name}{FORMATS[fmt]}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_shard(
    output_dir: Path, spec: ShardSpec, fmt: str, records: List[Record], docs: List[Doc],
    bad: List[BadRecord],
) -> None:
    """Write the shard's bad records, then its output (whose presence marks it done)."""
    lines = [json.dumps(asdict(b), ensure_ascii=False) + "\n" for b in bad]
    write_atomic(output_dir / ERRORS_DIR / f"{spec.name}.jsonl", "".join(lines).encode("utf8"))
    if fmt == "jsonl":
        data = "".join(
            json.dumps(doc_record(doc, rec.id), ensure_ascii=False) + "\n"
            for rec, doc in zip(records, docs)
        ).encode("utf8")
    else:
        docbin = DocBin(store_user_data=True)
        for rec, doc in zip(records, docs):
            doc.user_data[ID_KEY] = rec.id
            docbin.add(doc)
        data = docbin.to_bytes()
    write_atomic(shard_path(output_dir, spec, fmt), data)


def annotate_shard(
    nlp: Language, spec: ShardSpec, output_dir: Path, fmt: str, batch_size: int,
    text_key: str = "text", id_key: str = "id",
) -> ShardStats:
    """Read, annotate (``nlp.pipe`` in this process) and write one shard."""
    t0 = time.perf_counter()
    records, bad = read_shard(spec, text_key, id_key)
    docs = list(nlp.pipe((r.text for r in records), batch_size=batch_size))
    write_shard(output_dir, spec, fmt, records, docs, bad)
    return ShardStats(
        spec.index, len(docs), sum(len(d) for d in docs), len(bad), time.perf_counter() - t0,
        os.getpid(), peak_rss_mb(),
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def merge_errors(output_dir: Path, specs: Iterable[ShardSpec]) -> int:
    """Concatenate the shards' bad records into ``errors.jsonl``; their number."""
    parts = [(output_dir / ERRORS_DIR / f"{spec.name}.jsonl").read_bytes() for spec in specs]
    data = b"".join(parts)
    write_atomic(output_dir / "errors.jsonl", data)
    return data.count(b"\n")


def remove_temporary_files(output_dir: Path) -> None:
    """Delete the temporary files of writes that a killed process left behind."""
    for folder in (output_dir, output_dir / ERRORS_DIR):
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
