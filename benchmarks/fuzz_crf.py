"""Fuzz the CRF math (spacy_seqlab.crf) against an independent float64 log-space
reference and brute force, and count what goes wrong.

Each example is a random padded batch (batch 1-8, lengths 1-60, 1-60 labels, scores
of magnitude 1e-3 to 1e4 in float32 or float64, random / BIO-like / block transition
masks, clamped labels, padding holding 0, 1e6, NaN or +-inf, and one label in five
problems made dominant by transitions or end scores although its emissions lie far
below exp's range). ``tests/crf_checks.compare`` runs forward_backward (float64 and
float32), log_messages, segment_log_probs, viterbi and n-best on it. One example in
ten is invalid on purpose (NaN or inf scores inside a row, non-finite transitions, a
zero length, n-best with a bad n) and must raise a ValueError that says where.

Counts: examples tried, wrong answers, unclear exceptions (an exception on valid input,
or the wrong one / one that does not say where on invalid input), silent NaN on valid
input, invalid input accepted silently.

Run:  .venv/bin/python benchmarks/fuzz_crf.py --examples 10000
Writes the "fuzz" part of benchmarks/results/crf_core.json (+ .md).
"""
import argparse
import os
import re
import sys
import time
import traceback
from typing import Any, Dict, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy  # noqa: E402

from _crf_core import record  # noqa: E402
from _env import now  # noqa: E402
from tests.crf_checks import (  # noqa: E402
    CLAMPS, GARBAGE, MASKS, NAN, compare, invalid_call, random_problem,
)

TARGET_EXAMPLES = 10_000


def draw(rng) -> Dict[str, Any]:
    """The choices of one valid example."""
    B = int(rng.integers(1, 9))
    return dict(
        n_labels=int(rng.integers(1, 61)),
        lengths=rng.integers(1, 61, size=B).tolist(),
        pad=int(rng.integers(0, 4)),
        dtype=str(rng.choice(["float32", "float64"])),
        scale=float(10 ** rng.uniform(-3, 4)),
        cancel=float(rng.uniform(80, 3000)) if rng.random() < 0.2 else 0.0,
        mask=str(rng.choice(MASKS)),
        clamp=str(rng.choice(CLAMPS)),
        garbage=float(rng.choice(GARBAGE)),
    )


def run(examples: int, seed: int, invalid_share: float, log_every: int) -> Dict[str, Any]:
    rng = numpy.random.default_rng(seed)
    counts = {"examples_tried": 0, "valid": 0, "invalid": 0, "wrong_answers": 0,
              "unclear_exceptions": 0, "silent_nan_on_valid_input": 0, "invalid_accepted_silently": 0}
    failures = []
    t0 = time.time()
    for i in range(examples):
        choices = draw(rng)
        counts["examples_tried"] += 1
        outcome: Optional[str] = None
        if rng.random() < invalid_share:
            counts["invalid"] += 1
            call, expected = invalid_call(rng, random_problem(rng, **{**choices, "n_segments": 0}))
            try:
                with numpy.errstate(all="ignore"):
                    call()
                outcome = "invalid_accepted_silently"
            except ValueError as e:
                if not re.search(expected, str(e)):
                    outcome, detail = "unclear_exceptions", f"{e!r} (expected /{expected}/)"
            except Exception as e:  # noqa: BLE001 - counted
                outcome, detail = "unclear_exceptions", repr(e)
            if outcome == "invalid_accepted_silently":
                detail = f"expected /{expected}/"
        else:
            counts["valid"] += 1
            try:
                errors = compare(random_problem(rng, **choices))
            except Exception:  # noqa: BLE001 - counted
                errors = []
                outcome, detail = "unclear_exceptions", traceback.format_exc(limit=3)
            if errors:
                nan = any(err.startswith(NAN) for err in errors)
                outcome = "silent_nan_on_valid_input" if nan else "wrong_answers"
                detail = "; ".join(errors[:3])
        if outcome is not None:
            counts[outcome] += 1
            if len(failures) < 20:
                failures.append({"example": i, "kind": outcome, "choices": choices, "detail": detail})
        if log_every and (i + 1) % log_every == 0:
            print(f"{i + 1} examples, {time.time() - t0:.0f} s: {counts}", flush=True)
    counts["seconds"] = round(time.time() - t0, 1)
    return {"counts": counts, "failures": failures}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--examples", type=int, default=TARGET_EXAMPLES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--invalid-share", type=float, default=0.1)
    p.add_argument("--log-every", type=int, default=500)
    p.add_argument("--no-record", action="store_true", help="print only; leave crf_core.json")
    args = p.parse_args()
    result = run(args.examples, args.seed, args.invalid_share, args.log_every)
    c = result["counts"]
    targets = [
        {"name": "fuzz examples tried", "target": f">= {TARGET_EXAMPLES}", "value": c["examples_tried"],
         "met": c["examples_tried"] >= TARGET_EXAMPLES},
        *({"name": name, "target": 0, "value": c[key], "met": c[key] == 0}
          for name, key in (("fuzz wrong answers", "wrong_answers"),
                            ("fuzz unclear exceptions", "unclear_exceptions"),
                            ("fuzz silent NaN on valid input", "silent_nan_on_valid_input"))),
    ]
    markdown = "\n".join([
        f"`.venv/bin/python benchmarks/fuzz_crf.py --examples {args.examples} --seed {args.seed}` "
        f"({c['seconds']:.0f} s): {c['valid']} valid and {c['invalid']} invalid examples; "
        f"wrong answers {c['wrong_answers']}, unclear exceptions {c['unclear_exceptions']}, "
        f"silent NaN on valid input {c['silent_nan_on_valid_input']}, invalid input accepted "
        f"silently {c['invalid_accepted_silently']}.",
        *(f"- example {f['example']} ({f['kind']}): {f['detail'][:300]}" for f in result["failures"]),
    ])
    print(markdown)
    if not args.no_record:
        record("fuzz", {"date": now(), "command": f"benchmarks/fuzz_crf.py --examples {args.examples} "
                        f"--seed {args.seed}", **result, "targets": targets, "markdown": markdown})


if __name__ == "__main__":
    main()
