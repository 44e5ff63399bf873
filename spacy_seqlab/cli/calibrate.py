"""``spacy seqlab-calibrate PIPELINE DEV OUTPUT``: fit the confidences of a pipeline's
``crf_tagger`` and ``crf_ner`` components on dev data and save the pipeline.

Each component gets the temperature that minimizes the NLL of whether each decoded tag
or span of DEV is right (``fit_component_temperature``); with ``--span-map``, a
``crf_ner`` also gets a logistic map of its span probabilities on top (for all spans,
per label or per span length; ``fit_component_span_calibration``). Both are saved in
the component's cfg. Fit on dev data, never on the test set you report.
"""
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import spacy
from spacy.cli._util import Arg, Opt, app, import_code
from spacy.language import Language
from spacy.tokens import DocBin
from spacy.training import Example
from wasabi import msg

from ..calibration import (
    SPAN_GROUPINGS,
    expected_calibration_error,
    fit_component_span_calibration,
    fit_component_temperature,
    pairs_at,
    scored_batches,
)
from ..components.crf_pipe import CRFPipe
from ..readers import unannotated

CALIBRATED_TYPES = ("crf_tagger", "crf_ner")
SPAN_MAPS = ("none", *SPAN_GROUPINGS)


def dev_examples(nlp: Language, path: Path) -> List[Example]:
    """Gold docs of a ``.spacy`` DocBin, each paired with a copy of its tokens and
    sentence starts (gold tokenization)."""
    if path.suffix != ".spacy":
        raise ValueError(f"{path}: expected a .spacy DocBin of annotated dev docs, got {path.suffix!r}")
    refs = list(DocBin().from_disk(path).get_docs(nlp.vocab))
    if not refs:
        raise ValueError(f"{path} holds no docs")
    return [Example(unannotated(ref), ref) for ref in refs]


def calibrate(
    nlp: Language, examples: Sequence[Example], components: Optional[List[str]] = None, span_map: str = "none"
) -> Dict[str, Dict[str, Any]]:
    """Fit and set the temperature (and with ``span_map``, the span map of each
    ``crf_ner``) of ``components`` (default: every crf_tagger and crf_ner) on
    ``examples``; returns per component T and the ECE on ``examples`` before and after."""
    if span_map not in SPAN_MAPS:
        raise ValueError(f"--span-map must be one of {SPAN_MAPS}, got {span_map!r}")
    found = [name for name, pipe in nlp.pipeline
             if isinstance(pipe, CRFPipe) and pipe.component_type in CALIBRATED_TYPES]
    for name in components or []:
        if name not in found:
            raise ValueError(f"{name!r} is not a crf_tagger or crf_ner component of the pipeline: {found}")
    names = components or found
    if not names:
        raise ValueError(f"the pipeline has no crf_tagger or crf_ner component to calibrate: {nlp.pipe_names}")
    report = {}
    for name in names:
        pipe = nlp.get_pipe(name)
        before = nlp.pipe_names[: nlp.pipe_names.index(name)]
        with nlp.select_pipes(enable=before):
            docs = list(nlp.pipe(eg.predicted.copy() for eg in examples))
        egs = [Example(doc, eg.reference) for doc, eg in zip(docs, examples)]
        raw = _ece(pipe, egs, reset=True)
        temperature, _ = fit_component_temperature(pipe, egs)
        if span_map != "none" and pipe.component_type == "crf_ner":
            fit_component_span_calibration(pipe, egs, by=span_map)
        report[name] = {"temperature": temperature, "dev_ece_before": raw, "dev_ece_after": _ece(pipe, egs)}
    return report


def _ece(pipe: CRFPipe, examples: Sequence[Example], reset: bool = False) -> float:
    """ECE of the component's confidences on ``examples`` (at T = 1 and without a span
    map with ``reset``)."""
    if reset:
        pipe.set_temperature(1.0)
        if pipe.component_type == "crf_ner":
            pipe.set_span_calibration(None)
    conf, hit = pairs_at(pipe.confidence_pairs, scored_batches(pipe, examples), pipe.temperature)
    if not len(conf):
        raise ValueError(f"[{pipe.name}] decoded nothing scorable on the dev data: no gold labels, or no predicted spans")
    return expected_calibration_error(conf, hit)


@app.command("seqlab-calibrate")
def calibrate_cli(
    # fmt: off
    pipeline: str = Arg(..., help="Pipeline package name or directory"),
    dev: Path = Arg(..., help="Annotated dev docs, a .spacy DocBin (never the test set)", exists=True),
    output: Path = Arg(..., help="Directory to save the calibrated pipeline to"),
    component: Optional[List[str]] = Opt(None, "--component", help="A crf_tagger or crf_ner to calibrate (repeat for several; default: all)"),
    span_map: str = Opt("none", "--span-map", help="crf_ner only: a logistic map of span probabilities on top of the temperature: none, all, label or length"),
    code_path: Optional[Path] = Opt(None, "--code", "-c", help="Python file with custom code to import"),
    # fmt: on
) -> None:
    """Fit the temperature (and span map) of a pipeline's CRF components on dev data
    and save the pipeline with them."""
    import_code(code_path)
    nlp = spacy.load(pipeline)
    report = calibrate(nlp, dev_examples(nlp, dev), component or None, span_map)
    nlp.to_disk(output)
    for name, r in report.items():
        msg.good(f"{name}: temperature {r['temperature']:.3f}; ECE on dev {r['dev_ece_before']:.4f} -> {r['dev_ece_after']:.4f}")
    msg.good(f"Saved the calibrated pipeline to {output}")
