"""Confidences worth their price: calibration of the best models' confidences on test
(fitted on dev only), and what the confidences cost at inference.

``--parts calibration`` (and ``anchors``): for each model, the confidence of each decoded token label
(``crf_tagger``) or span (``crf_ner``) on test against whether it is gold; expected
calibration error over 15 equal-mass bins and a reliability plot:
  - raw (temperature 1), tempered (one temperature fitted on dev), and for spans
    calibrated: the temperature and a span map (``spacy_seqlab.calibration``: a
    logistic map of the span probability for all spans, per label or per length).
    Which map is chosen on dev: 2-fold cross-validation over the dev docs (even and
    odd docs), temperature and map fitted on one half, ECE on the other;
  - ``anchors``, on the same data: spaCy's ``tagger`` (softmax probability of the
    argmax tag) and ``spancat`` (its score of each span it predicts), raw and with a
    temperature fitted on dev (on the logits).
``--parts speed``: words/s of ``crf_tagger`` with confidences on and off and of spaCy's
``tagger`` (EWT XPOS), and of ``crf_ner`` and spaCy's ``ner`` (CoNLL-2003): CNN tok2vec
with GloVe 6B 50d, trained by bench_paper.py; ``nlp.pipe`` on the pre-tokenized test
docs, timed interleaved in this process, 1 BLAS thread.
The fuzz target is read from ``crf_core.json`` (``benchmarks/fuzz_crf.py --examples 10000``).

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/confidences.py [--parts calibration anchors speed]
Writes benchmarks/results/confidences.json, .md (parts merged) and confidences_<model>.png.
"""
import argparse
import json
import os
import sys
from pathlib import Path
from functools import partial
from typing import Any, Callable, Dict, List, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy  # noqa: E402
import spacy  # noqa: E402

from _env import RESULTS, WORK, header, markdown_header, now, set_blas_threads, time_interleaved, write_results  # noqa: E402
from calibration import N_BINS, examples, plot, run_before, softmax_top, spancat_pairs, summary, tagger_logits  # noqa: E402
from spacy_seqlab.calibration import (  # noqa: E402
    SPAN_GROUPINGS,
    apply_span_calibration,
    binary_nll,
    expected_calibration_error,
    fit_component_temperature,
    fit_span_calibration,
    fit_temperature,
    logit,
    pairs_at,
    scored_batches,
)
from spacy_seqlab.components.crf_pipe import CRFPipe  # noqa: E402
from spacy_seqlab.readers import unannotated  # noqa: E402

STEM = "confidences"
RUNS = Path(WORK) / "runs"
EWT, CONLL = Path(WORK) / "corpus", Path(WORK) / "corpora" / "ner_ents"
SPLITS = {"ewt_xpos": (EWT / "en_ewt-ud-dev.spacy", EWT / "en_ewt-ud-test.spacy"),
          "conll03": (CONLL / "dev.spacy", CONLL / "test.spacy")}
# name -> (task, model): bench_paper.py's GloVe winners (BiLSTM-CNN-CRF) and the BiLSTM-CRF (char-BiLSTM) variants
MODELS = {
    "conll03_bilstm_cnn_crf": ("conll03", "paper_conll03_conll03_paper_bilstm_cnn_crf_s8000_seed0"),
    "conll03_bilstm_char_crf": ("conll03", "paper_conll03_conll03_paper_bilstm_char_crf_s8000_seed0"),
    "ewt_xpos_bilstm_cnn_crf": ("ewt_xpos", "paper_ewt_xpos_ewt_xpos_paper_bilstm_cnn_crf_adam_s8000_seed0"),
    "ewt_xpos_bilstm_char_crf": ("ewt_xpos", "paper_ewt_xpos_ewt_xpos_paper_bilstm_char_crf_s8000_seed0"),
    # the winners' other seeds: their targets are the mean over the seeds
    **{f"conll03_bilstm_cnn_crf_seed{k}": ("conll03", f"paper_conll03_conll03_paper_bilstm_cnn_crf_s8000_seed{k}") for k in (1, 2)},
    **{f"ewt_xpos_bilstm_cnn_crf_seed{k}": ("ewt_xpos", f"paper_ewt_xpos_ewt_xpos_paper_bilstm_cnn_crf_s8000_seed{k}") for k in (1, 2)},
}
TAGGER = "paper_ewt_xpos_ewt_xpos_vectors_softmax_s4000_seed0"
SPANCAT = Path(WORK) / "spancat" / "out" / "model-best"
# speed: (task, ours, spaCy's), CNN + GloVe
SPEED = {"ewt_xpos": ("paper_ewt_xpos_ewt_xpos_vectors_crf_s4000_seed0", TAGGER),
         "conll03": ("paper_conll03_conll03_vectors_crf_s6000_seed0", "paper_conll03_conll03_vectors_ner_s6000_seed0")}


