"""The lecture's comparison on real data: HMM, MEMM, feature CRF, BiLSTM-softmax,
BiLSTM-CRF, char-CNN + BiLSTM-CRF and transformer + CRF, each trained once on UD English
EWT XPOS (``configs/ewt_xpos_<model>.cfg``) and scored on the same test split.

Budget: ``--epochs`` (default 10) for every trained model, ``--trf-epochs`` (default 2)
for the transformer, one pass for the HMM (estimated by counting in ``initialize``);
no early stopping, ``model-last`` scored with gold tokens and sentences. Training time: the
child's initialize plus its training loop, dev evaluations excluded. Inference:
``nlp.pipe`` on pre-tokenized test Docs, best of ``--passes``. OOV: test tokens whose
form is not in the training split. Children and corpora as in ``bench_archs.py``. A
model whose training already finished in its run dir with the same settings is only
evaluated; the transformer + CRF run is the ``ewt_xpos trf_crf`` run of
``bench_transformer.py`` (same run dir, config and settings), trained once for both.

Writes ``compare_ewt_xpos{_TAG}.{json,md,png}`` to ``--out`` after every run (the PNG:
test accuracy against inference words/s). Run it with ``spacy project run compare`` or:
      .venv/bin/python benchmarks/compare.py --corpus corpus
      .venv/bin/python benchmarks/compare.py --corpus DIR --models hmm memm --epochs 1 --limit 20
"""
import argparse
import os
import sys
from pathlib import Path
from typing import Any, Dict, NamedTuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _env import (  # noqa: E402
    corpus_file, fmt, limit_overrides, markdown_header, now, tagged, train_forms, trained_run,
    updated_results,
)
from _spacy_runs import ROOT, add_common_args, make_spec  # noqa: E402
from bench_tagger import prepare_corpus  # noqa: E402
from bench_transformer import minilm_dir, trf_run_dir  # noqa: E402


class Model(NamedTuple):
    label: str
    form: str  # the lecture's table: model form, label dependency, rich features
    dependency: str
    features: str


MODELS: Dict[str, Model] = {
    "hmm": Model("HMM (second-order, TnT suffixes)", "generative, joint P(x, y)",
                 "Markov (counts)", "no: word identity, suffixes of unknown words"),
    "memm": Model("MEMM", "discriminative, locally normalized P(y_i \\| y_i-1, x)",
                  "Markov", "yes: hashed word, prefix, suffix, shape, +-2 tokens"),
    "featcrf": Model("feature CRF", "discriminative, globally normalized P(y \\| x)",
                     "Markov", "yes: the MEMM's features"),
    "bilstm_softmax": Model("BiLSTM-softmax", "discriminative, per token",
                            "none (independent decisions)", "learned: BiLSTM over word features"),
    "bilstm_crf": Model("BiLSTM-CRF", "discriminative, globally normalized", "Markov",
                        "learned: BiLSTM over word features"),
    "charcnn_bilstm_crf": Model("char-CNN + BiLSTM-CRF", "discriminative, globally normalized",
                                "Markov", "learned: + character CNN"),
    "trf_crf": Model("transformer + CRF", "discriminative, globally normalized", "Markov",
                     "learned: pretrained transformer (first word piece)"),
}
SETTINGS = ("epochs", "trf_epochs", "limit", "seed", "eval_frequency", "batch_size",
            "passes", "torch_threads", "trf_threads", "transformer", "corpus")


def model_args(args: argparse.Namespace, model: str) -> argparse.Namespace:
    """The run settings of one model: its own epoch budget."""
    epochs = {"hmm": 1, "trf_crf": args.trf_epochs}.get(model, args.epochs)
    return argparse.Namespace(**{**vars(args), "epochs": epochs})


def run_model(model: str, corpus: Path, forms: set, args: argparse.Namespace,
              work: Path) -> Dict[str, Any]:
    """Train and test one model; the record of the run."""
    margs = model_args(args, model)
    trf = model == "trf_crf"
    if trf:  # the run of bench_transformer.py's ewt_xpos trf_crf: trained once for both
        run_dir = trf_run_dir(work, "ewt_xpos", "trf_crf", margs)
    else:
        run_dir = work / "runs" / f"compare_{model}_e{margs.epochs}" \
            f"{'_l' + str(args.limit) if args.limit else ''}{'_' + args.tag if args.tag else ''}"
    overrides = {**({"paths.transformer": args.transformer} if trf else {}),
                 **limit_overrides(args.limit)}
    spec = make_spec(
        model, f"ewt_xpos {model}", str(ROOT / "configs" / f"ewt_xpos_{model}.cfg"),
        corpus_file(corpus, "train"), corpus_file(corpus, "dev"), corpus_file(corpus, "test"),
        run_dir, margs, overrides, score_key="tag_acc", export_tokens="tag",
        test_limit=args.limit, torch_threads=args.trf_threads if trf else args.torch_threads,
    )
    budget = "1 pass (counting)" if model == "hmm" else f"{margs.epochs} epochs"
    run, inf = trained_run(spec, budget, forms, reuse=True)
    run.update(budget=budget, test_acc=inf["scores"]["tag_acc"] * 100,
               train_time_s=run["init_s"] + run["train_s"])
    return run


