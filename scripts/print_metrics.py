"""Print the test scores in a metrics JSON written by `spacy evaluate --output`.

Usage: python scripts/print_metrics.py metrics/CONFIG.json
"""
import json
import sys
from pathlib import Path

KEYS = ("tag_acc", "pos_acc", "token_acc", "speed")

if __name__ == "__main__":
    path = Path(sys.argv[1])
    scores = json.loads(path.read_text(encoding="utf8"))
    shown = {key: scores[key] for key in KEYS if scores.get(key) is not None}
    print(f"Test scores ({path.stem}): " + "  ".join(
        f"{key}={value:.4f}" if key.endswith("_acc") else f"{key}={value:.0f} words/s"
        for key, value in shown.items()
    ))