def stem(limit: int) -> str:
    """The results' file name stem: a smoke run (``--limit``) writes apart."""
    return f"{STEM}_limit{limit}" if limit else STEM


def pairs_of(pipe: CRFPipe) -> Callable:
    """What a model's calibration is measured on: its spans (``span_pairs``: confidence,
    hit, label, length) or its tags (``confidence_pairs``)."""
    return getattr(pipe, "span_pairs", pipe.confidence_pairs)


def token_temperature(pipe: CRFPipe, batches: List[Tuple[List[Any], Any]]) -> float:
    """The temperature of ``crf_ner`` fitted on its BILUO tags instead of its spans (the
    NLL of whether each decoded tag is right under its marginal)."""
    tags = partial(CRFPipe.confidence_pairs, pipe)
    return fit_temperature(lambda t: binary_nll(*pairs_at(tags, batches, t)))[0]


def span_options_on_dev(pipe: CRFPipe, dev: List[Any]) -> Dict[str, float]:
    """Mean held-out ECE of each span map option ("none": the temperature alone;
    "token_temperature": a temperature fitted on the tags, reported only) over two
    folds of the dev docs, temperature and map fitted on the other fold."""
    folds = [dev[0::2], dev[1::2]]
    eces: Dict[str, List[float]] = {"none": [], **{by: [] for by in SPAN_GROUPINGS}, "token_temperature": []}
    for k in range(2):
        fit_part, held = folds[k], folds[1 - k]
        t = fit_component_temperature(pipe, fit_part)[0]
        fit_batches, held_batches = scored_batches(pipe, fit_part), scored_batches(pipe, held)
        p_fit, h_fit, l_fit, n_fit = pairs_at(pipe.span_pairs, fit_batches, t)
        p_held, h_held, l_held, n_held = pairs_at(pipe.span_pairs, held_batches, t)
        eces["none"].append(expected_calibration_error(p_held, h_held, N_BINS))
        p_tok, h_tok = pairs_at(pipe.span_pairs, held_batches, token_temperature(pipe, fit_batches))[:2]
        eces["token_temperature"].append(expected_calibration_error(p_tok, h_tok, N_BINS))
        for by in SPAN_GROUPINGS:
            cal = fit_span_calibration(by, p_fit, h_fit, l_fit.tolist(), n_fit.tolist())
            eces[by].append(expected_calibration_error(
                apply_span_calibration(cal, p_held, l_held.tolist(), n_held.tolist()), h_held, N_BINS))
    return {name: float(numpy.mean(v)) for name, v in eces.items()}


