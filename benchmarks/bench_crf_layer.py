"""The CRF layer alone: spacy_seqlab's numpy CRF against pytorch-crf on CPU.

Measures, on random float32 emissions (batch 64, length 40, 50 labels by default):
  (a) NLL + gradient: ours ``spacy_seqlab.layers.crf.crf_loss`` with one-hot ``allowed``
      masks (what training runs); pytorch-crf ``-CRF.forward(...)`` then ``.backward()``;
  (b) Viterbi: ours ``spacy_seqlab.crf.viterbi``; pytorch-crf ``CRF.decode``;
  (c) for reference, ours ``crf_decode`` (Viterbi + marginals for confidences, what the
      component's ``predict`` runs).
Both CRFs get the same transitions/start/end, and the script checks that they give the
same log-likelihood, gradient and Viterbi paths. Timing: warm-up, then the median over
``--reps`` runs. torch gets as many threads as numpy's BLAS uses.

Run:  .venv/bin/python benchmarks/bench_crf_layer.py
Writes benchmarks/results/crf_layer.json and benchmarks/results/crf_layer.md, and its
speedups as the "crf_layer" targets of benchmarks/results/crf_core.json (unless --tag).
"""
import argparse
import os
import sys
from typing import Any, Dict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy  # noqa: E402
import torch  # noqa: E402
from thinc.api import NumpyOps  # noqa: E402
from torchcrf import CRF as TorchCRF  # noqa: E402

from _crf_core import record  # noqa: E402
from _env import (  # noqa: E402
    RESULTS, blas_info, header, set_blas_threads, time_interleaved, wait_idle, write_results,
)
from spacy_seqlab.crf import ChainPotentials, forward_backward, sequence_scores, viterbi  # noqa: E402
from spacy_seqlab.layers.crf import CRFScores, crf_decode, crf_loss  # noqa: E402

TARGETS = {"nll_grad": 10.0, "viterbi": 3.0}


def make_case(B: int, T: int, L: int, ragged: bool, seed: int) -> Dict[str, Any]:
    rng = numpy.random.default_rng(seed)
    emissions = rng.standard_normal((B, T, L)).astype("float32")
    if ragged:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[0] = T
    else:
        lengths = numpy.full(B, T)
    lengths = lengths.astype("int32")
    gold = rng.integers(0, L, size=(B, T)).astype("int64")
    # pytorch-crf's own initialisation: uniform(-0.1, 0.1)
    transitions = rng.uniform(-0.1, 0.1, size=(L, L)).astype("float32")
    start = rng.uniform(-0.1, 0.1, size=L).astype("float32")
    end = rng.uniform(-0.1, 0.1, size=L).astype("float32")
    eye = numpy.eye(L, dtype=bool)
    allowed = [eye[gold[i, : lengths[i]]] for i in range(B)]
    return dict(
        emissions=emissions, lengths=lengths, gold=gold, transitions=transitions,
        start=start, end=end, allowed=allowed, B=B, T=T, L=L,
    )


