"""crf_tagger against spaCy's own ``tagger`` on UD English EWT: accuracy and speed.

Both pipelines are spaCy's ``init config -p tagger -o efficiency`` config (a tok2vec
component with MultiHashEmbed + MaxoutWindowEncoder, listened to by the head); only the
head differs: spaCy's ``tagger`` (softmax) or ``crf_tagger`` (linear-chain CRF, from
``configs/ewt_xpos_crf.cfg``). Same corpus, seed, batcher, optimizer and step budget.

For each attribute (``--attrs tag pos``) and each model this script, in fresh
subprocesses:
  1. trains for ``--steps`` updates with spaCy's own training loop
     (``spacy.training.loop.train_while_improving``, what ``spacy train`` runs), counting
     the words of every batch it draws and timing the loop with the dev evaluations
     (every ``--eval-frequency`` steps) subtracted: train words/s = words / that time;
  2. loads ``model-last`` and scores the test set with gold tokenization
     (``nlp.evaluate`` on ``Example(Doc(words, spaces), reference)``);
  3. times ``nlp.pipe`` over fresh pre-tokenized test Docs (``--batch-size`` 256, best of
     ``--passes``) and records the peak RSS of that process (``ru_maxrss``).

UPOS: ``crf_tagger`` is trained with ``attr = "pos"`` and scored with ``pos_acc``.
spaCy's ``tagger`` only writes ``token.tag_``, so for UPOS it is trained and tested on
a copy of the corpus whose TAG column holds the UPOS labels, and scored with
``tag_acc``; both numbers are UPOS accuracy over the same tokens.

Run:  .venv/bin/python benchmarks/bench_tagger.py --steps 4000 --attrs tag pos
      .venv/bin/python benchmarks/bench_tagger.py --steps 300 --attrs tag   (smoke run)
Writes benchmarks/results/tagger_ewt.json and benchmarks/results/tagger_ewt.md (with
``--tag NAME``: tagger_ewt_NAME.*); models and logs go to benchmarks/work/.
"""
import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _env import corpus_file, write_results  # noqa: E402
from _spacy_runs import (  # noqa: E402
    config_difference_lines,
    ROOT, SHARED_DATA, add_common_args, make_configs, make_spec, markdown_intro,
    run_info, speed_ratios, train_and_infer,
)

DATA = SHARED_DATA / "ud_english_ewt"  # ../shared/data beside the checkout
SPLITS = ("train", "dev", "test")
CRF_CONFIG = ROOT / "configs" / "ewt_xpos_crf.cfg"
TARGETS = {"xpos_acc_gain_points": 0.2, "infer_ratio": 0.95, "train_ratio": 0.85}
HEADS = {"spacy_tagger": "tagger", "crf_tagger": "crf_tagger"}


# --- data and configs ---------------------------------------------------------------
def prepare_corpus(corpus: Optional[str], work: Path) -> Path:
    """The .spacy corpus: ``--corpus`` if given, else ``spacy convert -c conllu -n 10``."""
    if corpus:
        path = Path(corpus)
        missing = [s for s in SPLITS if not corpus_file(path, s).exists()]
        if missing:
            sys.exit(f"--corpus {path} lacks en_ewt-ud-{{{','.join(missing)}}}.spacy")
        return path
    path = work / "corpus"
    path.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        if not corpus_file(path, split).exists():
            src = DATA / f"en_ewt-ud-{split}.conllu"
            subprocess.run(
                [sys.executable, "-m", "spacy", "convert", "-c", "conllu", "-n", "10",
                 str(src), str(path)],
                check=True,
            )
    return path