def calibrate_model(name: str, task: str, run: str, limit: int) -> Dict[str, Any]:
    path = RUNS / run / "model-best"
    nlp = spacy.load(path)
    pipe_name = next(n for n, p in nlp.pipeline if isinstance(p, CRFPipe))
    pipe = nlp.get_pipe(pipe_name)
    dev, test = (examples(nlp, p, limit) for p in SPLITS[task])
    run_before(nlp, pipe_name, dev)
    run_before(nlp, pipe_name, test)
    temperature = fit_component_temperature(pipe, dev)[0]
    test_batches = scored_batches(pipe, test)
    out: Dict[str, Any] = {"model": str(path), "component": pipe.component_type, "temperature_fitted_on_dev": temperature}
    raw = pairs_at(pairs_of(pipe), test_batches, 1.0)
    tempered_pairs = pairs_at(pairs_of(pipe), test_batches, temperature)
    out["raw"], out["tempered"] = summary(raw[0], raw[1]), summary(tempered_pairs[0], tempered_pairs[1])
    if hasattr(pipe, "span_pairs"):
        options = span_options_on_dev(pipe, dev)
        dev_batches = scored_batches(pipe, dev)
        p_dev, h_dev, l_dev, n_dev = pairs_at(pipe.span_pairs, dev_batches, temperature)
        maps = {by: fit_span_calibration(by, p_dev, h_dev, l_dev.tolist(), n_dev.tolist()) for by in SPAN_GROUPINGS}
        probs, hit, labels, lengths = tempered_pairs[0], tempered_pairs[1], tempered_pairs[2].tolist(), tempered_pairs[3].tolist()
        on_test = {by: apply_span_calibration(cal, probs, labels, lengths) for by, cal in maps.items()}
        by = min(["none", *SPAN_GROUPINGS], key=options.get)  # "none": the temperature alone
        out["span_map_options_dev_ece"] = options
        t_tok = token_temperature(pipe, dev_batches)
        out["token_temperature_fitted_on_dev"] = t_tok
        out["span_map_options_test_ece"] = {"none": out["tempered"]["ece"], **{
            k: expected_calibration_error(conf, hit, N_BINS) for k, conf in on_test.items()},
            "token_temperature": expected_calibration_error(*pairs_at(pipe.span_pairs, test_batches, t_tok)[:2], N_BINS)}
        out["span_map"] = maps.get(by, {"by": "none"})
        out["calibrated"] = summary(on_test.get(by, probs), hit)
    print(f"[{now()}] {name}: T {temperature:.3f}, ECE raw {out['raw']['ece']:.4f} tempered {out['tempered']['ece']:.4f}"
          + (f" calibrated {out['calibrated']['ece']:.4f} ({out['span_map']['by']})" if "calibrated" in out else ""), flush=True)
    shown = out if out.get("span_map", {}).get("by", "none") != "none" else {k: v for k, v in out.items() if k != "calibrated"}
    plot(shown, f"{name}, test {'spans' if 'calibrated' in out else 'tokens'}", os.path.join(RESULTS, f"{stem(limit)}_{name}.png"))
    return out


def tempered_anchor(dev_logits: numpy.ndarray, dev_hit: numpy.ndarray, test_logits: numpy.ndarray,
                    test_hit: numpy.ndarray, confidence: Callable[[numpy.ndarray, float], numpy.ndarray]) -> Dict[str, Any]:
    """Raw and tempered summaries of an anchor whose confidence at temperature T is
    ``confidence(logits, T)``; T fitted on dev (binary NLL)."""
    t, _ = fit_temperature(lambda t: binary_nll(confidence(dev_logits, t), dev_hit))
    return {"temperature_fitted_on_dev": t, "raw": summary(confidence(test_logits, 1.0), test_hit),
            "tempered": summary(confidence(test_logits, t), test_hit)}


def sigmoid_tempered(conf: numpy.ndarray, t: float) -> numpy.ndarray:
    """spancat's scores (sigmoids) with their logits divided by ``t``."""
    return 1 / (1 + numpy.exp(-logit(conf) / t))


def anchors(limit: int) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    tagger = spacy.load(RUNS / TAGGER / "model-best")
    (dev_x, dev_h), (test_x, test_h) = (tagger_logits(tagger, examples(tagger, p, limit)) for p in SPLITS["ewt_xpos"])  # noqa: E501
    out["tagger"] = {"model": str(RUNS / TAGGER / "model-best"),
                     **tempered_anchor(dev_x, dev_h, test_x, test_h, softmax_top)}
    if SPANCAT.exists():
        spancat = spacy.load(SPANCAT)
        (dev_c, dev_h), (test_c, test_h) = (spancat_pairs(spancat, examples(spancat, p, limit)) for p in SPLITS["conll03"])
        out["spancat"] = {"model": str(SPANCAT), **tempered_anchor(dev_c, dev_h, test_c, test_h, sigmoid_tempered)}
    for name, r in out.items():
        print(f"[{now()}] {name}: ECE raw {r['raw']['ece']:.4f} tempered {r['tempered']['ece']:.4f}", flush=True)
    return out


