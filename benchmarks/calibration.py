"""Calibration of the CRF confidences, and decoding around an entity ruler.

1. Token confidences of ``crf_tagger`` on EWT XPOS (CNN and char-CNN + BiLSTM
   tok2vec) and span confidences of ``crf_ner``
   on CoNLL-2003, on test: expected calibration error (15 equal-mass bins) and a
   reliability diagram, before and after a temperature fitted on dev
   (``spacy_seqlab.calibration.fit_component_temperature``; never on test).
2. CoNLL-2003 test with a gazetteer ``entity_ruler`` of 200 entities drawn from the
   training set (seed 0, texts with one label in train): entity F1 of ``crf_ner``
   alone, of the ruler + ``crf_ner`` decoding given the ruler's entities (clamped), and
   of the behaviour before clamping (the ruler's entities, then the predictions that do
   not overlap them).

The models are trained elsewhere (benchmarks/work/runs/*/model-best; see --tagger and
--ner), on the same corpora (--ewt, --conll, gold tokenization).

Run:  .venv/bin/python benchmarks/calibration.py
Writes benchmarks/results/calibration.json, .md and calibration_{ewt,ewt_bilstm,conll}.png.
"""
import argparse
import os
import random
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import numpy  # noqa: E402
import spacy  # noqa: E402
from spacy.language import Language  # noqa: E402
from spacy.scorer import get_ner_prf  # noqa: E402
from spacy.tokens import Doc, DocBin, Span  # noqa: E402
from spacy.training import Example  # noqa: E402

from _env import RESULTS, WORK, header, markdown_header, write_results  # noqa: E402
from spacy_seqlab.calibration import (  # noqa: E402
    expected_calibration_error,
    fit_component_temperature,
    pairs_at,
    reliability_bins,
    scored_batches,
)
from spacy_seqlab.cli.calibrate import dev_examples  # noqa: E402
from spacy_seqlab.components.crf_pipe import CRFPipe  # noqa: E402

N_BINS = 15


def examples(nlp: Language, path: Path, limit: int = 0) -> List[Example]:
    """Gold docs of a DocBin, each with an unannotated copy of its tokens and sentence
    starts (gold tokenization and sentences, as the accuracy benchmarks score)."""
    egs = dev_examples(nlp, path)
    return egs[:limit] if limit else egs


def run_before(nlp: Language, name: str, egs: List[Example]) -> None:
    """Run the components before ``name`` on the predicted docs, in place."""
    before = nlp.pipe_names[: nlp.pipe_names.index(name)]
    for pipe_name in before:
        for eg, doc in zip(egs, nlp.get_pipe(pipe_name).pipe([eg.predicted for eg in egs])):
            eg.predicted = doc


def calibrate(nlp: Language, name: str, dev: List[Example], test: List[Example]) -> Dict[str, Any]:
    pipe = nlp.get_pipe(name)
    run_before(nlp, name, dev)
    run_before(nlp, name, test)
    temperature, dev_nll = fit_component_temperature(pipe, dev)
    test_batches = scored_batches(pipe, test)
    out: Dict[str, Any] = {"temperature_fitted_on_dev": temperature, "dev_nll_at_temperature": dev_nll}
    for label, t in (("raw", 1.0), ("tempered", temperature)):
        out[label] = summary(*pairs_at(pipe.confidence_pairs, test_batches, t))
    return out


def summary(conf: numpy.ndarray, hit: numpy.ndarray) -> Dict[str, Any]:
    return {
        "n": int(len(conf)),
        "mean_confidence": float(conf.mean()),
        "accuracy": float(hit.mean()),
        "ece": expected_calibration_error(conf, hit, N_BINS),
        "bins": [b.__dict__ for b in reliability_bins(conf, hit, N_BINS)],
    }


