"""benchmarks/results/crf_core.json (+ .md): one results file filled by several scripts
(fuzz_crf.py, bench_crf_layer.py, the long-document timing).

Each script records its part under its own key with ``record(key, part)``: ``part`` is
a dict holding what it measured, its own ``"targets"`` (a list of
``{"name", "target", "value", "met"}``) and a ``"markdown"`` section. Under the lock of
``_env.locked_runs`` the file is read, that key replaced, and the file rewritten with
the top-level ``"targets"`` list gathered from every part, so no script overwrites
another's figures.
"""
import os
from typing import Any, Dict

from _env import RESULTS, WORK, header, locked_runs, markdown_header, write_results  # noqa: E402

STEM = "crf_core"
SETTINGS = {"stem": STEM}


def record(key: str, part: Dict[str, Any], out_dir: str = RESULTS) -> Dict[str, Any]:
    """Replace ``key``'s part of crf_core.json and rewrite the JSON and Markdown."""
    os.makedirs(WORK, exist_ok=True)
    with locked_runs(out_dir, WORK, STEM, SETTINGS) as runs:
        runs[key] = part
        result = {
            **header("numpy", "torch", "thinc", "spacy", "pytorch-crf", "hypothesis", "spacy-seqlab"),
            "settings": SETTINGS,
            "runs": dict(sorted(runs.items())),
            "targets": [t for _, p in sorted(runs.items()) for t in p.get("targets", [])],
        }
        write_results(out_dir, STEM, result, _markdown(result))
    return result


def _markdown(result: Dict[str, Any]) -> str:
    lines = ["# CRF core: exactness, validation, speed", "", markdown_header(result), "",
             "| target | required | value | met |", "| --- | --- | --- | :---: |"]
    for t in result["targets"]:
        lines.append(f"| {t['name']} | {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'} |")
    for key, part in result["runs"].items():
        lines += ["", f"## {key} (run {part.get('date', '?')})", "", part.get("markdown", "")]
    return "\n".join(lines)
