"""Print the test scores in a metrics JSON written by `spacy evaluate --output`.

Usage: python scripts/print_metrics.py metrics/CONFIG.json
"""
import json
import sys
from pathlib import Path

KEYS = ("tag_acc", "pos_acc", "ents_p", "ents_r", "ents_f", "token_acc", "speed")

if __name__ == "__main__":
    path = Path(sys.argv[1])
    scores = json.loads(path.read_text(encoding="utf8"))
    spans = [k for k in scores if k.startswith("spans_") and k[-2:] in ("_p", "_r", "_f")]
    shown = {key: scores[key] for key in (*KEYS, *spans) if scores.get(key) is not None}
    print(f"Test scores ({path.stem}): " + "  ".join(
        f"{key}={value:.0f} words/s" if key == "speed" else f"{key}={value:.4f}"
        for key, value in shown.items()
    ))
