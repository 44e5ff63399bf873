"""Build the wheels that install a trained pipeline: this package's (spacy-seqlab) and
the pipeline's (`spacy package --build wheel`), both into OUT_DIR (project.yml
`package`). Install them together with `pip install OUT_DIR/*.whl OUT_DIR/*/dist/*.whl`:
the pipeline requires spacy-seqlab, which pip then finds in OUT_DIR.

The pipeline's model card (its README.md, from meta.json) gets a description naming
the components and a note on how to read their confidences.

Usage: python scripts/build_packages.py MODEL_DIR OUT_DIR --name NAME --version VERSION
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List

import srsly
from spacy.util import load_config

ROOT = Path(__file__).resolve().parent.parent

CONFIDENCE_NOTES = {
    "tagger": (
        "`token._.{attr}_confidence` (component `{name}`): the posterior probability, under "
        "the CRF, that the token's label is the predicted `token.{attr}_` given the whole "
        "sentence (forward-backward marginal; a label kept from before the component: 1.0)."
    ),
    "memm": (
        "`token._.{attr}_confidence` (component `{name}`): the MEMM's local probability of the "
        "predicted `token.{attr}_` given the label chosen before it (not a sequence posterior)."
    ),
    "ents": (
        "`span._.crf_confidence` for `doc.ents` (component `{name}`): the probability, under "
        "the CRF, that exactly this span with this label is an entity (summed over every "
        "analysis of the doc that contains it)."
    ),
    "spans": (
        "`span._.crf_confidence` for `doc.spans[\"{key}\"]` (component `{name}`), also in "
        "`doc.spans[\"{key}\"].attrs[\"scores\"]`, aligned with the spans: the probability, "
        "under the CRF, that exactly this span with this label is in the analysis."
    ),
}


def confidence_notes(model_dir: Path) -> List[str]:
    """One line per component of the pipeline that writes confidences."""
    components = load_config(model_dir / "config.cfg", interpolate=False)["components"]
    notes = []
    for name, cfg in components.items():
        factory = cfg.get("factory")
        if factory == "crf_tagger":
            notes.append(CONFIDENCE_NOTES["tagger"].format(attr=cfg["attr"], name=name))
        elif factory == "memm_tagger":
            notes.append(CONFIDENCE_NOTES["memm"].format(attr=cfg["attr"], name=name))
        elif factory == "crf_ner" and cfg["spans_key"] is None:
            notes.append(CONFIDENCE_NOTES["ents"].format(name=name))
        elif factory == "crf_ner":
            notes.append(CONFIDENCE_NOTES["spans"].format(key=cfg["spans_key"], name=name))
    return notes


def card_meta(model_dir: Path) -> dict:
    """The meta.json fields that `spacy package --meta-path` adds to the pipeline's."""
    meta = srsly.read_json(model_dir / "meta.json")
    notes = confidence_notes(model_dir)
    description = (
        f"Pipeline {', '.join(meta.get('pipeline', []))} trained with spacy-seqlab "
        "(linear-chain CRF sequence labeling for spaCy). The accuracy table lists the "
        "scores of its components on the development data."
    )
    out = {"description": description}
    if notes:
        out["notes"] = "### How to read the confidences\n\n" + "".join(f"- {n}\n" for n in notes)
    return out


def run(*args: str) -> None:
    subprocess.run([sys.executable, *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--name", required=True, help="package name without the language prefix")
    parser.add_argument("--version", required=True)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    run("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(args.out_dir))
    with tempfile.TemporaryDirectory() as tmp:
        meta_path = Path(tmp) / "meta.json"
        srsly.write_json(meta_path, {**srsly.read_json(args.model_dir / "meta.json"), **card_meta(args.model_dir)})
        run("-m", "spacy", "package", str(args.model_dir), str(args.out_dir), "--build", "wheel",
            "--name", args.name, "--version", args.version, "--meta-path", str(meta_path), "--force")


if __name__ == "__main__":
    main()