def to_markdown(result: Dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        "# Every model of the lecture on UD English EWT XPOS",
        "",
        markdown_header(result),
        "",
        f"One run per model, same train/dev/test split (`{s['corpus']}`"
        + (f", **LIMIT: first {s['limit']} docs of each split**" if s["limit"] else "")
        + f"), seed {s['seed']}, no early stopping, `model-last` scored on test with gold "
        f"tokens and sentence boundaries. Budget: {s['epochs']} epochs; transformer + CRF {s['trf_epochs']} "
        f"epochs ({s['trf_threads']} torch threads; `{s['transformer']}`); HMM one counting "
        f"pass. Other models: {s['torch_threads']} torch thread(s). Train time: initialize "
        "+ training loop, dev evaluations excluded. Inference: `nlp.pipe` on pre-tokenized "
        f"test Docs, batch_size {s['batch_size']}, best of {s['passes']} passes. OOV: test "
        "tokens whose form never occurs in the training split. Load: 1-min load average "
        "before training / inference (2 cores).",
        "",
        "| model | model form | label dependency | rich features | test acc | OOV acc | "
        "train time (s) | budget | infer words/s | model MB | load train / infer |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for name, spec in MODELS.items():
        r = result["runs"].get(name)
        if r is None:
            continue
        if "error" in r:
            lines.append(f"| {spec.label} | FAILED: {r['error']} |" + " |" * 9)
            continue
        lines.append(
            f"| {spec.label} | {spec.form} | {spec.dependency} | {spec.features} | "
            f"{r['test_acc']:.2f} | {fmt(r['oov_acc'])} | {r['train_time_s']:,.0f} | "
            f"{r['budget']} | {r['infer_words_per_s']:,.0f} | {r['model_bytes'] / 1e6:.1f} | "
            f"{r['train_loadavg_before']:.1f} / {r['infer_loadavg_before']:.1f} |")
    lines += ["", f"![test accuracy against inference speed]({result['plot']})"]
    return "\n".join(lines)


def plot(runs: Dict[str, Any], path: Path) -> None:
    """Test accuracy against inference words/s (log scale), one labelled point per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in runs.items():
        if "error" in r or name not in MODELS:
            continue
        ax.scatter(r["infer_words_per_s"], r["test_acc"], color="tab:blue")
        ax.annotate(MODELS[name].label, (r["infer_words_per_s"], r["test_acc"]),
                    textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("inference words/s (nlp.pipe, log scale)")
    ax.set_ylabel("EWT XPOS test accuracy (%)")
    ax.set_title("Accuracy against speed, UD English EWT XPOS")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def settings(args: argparse.Namespace) -> Dict[str, Any]:
    return {k: getattr(args, k) for k in SETTINGS}


def write(args: argparse.Namespace, model: str, run: Dict[str, Any]) -> None:
    """Merge one run into the result files (runs with the same settings are kept) and
    rewrite the JSON, Markdown and PNG."""
    packages = ("numpy", "torch", "thinc", "spacy", "spacy-transformers", "spacy-seqlab")
    with updated_results(args, "compare_ewt_xpos", settings(args), packages, to_markdown) as result:
        result["runs"][model] = run
        result["plot"] = f"{tagged('compare_ewt_xpos', args.tag)}.png"
        plot(result["runs"], Path(args.out) / result["plot"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--corpus", default=None,
                   help="dir with en_ewt-ud-{train,dev,test}.spacy (default: convert ../shared/data)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--trf-epochs", type=int, default=2)
    p.add_argument("--limit", type=int, default=0, help="first N docs of each split")
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--trf-threads", type=int, default=2)
    p.add_argument("--transformer", default=None,
                   help="model directory of the transformer (default: the offline MiniLM)")
    add_common_args(p, steps=0, blas_threads=1)
    p.set_defaults(eval_frequency=200)  # as bench_transformer.py, whose run trf_crf shares
    args = p.parse_args()
    args.transformer = args.transformer or minilm_dir()
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    corpus = prepare_corpus(args.corpus, work)
    args.corpus = str(corpus)
    forms = train_forms(corpus_file(corpus, "train"), args.limit)
    for model in args.models:
        try:
            run = run_model(model, corpus, forms, args, work)
        except SystemExit as e:  # a child failed: record it and go on
            print(f"    FAILED: {e}", flush=True)
            run = {"error": str(e), "finished": now()}
        write(args, model, run)


if __name__ == "__main__":
    main()