def run_case(case: Dict[str, Any], reps: int, warmup: int) -> Dict[str, Any]:
    ops = NumpyOps()
    B, T, L = case["B"], case["T"], case["L"]
    E, lengths, gold = case["emissions"], case["lengths"], case["gold"]
    pots = ChainPotentials(case["transitions"], case["start"], case["end"])
    scores = CRFScores(ops.asarray3f(E), ops.asarray1i(lengths), pots)

    crf = TorchCRF(L, batch_first=True)
    with torch.no_grad():
        crf.transitions.copy_(torch.from_numpy(case["transitions"]))
        crf.start_transitions.copy_(torch.from_numpy(case["start"]))
        crf.end_transitions.copy_(torch.from_numpy(case["end"]))
    t_emissions = torch.from_numpy(E.copy()).requires_grad_(True)
    t_tags = torch.from_numpy(gold)
    t_mask = torch.from_numpy(numpy.arange(T)[None, :] < lengths[:, None])

    # --- correctness ----------------------------------------------------------
    xp = numpy
    marg = forward_backward(xp, E, lengths, pots)
    gold_score = sequence_scores(
        xp, E.astype("float64"), lengths.astype("int64"), gold, pots
    )
    ours_ll = -(marg.log_z - gold_score)
    theirs_ll = crf(t_emissions, t_tags, t_mask, reduction="none").detach().double().numpy()
    ours_loss, ours_grad = crf_loss(ops, scores, case["allowed"])
    t_emissions.grad = None
    crf.zero_grad()
    (-crf(t_emissions, t_tags, t_mask, reduction="sum")).backward()
    theirs_grad = t_emissions.grad.numpy()
    valid = (numpy.arange(T)[None, :] < lengths[:, None])[..., None]
    grad_diff = float(numpy.abs((ours_grad.emissions - theirs_grad) * valid).max())
    trans_diff = float(numpy.abs(ours_grad.transitions - crf.transitions.grad.numpy()).max())
    ours_paths, _ = viterbi(xp, E, lengths, pots)
    with torch.no_grad():
        theirs_paths = crf.decode(t_emissions.detach(), t_mask)
    same_paths = sum(
        list(ours_paths[i, : lengths[i]]) == list(theirs_paths[i]) for i in range(B)
    )
    checks = {
        "loglik_max_abs_diff": float(numpy.abs(ours_ll - theirs_ll).max()),
        "loglik_max_rel_diff": float(
            (numpy.abs(ours_ll - theirs_ll) / numpy.abs(theirs_ll)).max()
        ),
        "loss_ours": float(ours_loss),
        "loss_pytorch_crf": float(-theirs_ll.sum()),
        "d_emissions_max_abs_diff": grad_diff,
        "d_transitions_max_abs_diff": trans_diff,
        "viterbi_same_paths": f"{same_paths}/{B}",
    }
    checks["loglik_match"] = bool(checks["loglik_max_rel_diff"] < 1e-4)
    checks["gradient_match"] = bool(grad_diff < 1e-4 and trans_diff < 1e-3)
    checks["viterbi_match"] = same_paths == B

    # --- timing ---------------------------------------------------------------
    def ours_nll():
        crf_loss(ops, scores, case["allowed"])

    def theirs_nll():
        t_emissions.grad = None
        crf.zero_grad(set_to_none=True)
        (-crf(t_emissions, t_tags, t_mask, reduction="sum")).backward()

    def ours_vit():
        viterbi(xp, scores.emissions, scores.lengths, pots)

    def theirs_vit():
        with torch.no_grad():
            crf.decode(t_emissions, t_mask)

    def ours_decode():
        crf_decode(ops, scores)

    nll = time_interleaved({"ours": ours_nll, "pytorch_crf": theirs_nll}, reps, warmup)
    vit = time_interleaved({"ours": ours_vit, "pytorch_crf": theirs_vit}, reps, warmup)
    dec = time_interleaved({"ours": ours_decode}, reps, warmup)
    timing = {"nll_grad": nll, "viterbi": vit, "crf_decode_viterbi_plus_marginals": dec}
    speedup = {
        k: timing[k]["pytorch_crf"]["median_ms"] / timing[k]["ours"]["median_ms"]
        for k in ("nll_grad", "viterbi")
    }
    speedup_min = {
        k: timing[k]["pytorch_crf"]["min_ms"] / timing[k]["ours"]["min_ms"]
        for k in ("nll_grad", "viterbi")
    }
    return {
        "shape": {"batch": B, "length": T, "n_labels": L,
                  "lengths": "ragged U[1,T]" if case["ragged"] else "all T",
                  "tokens": int(lengths.sum())},
        "checks": checks,
        "timing": timing,
        "speedup_pytorch_crf_over_ours": speedup,
        "speedup_on_min_times": speedup_min,
        # met only if both the median and the min speedups reach the target
        "targets_met": {
            k: bool(min(speedup[k], speedup_min[k]) >= TARGETS[k]) for k in TARGETS
        },
    }