def tagger_logits(nlp: Language, egs: List[Example]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """spaCy's ``tagger`` in ``nlp``: the scores of each token with a gold tag (N, labels)
    (``spacy.Tagger.v2`` does not normalize them at inference: softmax gives its
    probabilities) and whether its argmax tag is gold (N,)."""
    name = next(n for n in nlp.pipe_names if nlp.get_pipe_meta(n).factory == "tagger")
    run_before(nlp, name, egs)
    tagger = nlp.get_pipe(name)
    rows, hit = [], []
    for i in range(0, len(egs), 256):
        batch = egs[i : i + 256]
        for eg, scores in zip(batch, tagger.model.predict([eg.predicted for eg in batch])):
            scores = tagger.model.ops.to_numpy(scores).astype("float64")
            gold = eg.get_aligned("TAG", as_string=True)
            known = numpy.asarray([bool(label) for label in gold], dtype=bool)
            rows.append(scores[known])
            hit.extend(tagger.labels[int(k)] == label for k, label in zip(scores[known].argmax(axis=1), numpy.asarray(gold, dtype=object)[known]))
    return numpy.concatenate(rows), numpy.asarray(hit, dtype=bool)


def softmax_top(scores: numpy.ndarray, temperature: float = 1.0) -> numpy.ndarray:
    """The softmax probability of the argmax of each row of ``scores / temperature``."""
    x = scores / temperature
    return 1.0 / numpy.exp(x - x.max(axis=1, keepdims=True)).sum(axis=1)


def softmax_tagger_anchor(path: Path, test_path: Path, limit: int) -> Dict[str, Any]:
    """spaCy's ``tagger``: the softmax probability of each predicted tag on test."""
    nlp = spacy.load(path)
    scores, hit = tagger_logits(nlp, examples(nlp, test_path, limit))
    return {"model": str(path), **summary(softmax_top(scores), hit)}


def spancat_pairs(nlp: Language, egs: List[Example]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """spaCy's ``spancat`` (trained on the entities as doc.spans["sc"]): the score of
    each span it predicts (above its threshold) and whether it is gold."""
    conf, hit = [], []
    for eg, doc in zip(egs, nlp.pipe([eg.predicted for eg in egs])):
        gold = {(e.start, e.end, e.label_) for e in eg.reference.ents}
        group = doc.spans["sc"]
        for span, score in zip(group, group.attrs["scores"]):
            conf.append(float(numpy.max(score)))
            hit.append((span.start, span.end, span.label_) in gold)
    return numpy.asarray(conf), numpy.asarray(hit, dtype=bool)


def spancat_anchor(path: Path, test_path: Path, limit: int) -> Dict[str, Any]:
    """spaCy's ``spancat`` on test: the calibration of its span scores."""
    nlp = spacy.load(path)
    return {"model": str(path), **summary(*spancat_pairs(nlp, examples(nlp, test_path, limit)))}


def plot(result: Dict[str, Any], title: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    shown = [label for label in ("raw", "tempered", "calibrated") if label in result]
    for label in shown:
        bins = result[label]["bins"]
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o",
                label=f"{label} (ECE {result[label]['ece']:.3f})")
    ax.set_xlabel("mean confidence (15 equal-mass bins)")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    low = min(min(b["confidence"], b["accuracy"]) for r in shown for b in result[r]["bins"])
    ax.set_xlim(max(0.0, low - 0.05), 1.0)
    ax.set_ylim(max(0.0, low - 0.05), 1.0)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def gazetteer(train_path: Path, vocab, n: int = 200, seed: int = 0, by_mention: bool = False) -> List[Dict[str, Any]]:
    """``n`` token patterns of entities of the training set whose text has one label
    there: drawn uniformly from the distinct texts, or (``by_mention``) from the
    mentions, so that frequent entities are likelier, without repeats."""
    labels: Dict[Tuple[str, ...], set] = {}
    mentions: List[Tuple[str, ...]] = []
    for doc in DocBin().from_disk(train_path).get_docs(vocab):
        for ent in doc.ents:
            words = tuple(t.text for t in ent)
            labels.setdefault(words, set()).add(ent.label_)
            mentions.append(words)
    unambiguous = {words: next(iter(ls)) for words, ls in labels.items() if len(ls) == 1}
    rng = random.Random(seed)
    if by_mention:
        pool = [words for words in mentions if words in unambiguous]
        rng.shuffle(pool)
        chosen = list(dict.fromkeys(pool))[:n]
    else:
        chosen = rng.sample(sorted(unambiguous), n)
    return [{"label": unambiguous[words], "pattern": [{"ORTH": w} for w in words]} for words in chosen]


def prf(predicted: List[Doc], test: List[Example]) -> Dict[str, float]:
    scores = get_ner_prf([Example(doc, eg.reference) for doc, eg in zip(predicted, test)])
    return {"p": scores["ents_p"], "r": scores["ents_r"], "f": scores["ents_f"]}


def ruler_f1(nlp: Language, name: str, train_path: Path, test: List[Example], by_mention: bool) -> Dict[str, Any]:
    patterns = gazetteer(train_path, nlp.vocab, by_mention=by_mention)
    blank = [eg.predicted for eg in test]  # unannotated
    alone = list(nlp.pipe([d.copy() for d in blank]))
    ruler = nlp.add_pipe("entity_ruler", before=name)
    ruler.add_patterns(patterns)
    clamped = list(nlp.pipe([d.copy() for d in blank]))
    ruled = [ruler(d.copy()) for d in blank]
    nlp.remove_pipe("entity_ruler")
    ruler_only = prf(ruled, test)
    n_ruled = sum(len(d.ents) for d in ruled)
    dropped = []
    for doc, ner_doc in zip(ruled, alone):
        doc = doc.copy()
        taken = numpy.zeros(len(doc) + 1, dtype=bool)
        for ent in doc.ents:
            taken[ent.start : ent.end] = True
        keep = [e for e in ner_doc.ents if not taken[e.start : e.end].any()]
        spans = [Span(doc, e.start, e.end, label=e.label_) for e in keep]
        doc.set_ents(list(doc.ents) + spans, default="outside")
        dropped.append(doc)
    return {
        "patterns": len(patterns),
        "ruler_entities_in_test": n_ruled,
        "ruler_alone": ruler_only,
        "crf_ner_alone": prf(alone, test),
        "ruler_then_crf_ner_clamped": prf(clamped, test),
        "ruler_then_crf_ner_drop_overlaps": prf(dropped, test),
    }


def anchor_row(name: str, ece: float, anchor) -> Tuple[str, str, Any, Any]:
    if anchor is None:
        return (name, "<= anchor ECE", None, None)
    return (name, f"<= {anchor['ece']:.4f}", ece, ece <= anchor["ece"])


def targets(result: Dict[str, Any]) -> List[Dict[str, Any]]:
    ewt, conll, ruler = result["ewt_xpos_tokens"], result["conll03_spans"], result["ruler"]
    f = {k: v["f"] for k, v in ruler.items() if isinstance(v, dict)}
    rows = [
        ("token ECE on EWT XPOS test (tempered) <= 0.01", "<= 0.01", ewt["tempered"]["ece"], ewt["tempered"]["ece"] <= 0.01),
        ("token ECE on EWT XPOS test, BiLSTM-CRF (tempered) <= 0.01", "<= 0.01", result["ewt_xpos_tokens_bilstm"]["tempered"]["ece"],
         result["ewt_xpos_tokens_bilstm"]["tempered"]["ece"] <= 0.01),
        anchor_row("token ECE (tempered) no worse than spaCy's tagger (softmax)", ewt["tempered"]["ece"], result.get("anchor_tagger")),
        ("span ECE on CoNLL-2003 test (tempered) <= 0.02", "<= 0.02", conll["tempered"]["ece"], conll["tempered"]["ece"] <= 0.02),
        anchor_row("span ECE (tempered) no worse than spancat's", conll["tempered"]["ece"], result.get("anchor_spancat")),
        ("F1 ruler + crf_ner (clamped) - F1 crf_ner alone >= 0", ">= 0",
         f["ruler_then_crf_ner_clamped"] - f["crf_ner_alone"], f["ruler_then_crf_ner_clamped"] >= f["crf_ner_alone"]),
        ("F1 ruler + crf_ner (clamped) - F1 drop-overlaps >= 0", ">= 0",
         f["ruler_then_crf_ner_clamped"] - f["ruler_then_crf_ner_drop_overlaps"],
         f["ruler_then_crf_ner_clamped"] >= f["ruler_then_crf_ner_drop_overlaps"]),
    ]
    return [{"name": n, "target": t, "value": v, "met": m} for n, t, v, m in rows]


def markdown(result: Dict[str, Any]) -> str:
    lines = ["# Calibration and decoding around an entity ruler", "", markdown_header(result), "",
             "| confidences (test) | n | mean confidence | accuracy | ECE raw | T (dev) | ECE tempered |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, name in (("ewt_xpos_tokens", "EWT XPOS tokens, crf_tagger (CNN)"),
                      ("ewt_xpos_tokens_bilstm", "EWT XPOS tokens, crf_tagger (char-CNN + BiLSTM)"),
                      ("conll03_spans", "CoNLL-2003 spans, crf_ner (CNN)")):
        r = result[key]
        lines.append(f"| {name} | {r['raw']['n']} | {r['raw']['mean_confidence']:.3f} | {r['raw']['accuracy']:.3f} | "
                     f"{r['raw']['ece']:.4f} | {r['temperature_fitted_on_dev']:.3f} | {r['tempered']['ece']:.4f} |")
    for key, name in (("anchor_tagger", "spaCy tagger (softmax), EWT XPOS tokens"), ("anchor_spancat", "spaCy spancat, CoNLL-2003 spans")):
        r = result.get(key)
        if r is not None:
            lines.append(f"| {name} (anchor) | {r['n']} | {r['mean_confidence']:.3f} | {r['accuracy']:.3f} | {r['ece']:.4f} | - | - |")
    for key, how in (("ruler", "distinct texts, uniformly"), ("ruler_by_mention", "mentions (frequent entities likelier)")):
        ruler = result[key]
        lines += ["", f"Entity ruler of {ruler['patterns']} unambiguous training entities drawn from {how} "
                  f"(seed 0): {ruler['ruler_entities_in_test']} matches in test.", "",
                  "| CoNLL-2003 test | P | R | F1 |", "| --- | --- | --- | --- |"]
        for row in ("ruler_alone", "crf_ner_alone", "ruler_then_crf_ner_clamped", "ruler_then_crf_ner_drop_overlaps"):
            v = ruler[row]
            lines.append(f"| {row} | {v['p']:.4f} | {v['r']:.4f} | {v['f']:.4f} |")
    lines += ["", "| target | value | met |", "| --- | --- | --- |"]
    for t in result["targets"]:
        value = "not measured" if t["value"] is None else f"{t['value']:.4f}"
        lines.append(f"| {t['name']} | {value} | {t['met']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    runs = Path(WORK) / "runs"
    parser.add_argument("--tagger", type=Path, default=runs / "vectors_ewt_xpos_crf_s2000_seed0" / "model-best")
    parser.add_argument("--ner", type=Path, default=runs / "vectors_conll03_crf_s2000_seed0" / "model-best")
    parser.add_argument("--ewt", type=Path, default=Path(WORK) / "corpus", help="en_ewt-ud-{dev,test}.spacy")
    parser.add_argument("--conll", type=Path, default=Path(WORK) / "corpora" / "ner_ents", help="{train,dev,test}.spacy")
    parser.add_argument("--bilstm-tagger", type=Path, default=runs / "vectors_ewt_xpos_charcnn_bilstm_crf_s2000_seed0" / "model-best")
    parser.add_argument("--softmax-tagger", type=Path, default=runs / "vectors_ewt_xpos_softmax_s2000_seed0" / "model-best")
    parser.add_argument("--spancat", type=Path, default=Path(WORK) / "spancat" / "out" / "model-best")
    parser.add_argument("--limit", type=int, default=0, help="at most this many dev/test docs (0: all)")
    args = parser.parse_args()
    tagger = spacy.load(args.tagger)
    tagger_name = next(n for n, p in tagger.pipeline if isinstance(p, CRFPipe))
    ewt = calibrate(tagger, tagger_name, examples(tagger, args.ewt / "en_ewt-ud-dev.spacy", args.limit),
                    examples(tagger, args.ewt / "en_ewt-ud-test.spacy", args.limit))
    bilstm = spacy.load(args.bilstm_tagger)
    bilstm_name = next(n for n, p in bilstm.pipeline if isinstance(p, CRFPipe))
    ewt_bilstm = calibrate(bilstm, bilstm_name, examples(bilstm, args.ewt / "en_ewt-ud-dev.spacy", args.limit),
                           examples(bilstm, args.ewt / "en_ewt-ud-test.spacy", args.limit))
    ner = spacy.load(args.ner)
    ner_name = next(n for n, p in ner.pipeline if isinstance(p, CRFPipe))
    test = examples(ner, args.conll / "test.spacy", args.limit)
    conll = calibrate(ner, ner_name, examples(ner, args.conll / "dev.spacy", args.limit), test)
    ruler = ruler_f1(ner, ner_name, args.conll / "train.spacy", examples(ner, args.conll / "test.spacy", args.limit), False)
    ruler_mentions = ruler_f1(ner, ner_name, args.conll / "train.spacy", examples(ner, args.conll / "test.spacy", args.limit), True)
    result: Dict[str, Any] = {
        **header("spacy", "thinc", "numpy", "spacy-seqlab"),
        "setup": {"tagger": str(args.tagger), "bilstm_tagger": str(args.bilstm_tagger), "ner": str(args.ner), "bins": N_BINS, "limit": args.limit,
                  "note": "models: CNN tok2vec + static vectors (en_core_web_md), 2000 steps (short, CPU)"},
        "ewt_xpos_tokens": ewt,
        "ewt_xpos_tokens_bilstm": ewt_bilstm,
        "conll03_spans": conll,
        "ruler": ruler,
        "ruler_by_mention": ruler_mentions,
    }
    if args.softmax_tagger.exists():
        result["anchor_tagger"] = softmax_tagger_anchor(args.softmax_tagger, args.ewt / "en_ewt-ud-test.spacy", args.limit)
    if args.spancat.exists():
        result["anchor_spancat"] = spancat_anchor(args.spancat, args.conll / "test.spacy", args.limit)
    result["targets"] = targets(result)
    stem = "calibration" if not args.limit else f"calibration_limit{args.limit}"
    plot(ewt, "crf_tagger, EWT XPOS test tokens", os.path.join(RESULTS, f"{stem}_ewt.png"))
    plot(ewt_bilstm, "crf_tagger (char-CNN + BiLSTM), EWT XPOS test tokens", os.path.join(RESULTS, f"{stem}_ewt_bilstm.png"))
    plot(conll, "crf_ner, CoNLL-2003 test spans", os.path.join(RESULTS, f"{stem}_conll.png"))
    write_results(RESULTS, stem, result, markdown(result))


if __name__ == "__main__":
    main()
