"""seqlab-annotate: inputs, outputs, bad records, exactly-once output, resume, and the Ray
engine on a real local Ray cluster (including a worker process that dies mid-run)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import spacy
from spacy.cli._util import import_code
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from thinc.api import fix_random_seed

from spacy_seqlab.cli.annotate import annotate
from spacy_seqlab.cli.annotate_io import ID_KEY, plan_shards

FAIL_ONCE = Path(__file__).parent / "annotate_fail_once.py"
TRAIN = [
    ("Angela Merkel visited Paris today .", [(0, 2, "PER"), (3, 4, "LOC")], "NNP NNP VBD NNP NN ."),
    ("John likes London .", [(0, 1, "PER"), (2, 3, "LOC")], "NNP VBZ NNP ."),
    ("I saw Mary in Berlin .", [(2, 3, "PER"), (4, 5, "LOC")], "PRP VBD NNP IN NNP ."),
]
TEXTS = [f"{name} visited {city} in {year} ." for name, city, year in
         zip(["John", "Mary", "Angela Merkel", "Paul"] * 4, ["Paris", "London", "Berlin", "Rome"] * 4,
             range(2000, 2016))]


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory) -> Path:
    """A crf_tagger + crf_ner pipeline trained for a few steps."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("crf_tagger")
    nlp.add_pipe("crf_ner")
    examples = []
    for text, ents, tags in TRAIN:
        ref = Doc(nlp.vocab, words=text.split(), tags=tags.split())
        ref.set_ents([Span(ref, s, e, label=label) for s, e, label in ents], default="outside")
        examples.append(Example(nlp.make_doc(text), ref))
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(10):
        nlp.update(examples, sgd=optimizer)
    path = tmp_path_factory.mktemp("pipeline") / "nlp"
    nlp.to_disk(path)
    return path


def with_fail_once(pipeline_dir: Path, out: Path, trigger: str, mode: str) -> Path:
    """A copy of the pipeline that fails once (see annotate_fail_once.py) on ``trigger``."""
    import_code(FAIL_ONCE)
    nlp = spacy.load(pipeline_dir)
    nlp.add_pipe("seqlab_test_fail_once", first=True,
                 config={"marker": str(out / "failed.marker"), "trigger": trigger, "mode": mode})
    nlp.to_disk(out / "nlp")
    return out / "nlp"


def write_jsonl(path: Path, texts, ids=True) -> Path:
    with open(path, "w", encoding="utf8") as f:
        for i, text in enumerate(texts):
            f.write(json.dumps({"id": f"doc{i}", "text": text} if ids else {"text": text}) + "\n")
    return path


def read_records(out: Path):
    records = []
    for shard in sorted(out.glob("shard-*.jsonl")):
        records.extend(json.loads(line) for line in shard.read_text(encoding="utf8").splitlines())
    return records


def read_errors(out: Path):
    return [json.loads(line) for line in (out / "errors.jsonl").read_text(encoding="utf8").splitlines()]


def assert_same_records(got, expected):
    """Equal records; confidences up to float rounding (they depend on which docs share
    an nlp.pipe batch, and a shard is batched differently when a run resumes)."""
    def split(records):
        confidences = []

        def strip(value):
            if isinstance(value, dict):
                for key in [k for k in value if k.endswith("confidence")]:
                    confidences.append(value.pop(key))
                for v in value.values():
                    strip(v)
            elif isinstance(value, list):
                for v in value:
                    strip(v)
            return value

        return strip(json.loads(json.dumps(records))), confidences

    (got, got_conf), (expected, expected_conf) = split(got), split(expected)
    assert got == expected
    assert got_conf == pytest.approx(expected_conf, abs=1e-6)


def assert_exactly_once(records, expected_ids):
    counts = Counter(r["id"] for r in records)
    assert [i for i, n in counts.items() if n > 1] == []
    assert set(counts) == set(expected_ids)


def test_jsonl_records_bad_lines_and_positional_ids(pipeline_dir, tmp_path):
    lines = [
        json.dumps({"id": "a", "text": TEXTS[0]}).encode(),
        json.dumps({"text": TEXTS[1]}).encode(),  # no id: "<file>:<line>"
        b'{"id": "broken", "text": ',  # invalid JSON
        json.dumps({"id": "notext"}).encode(),
        json.dumps({"id": "num", "text": 42}).encode(),
        b'{"id": "latin1", "text": "caf\xe9"}',  # not UTF-8
        b"",  # blank line: no record
        json.dumps({"id": 7, "text": ""}).encode(),  # empty text is a doc
        json.dumps([TEXTS[2]]).encode(),  # not an object
        json.dumps({"id": "last", "text": TEXTS[3]}).encode(),
    ]
    data = tmp_path / "in.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    summary = annotate(str(pipeline_dir), data, out, shard_size=3)
    assert summary["shards"] == 4 and summary["docs"] == 4 and summary["errors"] == 5
    records = read_records(out)
    assert [r["id"] for r in records] == ["a", "in.jsonl:2", 7, "last"]
    errors = read_errors(out)
    assert [(e["source"], e["line"]) for e in errors] == [("in.jsonl", n) for n in (3, 4, 5, 6, 9)]
    reasons = [e["reason"] for e in errors]
    assert reasons[0].startswith("invalid JSON") and "'text'" in reasons[1]
    assert "not a string but int" in reasons[2] and reasons[3].startswith("undecodable bytes")
    assert "not a JSON object" in reasons[4]
    nlp = spacy.load(pipeline_dir)
    for record in records:
        doc = nlp(record["text"])
        assert record["text"] == doc.text
        assert [t["tag"] for t in record["tokens"]] == [t.tag_ for t in doc]
        assert [(t["start"], t["end"]) for t in record["tokens"]] == [(t.idx, t.idx + len(t)) for t in doc]
        assert all(0.0 <= t["tag_confidence"] <= 1.0 for t in record["tokens"])
        assert [(e["start"], e["end"], e["label"]) for e in record["ents"]] == [
            (e.start_char, e.end_char, e.label_) for e in doc.ents
        ]
        assert all(0.0 <= e["confidence"] <= 1.0 for e in record["ents"])
    assert any(r["ents"] for r in records)