def to_markdown(result: Dict[str, Any]) -> str:
    lines = [
        "# CRF layer: spacy_seqlab (numpy) vs pytorch-crf (CPU)",
        "",
        f"Date {result['date']}; {result['machine']['cpu_model']}, "
        f"{result['machine']['nproc']} cores; numpy BLAS threads "
        f"{result['threads']['numpy_blas_threads']}, torch threads "
        f"{result['threads']['torch_threads']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items())
        + ".",
        "",
        f"Median (and min) of {result['reps']} runs after {result['warmup']} warm-up runs, "
        "in 3 blocks alternating between the two CRFs; random "
        "float32 emissions, one-hot gold (fully labeled). Targets: NLL+grad >= "
        f"{TARGETS['nll_grad']:.0f}x, Viterbi >= {TARGETS['viterbi']:.0f}x. "
        f"1-min load average before/after: {result['loadavg_before'][0]:.1f} / "
        f"{result['loadavg_after'][0]:.1f} (other processes on the "
        f"{result['machine']['nproc']} cores slow both sides).",
        "",
    ]
    if max(result["loadavg_before"][0], result["loadavg_after"][0]) > 1.0:
        lines += [
            f"**Machine busy** (load average above 1 on {result['machine']['nproc']} cores): "
            "multi-threaded BLAS/OpenMP calls stall while another process holds a core, so "
            "the median of a side using more than one thread is unreliable; compare the "
            "min times, or a run with `--threads 1`.",
            "",
        ]
    for case in result["cases"]:
        s = case["shape"]
        t = case["timing"]
        c = case["checks"]
        lines += [
            f"## batch {s['batch']}, length {s['length']} ({s['lengths']}), "
            f"{s['n_labels']} labels",
            "",
            "| operation | spacy_seqlab median (min) ms | pytorch-crf median (min) ms "
            "| speedup (on min) | target met |",
            "| --- | ---: | ---: | ---: | :---: |",
        ]
        for key, name in (("nll_grad", "NLL + gradient"), ("viterbi", "Viterbi")):
            lines.append(
                f"| {name} | {t[key]['ours']['median_ms']:.2f} ({t[key]['ours']['min_ms']:.2f}) | "
                f"{t[key]['pytorch_crf']['median_ms']:.2f} ({t[key]['pytorch_crf']['min_ms']:.2f}) | "
                f"{case['speedup_pytorch_crf_over_ours'][key]:.1f}x "
                f"({case['speedup_on_min_times'][key]:.1f}x) | "
                f"{'yes' if case['targets_met'][key] else 'no'} |"
            )
        d = t["crf_decode_viterbi_plus_marginals"]["ours"]
        lines += [
            f"| crf_decode (Viterbi + marginals, component predict) | "
            f"{d['median_ms']:.2f} ({d['min_ms']:.2f}) | | | |",
            "",
            f"Agreement: log-likelihood max abs diff {c['loglik_max_abs_diff']:.2e} "
            f"(rel {c['loglik_max_rel_diff']:.1e}); d emissions max abs diff "
            f"{c['d_emissions_max_abs_diff']:.1e}; d transitions max abs diff "
            f"{c['d_transitions_max_abs_diff']:.1e}; same Viterbi paths "
            f"{c['viterbi_same_paths']}.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--length", type=int, default=40)
    p.add_argument("--labels", type=int, default=50)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-ragged", action="store_true", help="skip the ragged-lengths case")
    p.add_argument("--threads", type=int, default=0,
                   help="set numpy's BLAS and torch to N threads at run time (default: "
                   "torch gets numpy's BLAS thread count, the environment decides that)")
    p.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                   help="first wait up to SECONDS for the 1-min load average to drop below 0.5")
    p.add_argument("--tag", default="", help="suffix of the result files")
    p.add_argument("--out", default=RESULTS)
    args = p.parse_args()

    idle = wait_idle(args.wait_idle) if args.wait_idle else None
    if args.threads:
        if not set_blas_threads(args.threads):
            sys.exit("cannot set numpy's BLAS threads (no threadpoolctl, no bundled OpenBLAS)")
    threads = blas_info()
    threads["set_at_run_time"] = args.threads or None
    n_threads = threads.get("numpy_blas_threads") or len(os.sched_getaffinity(0))
    torch.set_num_threads(n_threads)
    threads["torch_threads"] = torch.get_num_threads()

    load_before = os.getloadavg()
    cases = []
    for ragged in ([False] if args.no_ragged else [False, True]):
        case = make_case(args.batch, args.length, args.labels, ragged, args.seed)
        case["ragged"] = ragged
        cases.append(run_case(case, args.reps, args.warmup))

    result = {
        **header("numpy", "torch", "thinc", "spacy", "pytorch-crf", "spacy-seqlab"),
        "threads": threads,
        "reps": args.reps,
        "warmup": args.warmup,
        "wait_idle": idle,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "targets_speedup": TARGETS,
        "cases": cases,
    }
    stem = f"crf_layer_{args.tag}" if args.tag else "crf_layer"
    write_results(args.out, stem, result, to_markdown(result))
    if not args.tag:
        record("crf_layer", core_part(result), args.out)


def core_part(result: Dict[str, Any]) -> Dict[str, Any]:
    """This run's speedups as crf_core.json targets: both operations, every case, the
    lower of the median-based and min-based speedup (as ``targets_met``)."""
    names = {"nll_grad": "NLL+grad", "viterbi": "Viterbi"}
    targets, lines = [], []
    for case in result["cases"]:
        shape = case["shape"]
        where = f"batch {shape['batch']}, length {shape['length']} ({shape['lengths']}), {shape['n_labels']} labels"
        for key, target in TARGETS.items():
            value = min(case["speedup_pytorch_crf_over_ours"][key], case["speedup_on_min_times"][key])
            targets.append({"name": f"bench_crf_layer {names[key]} speedup vs pytorch-crf 0.7.2, {where}",
                            "target": f">= {target:g}x", "value": round(value, 2),
                            "met": bool(case["targets_met"][key])})
            t = case["timing"][key]
            lines.append(f"- {names[key]}, {where}: ours {t['ours']['median_ms']:.2f} ms "
                         f"(min {t['ours']['min_ms']:.2f}), pytorch-crf {t['pytorch_crf']['median_ms']:.2f} ms "
                         f"(min {t['pytorch_crf']['min_ms']:.2f}): {value:.2f}x")
    command = " ".join(["benchmarks/bench_crf_layer.py"] + sys.argv[1:])
    markdown = "\n".join([f"`.venv/bin/python {command}` (details: crf_layer.md); 1-min load "
                          f"average before/after {result['loadavg_before'][0]:.1f} / "
                          f"{result['loadavg_after'][0]:.1f}.", *lines])
    return {"date": result["date"], "command": command, "threads": result["threads"],
            "loadavg_before": result["loadavg_before"], "loadavg_after": result["loadavg_after"],
            "targets": targets, "markdown": markdown}


if __name__ == "__main__":
    main()
