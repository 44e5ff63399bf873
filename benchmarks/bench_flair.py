"""flair baseline for the architecture benchmark: flair's ``SequenceTagger`` (BiLSTM-CRF
with a character BiLSTM), trained offline from scratch (no pretrained embeddings) on the
same data as our spaCy models.

Runs in its OWN venv (the main .venv stays untouched). Setup, from the repo root:

    python3.11 -m venv benchmarks/work/flair-venv          # benchmarks/work/ is gitignored
    benchmarks/work/flair-venv/bin/pip install torch==2.13.0   # FIRST and alone (local CPU wheel)
    benchmarks/work/flair-venv/bin/pip install flair==0.15.1   # keeps torch 2.13.0+cpu
    benchmarks/work/flair-venv/bin/pip list | grep -E '^(torch|flair) '   # check torch unchanged

(about 30 s and 1.5 GB; `pip check` is clean. An unpinned torch pulls a multi-GB CUDA build.)

Model: ``StackedEmbeddings([CharacterEmbeddings(path_to_char_dict=<dictionary of the
training characters, saved to disk>), OneHotEmbeddings.from_corpus(corpus)])`` (char
embedding 25, char BiLSTM 25+25; word embedding 300, words seen >= 3 times in train) ->
``SequenceTagger(hidden_size=256, rnn_layers=1, use_rnn=True, use_crf=True)`` with flair's
default dropouts (locked 0.5, word 0.05) and reprojection. flair's default character
dictionary is downloaded at run time (no internet here), hence the local one.
Training: ``ModelTrainer.train(learning_rate=0.1, mini_batch_size=32, max_epochs=N,
embeddings_storage_mode="none")``, i.e. flair's standard recipe: plain SGD, anneal the
learning rate by 0.5 after 3 epochs without dev improvement, keep the best-on-dev model
(``best-model.pt``), which is the one scored on the TEST split.

Tasks and data (``--data``, default ``../shared/data`` beside the checkout):
  ewt_upos / ewt_xpos  UD English EWT conllu: FORM + UPOS / XPOS of the word lines
                       (multiword-token ranges ``N-M`` and empty nodes ``N.1`` skipped);
                       scored by token accuracy (and on OOV tokens: form not in train).
  conll03              CoNLL-2003 eng.train / eng.testa (dev) / eng.testb (test); the IOB1
                       NER column is converted to BIO (IOB2) here, ``-DOCSTART-`` skipped;
                       ``tag_format="BIO"``; scored by flair's exact-span micro F1 (+ per type).
The converted column files go to ``benchmarks/work/flair/<task>/`` (with ``--limit N``:
``.../<task>/limit<N>/``, the first N sentences of each split, for smoke runs).

Speed: train words/s = train tokens x epochs / the time spent in the training loop proper
(from flair's ``before_training_epoch`` to ``after_training_epoch`` hooks, i.e. without the
dev evaluation and checkpointing after each epoch, which are reported separately);
inference words/s = test tokens / wall time of ``model.predict(test, mini_batch_size=128)``
after a warm-up (best of ``--passes``). Model size = bytes of the saved ``best-model.pt``.

Run (with the flair venv's python, from the repo root):
    benchmarks/work/flair-venv/bin/python benchmarks/bench_flair.py --task ewt_upos \\
        --epochs 10 --threads 1                      # -> benchmarks/results/flair_ewt_upos.{json,md}
    benchmarks/work/flair-venv/bin/python benchmarks/bench_flair.py --task conll03 \\
        --epochs 1 --limit 300 --out benchmarks/work/flair_smoke.json    (smoke run)
"""
import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _env import RESULTS, WORK, header, write_results  # noqa: E402

Sentence_ = List[Tuple[str, str]]  # [(word, tag)]

