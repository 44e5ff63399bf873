"""The accuracy options of the vectors configs, chosen on dev (never on test).

Each variant is the config of ``bench_vectors.py`` (``configs/{TASK}_vectors_{ARCH}.cfg``)
with overrides that state the whole training recipe it tries (so a variant means the same
before and after a config adopts a winner), trained with the same steps and seed by the
same runner. Reported: the best dev score (what ``model-best`` keeps), the dev score at
the last step (what ``model-last`` would keep; best - last is what model-best selection
bought), and each variant's gain over the baseline on dev. Test scores are recorded by
the runner but not shown: options are kept or dropped on dev alone.

Variants (dropout 0.1 and Adam at a constant 0.001 unless named):
  baseline          the configs as first written
  dropout_0.2       training.dropout 0.2 (the embedding Maxout, encoder and head dropout)
  lr_warmup_linear  Adam's rate warms up for 250 steps to 0.002, then falls linearly to 0
                    at the last step (warmup_linear.v1): kept, the CNN configs use it now
  width_256_depth_8 the CNN encoder of spaCy's accuracy tier (``spacy init config -o
                    accuracy``: width 256, depth 8) instead of the efficiency one (96, 4)

Run:  nice -n 5 .venv/bin/python benchmarks/ablate_vectors.py --runs ewt_xpos:crf conll03:crf \\
          --variants baseline dropout_0.2 lr_warmup_linear --steps 4000 --eval-frequency 500
Results: ``benchmarks/results/vectors_ablation.{json,md}`` (merged under a lock).
"""
import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _env import blas_info, locked_runs, machine, markdown_header, now, versions, write_results  # noqa: E402
from bench_vectors import add_run_args, corpus_dir, run_one, runs_to_do  # noqa: E402

STEM = "vectors_ablation"
CONSTANT_LR = {"training.optimizer.learn_rate": 0.001}
VARIANTS: Dict[str, Callable[[int], Dict[str, Any]]] = {
    "baseline": lambda steps: dict(CONSTANT_LR),
    "dropout_0.2": lambda steps: {**CONSTANT_LR, "training.dropout": 0.2},
    "lr_warmup_linear": lambda steps: {"training.optimizer.learn_rate": {
        "@schedules": "warmup_linear.v1", "warmup_steps": 250, "total_steps": steps,
        "initial_rate": 0.002}},
    "width_256_depth_8": lambda steps: {**CONSTANT_LR, "components.tok2vec.model.encode.width": 256,
                                        "components.tok2vec.model.encode.depth": 8},
}


def summary(run: Dict[str, Any]) -> Dict[str, Any]:
    """The dev figures of a finished run (scores in points)."""
    curve = run["dev_curve"]
    return {"task": run["task"], "arch": run["arch"], "variant": run["variant"],
            "seed": run["seed"], "steps": run["steps"], "overrides": run["overrides"],
            "best_dev": run["best_dev"] * 100, "last_dev": curve[-1][1] * 100,
            "best_step": max(curve, key=lambda p: p[1])[0], "dev_curve": curve,
            "train_loadavg_before": run.get("train_loadavg_before"), "finished": run["finished"]}


def to_markdown(result: Dict[str, Any]) -> str:
    lines = ["# Accuracy options of the vectors configs, on dev", "",
             markdown_header(result), "",
             "Same config, steps and seed per task; each variant overrides the config as named. "
             "best dev: the `model-best` score; last dev: the score at the last step "
             "(`model-last`); gain: best dev minus the baseline's. Test scores are not used.", "",
             "| task | arch | variant | seed | steps | best dev (step) | last dev | best - last | gain |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    runs = result["runs"]
    for key in sorted(runs):
        r = runs[key]
        base = runs.get(f"{r['task']}:{r['arch']}:baseline:seed{r['seed']}:s{r['steps']}")
        gain = f"{r['best_dev'] - base['best_dev']:+.2f}" if base else "-"
        lines.append(f"| {r['task']} | {r['arch']} | {r['variant']} | {r['seed']} | {r['steps']} | "
                     f"{r['best_dev']:.2f} ({r['best_step']}) | {r['last_dev']:.2f} | "
                     f"{r['best_dev'] - r['last_dev']:+.2f} | {gain} |")
    return "\n".join(lines)


def write(args: argparse.Namespace, new: Dict[str, Dict[str, Any]]) -> None:
    with locked_runs(args.out, args.work, STEM, {"stem": STEM}) as runs:
        runs.update(new)
        result = {"date": now(), "versions": versions("numpy", "torch", "thinc", "spacy", "spacy-seqlab"),
                  "machine": machine(), "loadavg": os.getloadavg(), "parent_threads": blas_info(),
                  "settings": {"stem": STEM}, "runs": dict(runs)}
        write_results(args.out, STEM, result, to_markdown(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    add_run_args(p, steps=4000)
    args = p.parse_args()
    args.reuse = True  # a finished training with the same settings is evaluated, not redone
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    todo = runs_to_do(p, args)
    for seed in args.seeds:
        for task, arch in todo:
            corpus = corpus_dir(task, work)
            for variant in args.variants:
                run = run_one(task, arch, seed, corpus, args, work, variant, VARIANTS[variant](args.steps))
                write(args, {f"{task}:{arch}:{variant}:seed{seed}:s{args.steps}": summary(run)})


if __name__ == "__main__":
    main()