def upos_as_tag_corpus(corpus: Path, work: Path) -> Path:
    """A copy of the corpus with ``token.tag_ = token.pos_`` (for spaCy's tagger)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from upos_as_tag import upos_as_tag

    out = work / "corpus_upos_as_tag"
    for split in SPLITS:
        target = corpus_file(out, split)
        if target.exists() and target.stat().st_mtime >= corpus_file(corpus, split).stat().st_mtime:
            continue
        upos_as_tag(corpus_file(corpus, split), target)
    return out


def run_spec(model: str, attr: str, corpus: Path, upos_corpus: Path, configs: Dict,
             args: argparse.Namespace, work: Path) -> Dict[str, Any]:
    """Paths, overrides and score key of one (model, attr) run."""
    data = corpus
    overrides: Dict[str, Any] = {}
    if model == "spacy_tagger":
        if attr == "pos":
            data = upos_corpus
        score_key = "tag_acc"
        overrides["training.score_weights"] = {"tag_acc": 1.0}
    else:
        score_key = f"{attr}_acc"
        overrides["components.crf_tagger.attr"] = attr
        overrides["training.score_weights"] = {score_key: 1.0}
    return make_spec(
        model, f"{attr} {model}", configs[model], corpus_file(data, "train"),
        corpus_file(data, "dev"), corpus_file(data, "test"),
        work / "runs" / f"{attr}_{model}_{args.steps}", args, overrides,
        attr=attr, score_key=score_key,
    )


# --- report -------------------------------------------------------------------------
def summarize(runs: Dict[str, Dict[str, Dict[str, Any]]]) -> Dict[str, Any]:
    ratios: Dict[str, Any] = {}
    for attr, models in runs.items():
        if not {"spacy_tagger", "crf_tagger"} <= set(models):
            continue
        s, c = models["spacy_tagger"], models["crf_tagger"]
        r = {"acc_diff_points": c["test_acc"] - s["test_acc"], **speed_ratios(c, s)}
        met = {
            "infer_ratio": r["infer_words_per_s"] >= TARGETS["infer_ratio"],
            "train_ratio": r["train_words_per_s"] >= TARGETS["train_ratio"],
        }
        if attr == "tag":
            met["xpos_acc_gain_points"] = r["acc_diff_points"] >= TARGETS["xpos_acc_gain_points"]
        r["targets_met"] = met
        ratios[attr] = r
    return ratios


def to_markdown(result: Dict[str, Any]) -> str:
    names = {"tag": "XPOS (token.tag_)", "pos": "UPOS"}
    m = result["machine"]
    lines = [
        "# crf_tagger vs spaCy tagger on UD English EWT",
        "",
        *markdown_intro(result, "tagger"),
        "",
        "| task | model | test acc | train words/s | infer words/s | peak RSS (MB) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for attr, models in result["runs"].items():
        for model in ("spacy_tagger", "crf_tagger"):
            if model not in models:
                continue
            r = models[model]
            lines.append(
                f"| {names[attr]} | {model} ({r['score_key']}) | {r['test_acc']:.2f} | "
                f"{r['train_words_per_s']:,.0f} | {r['infer_words_per_s']:,.0f} | "
                f"{r['peak_rss_mb']:.0f} |"
            )
        if attr in result["ratios"]:
            q = result["ratios"][attr]
            lines.append(
                f"| {names[attr]} | **crf / spaCy** | {q['acc_diff_points']:+.2f} pts | "
                f"{q['train_words_per_s']:.2f}x | {q['infer_words_per_s']:.2f}x | "
                f"{q['peak_rss']:.2f}x |"
            )
    lines += [
        "",
        f"Targets: XPOS accuracy >= +{TARGETS['xpos_acc_gain_points']} points, inference "
        f">= {TARGETS['infer_ratio']}x, training >= {TARGETS['train_ratio']}x spaCy's "
        "words/s. Met: "
        + "; ".join(
            f"{attr}: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in q["targets_met"].items())
            for attr, q in result["ratios"].items()
        ) + ".",
        "",
        "UPOS with spaCy's `tagger`: trained and tested on a copy of the corpus whose TAG "
        "column holds the UPOS labels (spaCy's tagger writes only `token.tag_`), scored "
        "with `tag_acc`; `crf_tagger` uses `attr = \"pos\"` and `pos_acc`.",
        "",
        "Machine load (1-min load average before each subprocess; the machine has "
        f"{m['nproc']} cores, other jobs distort speed figures): "
        + ", ".join(
            f"{attr}/{model} train {r['train_loadavg_before']:.1f}, infer {r['infer_loadavg_before']:.1f}"
            for attr, models in result["runs"].items() for model, r in models.items()
        ) + ".",
    ]
    lines += config_difference_lines(result["configs"])
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--attrs", nargs="+", default=["tag", "pos"], choices=["tag", "pos"])
    p.add_argument("--models", nargs="+", default=["spacy_tagger", "crf_tagger"],
                   choices=["spacy_tagger", "crf_tagger"])
    p.add_argument("--corpus", help="dir with en_ewt-ud-{train,dev,test}.spacy "
                   "(default: convert the CoNLL-U into benchmarks/work/corpus)")
    p.add_argument("--crf-config", default=str(CRF_CONFIG))
    add_common_args(p, steps=4000, blas_threads=0)
    args = p.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = work / f"tagger_{args.steps}{'_' + args.tag if args.tag else ''}.log"
    corpus = prepare_corpus(args.corpus, work)
    upos_corpus = upos_as_tag_corpus(corpus, work) if "pos" in args.attrs else corpus
    configs = make_configs(work / "configs", "tagger", Path(args.crf_config), HEADS,
                           "spacy_tagger", "crf_tagger")
    if not configs["identical_except_head"]:
        print("WARNING: configs differ besides the head:\n  " + "\n  ".join(configs["differences"]))

    runs: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for attr in args.attrs:
        for model in args.models:
            spec = run_spec(model, attr, corpus, upos_corpus, configs, args, work)
            record, inf = train_and_infer(
                spec, log, args.steps,
                lambda r: f"{spec['score_key']} {r['scores'][spec['score_key']] * 100:.2f}",
            )
            runs.setdefault(attr, {})[model] = {
                "score_key": spec["score_key"],
                "test_acc": inf["scores"][spec["score_key"]] * 100,
                **record,
            }

    result = {
        **run_info(args),
        "corpus": str(corpus),
        "configs": configs,
        "targets": TARGETS,
        "runs": runs,
        "ratios": summarize(runs),
    }
    suffix = f"_{args.tag}" if args.tag else ""
    write_results(args.out, f"tagger_ewt{suffix}", result, to_markdown(result))


if __name__ == "__main__":
    main()