def speed(passes: int, batch_size: int) -> Dict[str, Any]:
    set_blas_threads(1)
    out: Dict[str, Any] = {}
    for task, (ours, theirs) in SPEED.items():
        path = RUNS / ours / "model-best"
        crf_name = spacy.load(path).pipe_names[-1]
        nlps = {"confidences_on": spacy.load(path),
                "confidences_off": spacy.load(path, config={"components": {crf_name: {"confidences": False}}}),
                "spacy": spacy.load(RUNS / theirs / "model-best")}
        refs = examples(nlps["spacy"], SPLITS[task][1], 0)
        words = sum(len(eg.reference) for eg in refs)

        def pipe(nlp: Any) -> Callable[[], None]:
            fresh = [[unannotated(eg.reference) for eg in refs] for _ in range(passes + 1)]

            def go() -> None:
                for _ in nlp.pipe(fresh.pop(), batch_size=batch_size):
                    pass
            return go

        times = time_interleaved({n: pipe(nlp) for n, nlp in nlps.items()}, reps=passes, warmup=1, rounds=passes)
        wps = {n: words / (t["min_ms"] / 1000) for n, t in times.items()}
        out[task] = {"ours": ours, "spacy": theirs, "words": words, "words_per_s": wps, "times_ms": times,
                     "ratio_on": wps["confidences_on"] / wps["spacy"], "ratio_off": wps["confidences_off"] / wps["spacy"],
                     "loadavg": os.getloadavg(), "date": now()}
        print(f"[{now()}] {task}: on {out[task]['ratio_on']:.3f}x, off {out[task]['ratio_off']:.3f}x spaCy", flush=True)
    return out


def fuzz() -> Dict[str, Any]:
    path = Path(RESULTS) / "crf_core.json"
    if not path.exists():
        return {}
    run = json.loads(path.read_text())["runs"].get("fuzz", {})
    return {k: run[k] for k in ("date", "command", "counts") if k in run}


def row(name: str, target: str, value: Any, met: bool) -> Dict[str, Any]:
    return {"name": name, "target": target, "value": value, "met": bool(met)}


def over_seeds(cal: Dict[str, Any], key: str, kind: str) -> Tuple[float, str]:
    """The mean ECE (``kind``: "calibrated" or "tempered") of ``key`` and its other
    seeds, and how it was made."""
    values = [cal[k][kind]["ece"] for k in (key, f"{key}_seed1", f"{key}_seed2") if k in cal]
    mean = float(numpy.mean(values))
    how = f"mean of {len(values)} seeds ({' / '.join(f'{v:.4f}' for v in values)})" if len(values) > 1 else "seed 0"
    return mean, how


def targets(result: Dict[str, Any]) -> List[Dict[str, Any]]:
    cal, anchor, rows = result.get("calibration", {}), result.get("anchors", {}), []
    spans = {"conll03_bilstm_cnn_crf": "CoNLL-2003 winner (BiLSTM-CNN-CRF)", "conll03_bilstm_char_crf": "BiLSTM-CRF (char-BiLSTM)"}
    for key, label in spans.items():
        if key in cal:
            ece, how = over_seeds(cal, key, "calibrated")
            rows.append(row(f"span ECE, {label}, CoNLL-2003 test, {how}", "<= 0.02", ece, ece <= 0.02))
            for kind in ("raw", "tempered"):
                if "spancat" in anchor:
                    theirs = anchor["spancat"][kind]["ece"]
                    rows.append(row(f"span ECE, {label} <= spancat {kind}", f"<= {theirs:.4f}", ece, ece <= theirs))
    for key, label in {"ewt_xpos_bilstm_cnn_crf": "EWT XPOS winner (BiLSTM-CNN-CRF)",
                       "ewt_xpos_bilstm_char_crf": "BiLSTM-CRF (char-BiLSTM), EWT XPOS"}.items():
        if key in cal:
            ece, how = over_seeds(cal, key, "tempered")
            if key == "ewt_xpos_bilstm_cnn_crf":
                rows.append(row(f"token ECE, {label}, test, {how}", "<= 0.01", ece, ece <= 0.01))
            for kind in ("raw", "tempered"):
                if "tagger" in anchor:
                    theirs = anchor["tagger"][kind]["ece"]
                    rows.append(row(f"token ECE, {label} <= spaCy tagger {kind}", f"<= {theirs:.4f}", ece, ece <= theirs))
    sp = result.get("speed", {})
    if "ewt_xpos" in sp:
        rows.append(row("crf_tagger / tagger words/s, CNN + GloVe, confidences on", ">= 0.95",
                        sp["ewt_xpos"]["ratio_on"], sp["ewt_xpos"]["ratio_on"] >= 0.95))
        rows.append(row("crf_tagger / tagger words/s, confidences off", ">= 1.0",
                        sp["ewt_xpos"]["ratio_off"], sp["ewt_xpos"]["ratio_off"] >= 1.0))
    if "conll03" in sp:
        rows.append(row("crf_ner / ner words/s, CNN + GloVe, confidences on", ">= 1.0",
                        sp["conll03"]["ratio_on"], sp["conll03"]["ratio_on"] >= 1.0))
    counts = result.get("fuzz", {}).get("counts")
    if counts:
        bad = {k: counts[k] for k in ("wrong_answers", "unclear_exceptions", "silent_nan_on_valid_input")}
        rows.append(row(f"fuzz_crf.py --examples {counts['examples_tried']}: wrong, unclear, silent NaN", "0, 0, 0",
                        list(bad.values()), counts["examples_tried"] >= 10000 and not any(bad.values())))
    return rows


def fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def markdown(result: Dict[str, Any]) -> str:
    lines = ["# Confidences: calibration of the best models, and their cost", "", markdown_header(result), "",
             "Test sets, gold tokens and sentence starts; temperatures and span maps fitted on dev. "
             f"ECE: {N_BINS} equal-mass bins. Spans: each predicted span's confidence against whether it is gold "
             "(precision); tokens: each predicted tag's.", "",
             "| model (test) | n | accuracy | ECE raw | T (dev) | ECE tempered | span map (chosen on dev) | ECE calibrated |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in result.get("calibration", {}).items():
        span_map, cal = (r["span_map"]["by"], f"{r['calibrated']['ece']:.4f}") if "calibrated" in r else ("-", "-")
        lines.append(f"| {name} | {r['raw']['n']} | {r['raw']['accuracy']:.4f} | {r['raw']['ece']:.4f} | "
                     f"{r['temperature_fitted_on_dev']:.3f} | {r['tempered']['ece']:.4f} | {span_map} | {cal} |")
    for name, r in result.get("anchors", {}).items():
        lines.append(f"| spaCy {name} (anchor) | {r['raw']['n']} | {r['raw']['accuracy']:.4f} | {r['raw']['ece']:.4f} | "
                     f"{r['temperature_fitted_on_dev']:.3f} | {r['tempered']['ece']:.4f} | - | - |")
    options = {n: r for n, r in result.get("calibration", {}).items() if "span_map_options_dev_ece" in r}
    if options:
        kinds = ["none", *SPAN_GROUPINGS, "token_temperature"]
        lines += ["", "Span maps on top of the temperature fitted on spans (none: the temperature alone), and the "
                  "temperature fitted on the BILUO tags instead (token_temperature, reported only); ECE (dev: mean of "
                  "2 held-out folds; test: fitted on all of dev):", "",
                  "| model | " + " | ".join(kinds) + " |", "| --- |" + " --- |" * len(kinds)]
        for name, r in options.items():
            for split in ("dev", "test"):
                v = r[f"span_map_options_{split}_ece"]
                lines.append(f"| {name} ({split}) | " + " | ".join(f"{v[k]:.4f}" if k in v else "-" for k in kinds) + " |")
    if result.get("speed"):
        lines += ["", "Inference words/s (`nlp.pipe`, batch 256, pre-tokenized test docs, best of passes, interleaved, 1 thread):", "",
                  "| task | ours | words/s on | words/s off | spaCy | words/s | on / spaCy | off / spaCy |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for task, r in result["speed"].items():
            w = r["words_per_s"]
            lines.append(f"| {task} | {r['ours']} | {w['confidences_on']:,.0f} | {w['confidences_off']:,.0f} | {r['spacy']} | "
                         f"{w['spacy']:,.0f} | {r['ratio_on']:.3f} | {r['ratio_off']:.3f} |")
    lines += ["", "| target | threshold | value | met |", "| --- | --- | --- | --- |"]
    lines += [f"| {t['name']} | {t['target']} | {fmt(t['value'])} | {t['met']} |" for t in result["targets"]]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", choices=["calibration", "anchors", "speed"], default=["calibration", "anchors", "speed"])
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--limit", type=int, default=0, help="at most this many dev/test docs (0: all)")
    p.add_argument("--passes", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args()
    path = Path(RESULTS) / f"{STEM}.json"
    result = json.loads(path.read_text()) if path.exists() and not args.limit else {}
    result.update(header("spacy", "thinc", "numpy", "spacy-seqlab"))
    if "calibration" in args.parts:
        result.setdefault("calibration", {})
        for name in args.models:
            result["calibration"][name] = calibrate_model(name, *MODELS[name], args.limit)
    if "anchors" in args.parts:
        result["anchors"] = anchors(args.limit)
    if "speed" in args.parts:
        result["speed"] = speed(args.passes, args.batch_size)
    result["fuzz"] = fuzz()
    result["targets"] = targets(result)
    write_results(RESULTS, stem(args.limit), result, markdown(result))


if __name__ == "__main__":
    main()