def test_folder_of_jsonl_txt_and_parquet(pipeline_dir, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    write_jsonl(folder / "a.jsonl", TEXTS[:5], ids=False)
    (folder / "sub" / "b.txt").write_text(TEXTS[5], encoding="utf8")
    (folder / "c.txt").write_bytes(b"\xff\xfe bad")
    pq.write_table(pa.table({"text": TEXTS[6:10], "id": ["p0", "p1", "p2", "p3"]}), folder / "d.parquet")
    pq.write_table(pa.table({"text": [TEXTS[10], None]}), folder / "e.parquet")
    out = tmp_path / "out"
    summary = annotate(str(pipeline_dir), folder, out, shard_size=2)
    expected = [f"a.jsonl:{i}" for i in range(1, 6)] + ["p0", "p1", "p2", "p3", "e.parquet:1", "sub/b.txt"]
    assert_exactly_once(read_records(out), expected)
    assert summary["docs"] == len(expected)
    assert [(e["source"], e["line"]) for e in read_errors(out)] == [("e.parquet", 2), ("c.txt", 1)]
    by_id = {r["id"]: r["text"] for r in read_records(out)}
    assert by_id["sub/b.txt"] == TEXTS[5] and by_id["p2"] == TEXTS[8]


def test_spacy_format_keeps_ids_and_confidences(pipeline_dir, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", TEXTS[:7])
    out = tmp_path / "out"
    annotate(str(pipeline_dir), data, out, fmt="spacy", shard_size=4)
    nlp = spacy.load(pipeline_dir)
    docs = [doc for path in sorted(out.glob("shard-*.spacy"))
            for doc in DocBin().from_disk(path).get_docs(nlp.vocab)]
    assert [doc.user_data[ID_KEY] for doc in docs] == [f"doc{i}" for i in range(7)]
    for doc, text in zip(docs, TEXTS):
        expected = nlp(text)
        assert [t.tag_ for t in doc] == [t.tag_ for t in expected]
        assert [t._.tag_confidence for t in doc] == pytest.approx([t._.tag_confidence for t in expected])
        assert [(e.text, e.label_, e._.crf_confidence) for e in doc.ents] == [
            (e.text, e.label_, pytest.approx(e._.crf_confidence)) for e in expected.ents
        ]


def test_resume_after_interrupted_run(pipeline_dir, tmp_path):
    """A run that fails in its third shard leaves two finished shards; the rerun writes
    the rest, and the output equals that of an uninterrupted run."""
    data = write_jsonl(tmp_path / "in.jsonl", TEXTS)
    failing = with_fail_once(pipeline_dir, tmp_path, trigger=TEXTS[9], mode="raise")
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated interruption"):
        annotate(str(failing), data, out, shard_size=4, batch_size=2)
    assert sorted(p.name for p in out.glob("shard-*")) == ["shard-000000.jsonl", "shard-000001.jsonl"]
    (out / ".shard-000002.jsonl.0123.tmp").write_text("partial")  # a killed write
    summary = annotate(str(failing), data, out, shard_size=4, batch_size=2)
    assert summary["shards_skipped"] == 2 and summary["docs"] == 8
    assert not list(out.glob(".*.tmp"))
    reference = tmp_path / "reference"
    annotate(str(failing), data, reference, shard_size=4)
    assert_same_records(read_records(out), read_records(reference))
    assert_exactly_once(read_records(out), [f"doc{i}" for i in range(len(TEXTS))])
    # a deleted shard is redone on the next run, nothing else
    (out / "shard-000001.jsonl").unlink()
    summary = annotate(str(failing), data, out, shard_size=4)
    assert summary["shards_skipped"] == 3 and summary["docs"] == 4
    assert_exactly_once(read_records(out), [f"doc{i}" for i in range(len(TEXTS))])


def test_n_process_2_matches_one_process(pipeline_dir, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", TEXTS)
    annotate(str(pipeline_dir), data, tmp_path / "one", shard_size=5)
    annotate(str(pipeline_dir), data, tmp_path / "two", shard_size=5, n_process=2, batch_size=3)
    assert_same_records(read_records(tmp_path / "two"), read_records(tmp_path / "one"))


def test_bad_arguments_raise_clear_errors(pipeline_dir, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", TEXTS[:3])
    with pytest.raises(ValueError, match="--format"):
        annotate(str(pipeline_dir), data, tmp_path / "o1", fmt="xml")
    with pytest.raises(ValueError, match="--engine"):
        annotate(str(pipeline_dir), data, tmp_path / "o2", engine="dask")
    with pytest.raises(ValueError, match="--address"):
        annotate(str(pipeline_dir), data, tmp_path / "o3", address="127.0.0.1:1")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.csv").write_text("x")
    with pytest.raises(ValueError, match="notes.csv"):
        annotate(str(pipeline_dir), tmp_path / "folder", tmp_path / "o4")
    annotate(str(pipeline_dir), data, tmp_path / "o5", shard_size=2)
    with pytest.raises(ValueError, match="different shards"):
        annotate(str(pipeline_dir), data, tmp_path / "o5", shard_size=1)


def test_plan_is_deterministic_and_covers_every_line(tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", TEXTS[:10])
    specs = plan_shards(data, 3)
    assert [(s.start, s.stop) for s in specs] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert plan_shards(data, 3) == specs
    lines = data.read_bytes().split(b"\n")
    assert [s.offset for s in specs] == [sum(len(line) + 1 for line in lines[: s.start]) for s in specs]


def test_cli_entry_point(pipeline_dir, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", TEXTS[:3])
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "seqlab-annotate", str(pipeline_dir), str(data),
         str(tmp_path / "out")], capture_output=True, text=True, check=True,
    )
    assert "3 docs" in result.stdout and "0 errors" in result.stdout
    assert_exactly_once(read_records(tmp_path / "out"), ["doc0", "doc1", "doc2"])
    bad = subprocess.run(
        [sys.executable, "-m", "spacy", "seqlab-annotate", str(pipeline_dir), str(data),
         str(tmp_path / "out2"), "--format", "xml"], capture_output=True, text=True,
    )
    assert bad.returncode == 1 and "--format must be one of" in bad.stdout
    assert "Traceback" not in bad.stderr


# --- Ray ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_address():
    """A real Ray cluster on 127.0.0.1 (``ray start --head --block``), stopped afterwards.
    Its own ports and temp dir, so that it cannot collide with another Ray on the machine;
    no token authentication (which Ray turns on when a local ``ray.init()`` has left a
    token in ~/.ray) on either side."""
    pytest.importorskip("ray")
    saved_mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray_bin = Path(sys.executable).parent / "ray"
    temp_dir = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: socket paths
    address = f"127.0.0.1:{free_port()}"
    log = open(temp_dir / "start.log", "w")
    proc = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", f"--port={address.split(':')[1]}",
         "--num-cpus=2", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
         f"--dashboard-agent-listen-port={free_port()}",
         f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        for _ in range(120):
            if proc.poll() is not None:
                pytest.fail(f"ray start failed:\n{(temp_dir / 'start.log').read_text()}")
            status = subprocess.run([str(ray_bin), "status", f"--address={address}"],
                                    capture_output=True, timeout=60)
            if status.returncode == 0:
                break
            time.sleep(1)
        yield address
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # ray start and the processes it started
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
        if saved_mode is None:
            del os.environ["RAY_AUTH_MODE"]
        else:
            os.environ["RAY_AUTH_MODE"] = saved_mode


def test_ray_engine_matches_local_engine(pipeline_dir, ray_address, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", TEXTS)
    annotate(str(pipeline_dir), data, tmp_path / "local", shard_size=3)
    summary = annotate(str(pipeline_dir), data, tmp_path / "ray", engine="ray", workers=2,
                       address=ray_address, shard_size=3)
    assert summary["docs"] == len(TEXTS) and len(summary["peak_rss_mb_per_worker"]) >= 1
    assert_same_records(read_records(tmp_path / "ray"), read_records(tmp_path / "local"))


def test_ray_worker_death_mid_run_exactly_once(pipeline_dir, ray_address, tmp_path):
    """The actor annotating TEXTS[7] ends its process; Ray restarts it and retries the
    shard: every id comes out exactly once, as in a run without the failure."""
    data = write_jsonl(tmp_path / "in.jsonl", TEXTS)
    failing = with_fail_once(pipeline_dir, tmp_path, trigger=TEXTS[7], mode="exit")
    out = tmp_path / "out"
    summary = annotate(str(failing), data, out, engine="ray", workers=2, address=ray_address,
                       shard_size=3, code_path=FAIL_ONCE)
    assert (tmp_path / "failed.marker").exists()  # the worker did die
    assert summary["docs"] == len(TEXTS) and summary["errors"] == 0
    assert_exactly_once(read_records(out), [f"doc{i}" for i in range(len(TEXTS))])
    reference = tmp_path / "reference"
    annotate(str(failing), data, reference, shard_size=3)
    assert_same_records(read_records(out), read_records(reference))