TASKS: Dict[str, Dict[str, Any]] = {
    "ewt_upos": {"corpus": "ud_english_ewt", "tag_type": "upos", "col": 3, "metric": "accuracy"},
    "ewt_xpos": {"corpus": "ud_english_ewt", "tag_type": "pos", "col": 4, "metric": "accuracy"},
    "conll03": {"corpus": "conll2003", "tag_type": "ner", "metric": "span_f1"},
}
EWT_FILES = {"train": "en_ewt-ud-train.conllu", "dev": "en_ewt-ud-dev.conllu",
             "test": "en_ewt-ud-test.conllu"}
CONLL_FILES = {"train": "eng.train", "dev": "eng.testa", "test": "eng.testb"}
SPLITS = ("train", "dev", "test")


# --- data conversion -------------------------------------------------------------------
def read_conllu(path: Path, col: int) -> Iterator[Sentence_]:
    """(FORM, column ``col``) of the word lines; skips ``N-M`` ranges and ``N.M`` empty nodes."""
    sent: Sentence_ = []
    with open(path, encoding="utf8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if sent:
                    yield sent
                sent = []
                continue
            if line.startswith("#"):
                continue
            cols = line.split("\t")
            if "-" in cols[0] or "." in cols[0]:
                continue
            sent.append((cols[1], cols[col]))
    if sent:
        yield sent


def iob1_to_bio(tags: List[str]) -> List[str]:
    """IOB1 (I-X inside, B-X only between two adjacent X entities) -> BIO/IOB2 (every
    entity starts with B-). Per CoNLL rules an I-X starts an entity unless the previous
    token belongs to an X entity; a B-X always starts one."""
    out: List[str] = []
    prev = "O"
    for tag in tags:
        if tag == "O":
            out.append(tag)
        else:
            prefix, typ = tag.split("-", 1)
            if prefix not in ("B", "I"):
                raise ValueError(f"not an IOB1 tag: {tag!r}")
            if prefix == "B" or prev == "O" or prev.split("-", 1)[1] != typ:
                out.append(f"B-{typ}")
            else:
                out.append(f"I-{typ}")
        prev = tag
    return out


def read_conll03(path: Path) -> Iterator[Sentence_]:
    """(word, BIO NER tag) per sentence; ``-DOCSTART-`` lines and their blank line skipped."""
    words: List[str] = []
    tags: List[str] = []
    with open(path, encoding="utf8") as f:
        for line in f:
            cols = line.split()
            if not cols or cols[0] == "-DOCSTART-":
                if words:
                    yield list(zip(words, iob1_to_bio(tags)))
                words, tags = [], []
                continue
            words.append(cols[0])
            tags.append(cols[-1])
    if words:
        yield list(zip(words, iob1_to_bio(tags)))


def convert(task: str, data: Path, out_dir: Path, limit: int) -> Dict[str, Dict[str, int]]:
    """Write ``{train,dev,test}.txt`` (word TAB tag, blank line between sentences)."""
    spec = TASKS[task]
    out_dir.mkdir(parents=True, exist_ok=True)
    stats: Dict[str, Dict[str, int]] = {}
    for split in SPLITS:
        if spec["corpus"] == "ud_english_ewt":
            sents = read_conllu(data / "ud_english_ewt" / EWT_FILES[split], spec["col"])
        else:
            sents = read_conll03(data / "conll2003" / CONLL_FILES[split])
        n_sent = n_tok = 0
        tmp = out_dir / f"{split}.txt.tmp"
        with open(tmp, "w", encoding="utf8") as f:
            for sent in sents:
                if limit and n_sent >= limit:
                    break
                for word, tag in sent:
                    assert word and not any(c.isspace() for c in word), repr(word)
                    f.write(f"{word}\t{tag}\n")
                f.write("\n")
                n_sent += 1
                n_tok += len(sent)
        os.replace(tmp, out_dir / f"{split}.txt")
        stats[split] = {"sentences": n_sent, "tokens": n_tok}
    return stats


def build_char_dictionary(train_file: Path, out_path: Path):
    """flair ``Dictionary`` (with ``<unk>``) of every character of the training words."""
    from flair.data import Dictionary

    chars: Counter = Counter()
    with open(train_file, encoding="utf8") as f:
        for line in f:
            if line.strip():
                chars.update(line.split("\t", 1)[0])
    d = Dictionary(add_unk=True)
    for ch, _ in chars.most_common():
        d.add_item(ch)
    d.save(out_path)
    return len(d)


# --- main ----------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True, choices=sorted(TASKS))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--out", default=None, help="results JSON (default benchmarks/results/flair_<task>.json)")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--limit", type=int, default=0, help="first N sentences of each split (smoke runs)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--passes", type=int, default=3, help="timed inference passes (best is kept)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    # before torch is imported, so that OpenMP/MKL pools start with the right size too
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    t_start = time.perf_counter()
    load_before = os.getloadavg()

    import logging

    import torch

    torch.set_num_threads(args.threads)
    import flair
    from flair.data import Dictionary  # noqa: F401
    from flair.datasets import ColumnCorpus
    from flair.embeddings import CharacterEmbeddings, OneHotEmbeddings, StackedEmbeddings
    from flair.models import SequenceTagger
    from flair.trainers import ModelTrainer
    from flair.trainers.plugins import TrainerPlugin

    flair.device = torch.device("cpu")
    flair.set_seed(args.seed)
    spec = TASKS[args.task]
    tag_type = spec["tag_type"]

    work = Path(WORK) / "flair" / args.task
    if args.limit:
        work = work / f"limit{args.limit}"
    data_dir = work / "data"
    model_dir = work / "model"
    stats = convert(args.task, Path(args.data), data_dir, args.limit)
    n_chars = build_char_dictionary(data_dir / "train.txt", work / "char_dict.pkl")
    print(f"converted to {data_dir}: {stats}; {n_chars} chars", flush=True)

    corpus = ColumnCorpus(
        data_dir, {0: "text", 1: tag_type}, train_file="train.txt", dev_file="dev.txt",
        test_file="test.txt", column_delimiter="\t", sample_missing_splits=False,
    )
    assert len(corpus.train) == stats["train"]["sentences"], (len(corpus.train), stats)
    assert len(corpus.test) == stats["test"]["sentences"], (len(corpus.test), stats)
    label_dict = corpus.make_label_dictionary(label_type=tag_type, add_unk=False)

    # labels of dev/test never seen in train (none on the full corpora; possible with
    # --limit) are added so that the dev loss can be computed; the model never learns them
    extra = sorted({t.get_label(tag_type).value for split in (corpus.dev, corpus.test)
                    for s in split for t in s} - set(label_dict.get_items()) - {"O"}) \
        if tag_type != "ner" else []
    for lab in extra:
        label_dict.add_item(lab)
    labels = list(label_dict.get_items())  # (the tagger adds <START>/<STOP> to this dict)
    # OneHotEmbeddings logs its whole vocabulary (a list) at INFO on each build/load: drop it
    logging.getLogger("flair").addFilter(lambda rec: not isinstance(rec.msg, list))
    word_emb = OneHotEmbeddings.from_corpus(corpus)  # field="text", min_freq=3, dim 300
    char_emb = CharacterEmbeddings(path_to_char_dict=str(work / "char_dict.pkl"))
    embeddings = StackedEmbeddings([char_emb, word_emb])
    tagger_kw: Dict[str, Any] = {"hidden_size": 256, "use_crf": True, "use_rnn": True,
                                 "rnn_layers": 1, "tag_type": tag_type}
    if tag_type == "ner":
        tagger_kw["tag_format"] = "BIO"
    model = SequenceTagger(embeddings=embeddings, tag_dictionary=label_dict, **tagger_kw)
    n_params = sum(p.numel() for p in model.parameters())

    class EpochTimer(TrainerPlugin):
        """Times the training loop of each epoch (without the dev evaluation)."""

        def __init__(self) -> None:
            super().__init__()
            self.epochs: List[Dict[str, Any]] = []
            self._t0 = self._t1 = 0.0

        @TrainerPlugin.hook
        def before_training_epoch(self, epoch, **kw):
            self._t0 = time.perf_counter()

        @TrainerPlugin.hook
        def after_training_epoch(self, epoch, **kw):
            self._t1 = time.perf_counter()
            self.epochs.append({"epoch": epoch, "train_s": round(self._t1 - self._t0, 2),
                                "lr": self.trainer.optimizer.param_groups[0]["lr"]})
            print(f"[bench_flair] epoch {epoch} train loop {self._t1 - self._t0:.1f} s", flush=True)

        @TrainerPlugin.hook
        def after_evaluation(self, epoch, current_model_is_best, validation_scores, **kw):
            rec = self.epochs[-1]
            rec["dev_eval_s"] = round(time.perf_counter() - self._t1, 2)
            rec["dev_score"] = float(validation_scores[0]) if validation_scores else None
            rec["best_so_far"] = bool(current_model_is_best)

    timer = EpochTimer()
    train_params = {"learning_rate": 0.1, "mini_batch_size": 32, "max_epochs": args.epochs,
                    "embeddings_storage_mode": "none", "optimizer": "SGD (flair default)",
                    "anneal_factor": 0.5, "patience": 3, "eval_batch_size": 64,
                    "model_selection": "best dev micro-F1 (best-model.pt)"}
    trainer = ModelTrainer(model, corpus)
    t0 = time.perf_counter()
    trainer.train(model_dir, learning_rate=0.1, mini_batch_size=32, max_epochs=args.epochs,
                  embeddings_storage_mode="none", plugins=[timer])
    train_wall = time.perf_counter() - t0
    train_loop_s = sum(e["train_s"] for e in timer.epochs)
    epochs_done = len(timer.epochs)

    # --- evaluation on TEST with the best-on-dev model (the trainer has loaded it) ---------
    model_file = model_dir / "best-model.pt"
    if not model_file.exists():
        model_file = model_dir / "final-model.pt"
    model = SequenceTagger.load(model_file)
    model.eval()
    test = list(corpus.test)
    n_test_tok = sum(len(s) for s in test)
    res = model.evaluate(test, gold_label_type=tag_type, mini_batch_size=128, return_loss=False)
    scores: Dict[str, Any] = {"flair_main_score_micro_f1": res.main_score}

    # inference speed: warm-up, then best of --passes over the whole test set
    model.predict(test[:128], mini_batch_size=128, label_name="predicted")
    pass_s: List[float] = []
    for _ in range(args.passes):
        t0 = time.perf_counter()
        model.predict(test, mini_batch_size=128, label_name="predicted")
        pass_s.append(time.perf_counter() - t0)

    if spec["metric"] == "accuracy":
        train_forms = set()
        for s in corpus.train:
            train_forms.update(t.text for t in s)
        ok = n = oov_ok = oov_n = 0
        for s in test:
            for t in s:
                hit = t.get_label(tag_type).value == t.get_label("predicted").value
                ok += hit
                n += 1
                if t.text not in train_forms:
                    oov_ok += hit
                    oov_n += 1
        scores.update({
            "accuracy": ok / n,
            "oov_accuracy": oov_ok / oov_n if oov_n else None,
            "oov_tokens": oov_n,
            "oov_definition": "test token whose exact form never occurs in the training split",
        })
        headline = f"accuracy {100 * ok / n:.2f} (OOV {100 * scores['oov_accuracy']:.2f}, {oov_n} tokens)"
    else:
        rep = res.classification_report
        scores["span_f1_micro"] = rep["micro avg"]["f1-score"]
        scores["span_precision_micro"] = rep["micro avg"]["precision"]
        scores["span_recall_micro"] = rep["micro avg"]["recall"]
        scores["per_type"] = {
            k: {m: v[m] for m in ("precision", "recall", "f1-score", "support")}
            for k, v in rep.items() if isinstance(v, dict) and k not in (
                "micro avg", "macro avg", "weighted avg", "samples avg")
        }
        headline = f"span micro F1 {100 * scores['span_f1_micro']:.2f}"

    n_train_tok = stats["train"]["tokens"]
    result: Dict[str, Any] = {
        "benchmark": "flair SequenceTagger baseline (BiLSTM-CRF + char BiLSTM, no pretrained embeddings)",
        **header("flair", "torch", "numpy", "scikit-learn"),
        "task": args.task,
        "threads": {"torch.set_num_threads": args.threads,
                    "torch.get_num_threads": torch.get_num_threads(),
                    "torch.get_num_interop_threads": torch.get_num_interop_threads()},
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "data": {"dir": str(data_dir), "source": args.data, "limit": args.limit, "splits": stats,
                 "tag_type": tag_type, "labels": labels, "labels_not_in_train": extra,
                 "tagger_labels": model.label_dictionary.get_items()},
        "model": {
            "embeddings": {
                "CharacterEmbeddings": {"char_dict": str(work / "char_dict.pkl"),
                                        "chars_incl_unk": n_chars,
                                        "char_embedding_dim": 25, "hidden_size_char": 25},
                "OneHotEmbeddings.from_corpus": {"field": "text", "min_freq": 3,
                                                 "embedding_length": 300,
                                                 "vocab_size": len(word_emb.vocab_dictionary)},
            },
            "SequenceTagger": {**tagger_kw, "tag_format": tagger_kw.get("tag_format", "BIOES (unused: token labels)"),
                               "dropout": 0.0, "word_dropout": 0.05, "locked_dropout": 0.5,
                               "reproject_embeddings": True},
            "parameters": n_params,
            "file": str(model_file),
            "size_bytes": model_file.stat().st_size,
        },
        "training": {**train_params, "seed": args.seed, "epochs_requested": args.epochs,
                     "epochs_done": epochs_done, "train_tokens": n_train_tok,
                     "train_loop_s": round(train_loop_s, 2), "train_wall_s_incl_dev_eval": round(train_wall, 2),
                     "train_words_per_s": round(n_train_tok * epochs_done / train_loop_s, 1),
                     "train_words_per_s_incl_dev_eval": round(n_train_tok * epochs_done / train_wall, 1),
                     "per_epoch": timer.epochs},
        "inference": {"test_sentences": len(test), "test_tokens": n_test_tok, "mini_batch_size": 128,
                      "warmup": "predict on the first 128 test sentences",
                      "pass_s": [round(x, 3) for x in pass_s],
                      "words_per_s": round(n_test_tok / min(pass_s), 1)},
        "test": scores,
        "total_wall_s": round(time.perf_counter() - t_start, 1),
    }
    md = [f"## flair {result['versions']['flair']} SequenceTagger baseline: {args.task}", "",
          f"{result['date']}, {result['machine']['cpu_model']}, torch threads {args.threads}, "
          f"torch {result['versions']['torch']}, {epochs_done} epochs, seed {args.seed}"
          + (f", LIMIT {args.limit} sentences/split" if args.limit else ""), "",
          "| test score | train words/s | infer words/s | s/epoch (train loop) | model MB | params |",
          "|---|---:|---:|---:|---:|---:|",
          f"| {headline} | {result['training']['train_words_per_s']:,.0f} | "
          f"{result['inference']['words_per_s']:,.0f} | {train_loop_s / max(1, epochs_done):.0f} | "
          f"{model_file.stat().st_size / 1e6:.1f} | {n_params:,} |"]
    if spec["metric"] == "span_f1":
        md += ["", "| type | P | R | F1 | support |", "|---|---:|---:|---:|---:|"]
        for k, v in sorted(scores["per_type"].items()):
            md.append(f"| {k} | {100 * v['precision']:.2f} | {100 * v['recall']:.2f} | "
                      f"{100 * v['f1-score']:.2f} | {v['support']} |")
    out = Path(args.out) if args.out else Path(RESULTS) / f"flair_{args.task}.json"
    stem = out.name[:-5] if out.name.endswith(".json") else out.name
    write_results(str(out.parent.resolve()), stem, result, "\n".join(md))


if __name__ == "__main__":
    main()
