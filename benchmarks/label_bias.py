"""Label bias on the lecture's "will to fight": the figures behind tests/test_label_bias.py.

Trains the toy setup of that test (8 sentences: "will" is MD in 6, NN in 2 where it
precedes "to"; one hashed ORTH feature per token, no window; same seed, optimizer and
steps) three ways: ``memm_tagger`` (local normalization), ``crf_tagger`` (global), and
``memm_tagger`` with its loss and decoding swapped for the CRF's (the same potentials,
globally normalized). For "will to fight" it reports the probability each model gives
to NN TO VB and MD TO VB, the MEMM's local P(TO | MD, "to") and P(TO | NN, "to"), and
the learned transition scores T[MD, TO] and T[NN, TO].

Run:  .venv/bin/python benchmarks/label_bias.py      # ~10 s
Writes benchmarks/results/label_bias.json and benchmarks/results/label_bias.md.
"""
import os
import sys
from typing import Any, Callable, Dict
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import numpy  # noqa: E402
from spacy.language import Language  # noqa: E402

from _env import RESULTS, header, write_results  # noqa: E402
import spacy_seqlab.components.memm_tagger as memm_tagger  # noqa: E402
from spacy_seqlab.crf import forward_backward, sequence_scores  # noqa: E402
from spacy_seqlab.layers.crf import CRFScores, crf_decode, crf_loss  # noqa: E402
from spacy_seqlab.layers.memm import local_log_probs  # noqa: E402
from tests.test_label_bias import CORPUS, LEARN_RATE, STEPS, TEXT, TOK2VEC, tags, train_toy  # noqa: E402

READINGS = {"NN TO VB": ["NN", "TO", "VB"], "MD TO VB": ["MD", "TO", "VB"]}


def memm_sequence_log_prob(scores: CRFScores, path) -> float:
    """sum_t log P(y_t | y_{t-1}, x): the MEMM's probability of a labeling."""
    log_p = local_log_probs(numpy, scores.emissions, scores.potentials)[0]
    return float(log_p[0, 0, path[0]] + sum(log_p[t, path[t - 1], path[t]] for t in range(1, len(path))))


def crf_sequence_log_prob(scores: CRFScores, path) -> float:
    """score(y) - log Z: the probability of a labeling under global normalization."""
    E = numpy.asarray(scores.emissions, dtype="float64")
    lengths = numpy.asarray(scores.lengths, dtype="int64")
    gold = numpy.asarray([path])
    score = sequence_scores(numpy, E, lengths, gold, scores.potentials)[0]
    log_z = forward_backward(numpy, E, lengths, scores.potentials, counts=None).log_z[0]
    return float(score - log_z)


def report(nlp: Language, log_prob: Callable[[CRFScores, Any], float], local: bool) -> Dict[str, Any]:
    tagger = nlp.get_pipe("tagger")
    index = {label: i for i, label in enumerate(tagger.labels)}
    scores = tagger.scores([nlp.make_doc(TEXT)])
    A = numpy.asarray(scores.potentials.transitions)
    out: Dict[str, Any] = {
        "prediction": " ".join(tags(nlp)),
        "P(sequence | x)": {
            name: round(float(numpy.exp(log_prob(scores, [index[t] for t in path]))), 4)
            for name, path in READINGS.items()
        },
        "T[MD,TO]": round(float(A[index["MD"], index["TO"]]), 3),
        "T[NN,TO]": round(float(A[index["NN"], index["TO"]]), 3),
    }
    if local:
        log_p = local_log_probs(numpy, scores.emissions, scores.potentials)[0]
        out["P(TO | MD, to)"] = round(float(numpy.exp(log_p[1, index["MD"], index["TO"]])), 4)
        out["P(TO | NN, to)"] = round(float(numpy.exp(log_p[1, index["NN"], index["TO"]])), 4)
        out["P(MD | START, will)"] = round(float(numpy.exp(log_p[0, 0, index["MD"]])), 4)
    return out


def globally_normalized_memm() -> Dict[str, Any]:
    """The report of memm_tagger trained with the CRF loss and decoded with the CRF's
    Viterbi (the same potentials, globally normalized)."""
    with mock.patch.object(memm_tagger.MEMMTagger, "chain_loss", staticmethod(crf_loss)), \
            mock.patch.object(memm_tagger, "memm_decode", lambda ops, scores, _: crf_decode(ops, scores)):
        return report(train_toy("memm_tagger"), crf_sequence_log_prob, local=False)


def markdown(result: Dict[str, Any]) -> str:
    models = result["models"]
    lines = [
        "# Label bias: MEMM vs CRF on \"will to fight\"",
        "",
        f"{result['date']}; versions: "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        f"Toy corpus ({len(CORPUS)} sentences, `tests/test_label_bias.py`): "
        + "; ".join(f"\"{text}\" {' '.join(t)}" for text, t in CORPUS)
        + f". Features: one hashed ORTH embedding per token (width {TOK2VEC['width']}, "
        f"no window), identical for every model; Adam({LEARN_RATE}), {STEPS} full-batch "
        "steps, seed 0. Input: \"will to fight\" (NN TO VB is right).",
        "",
        "| model | prediction | P(NN TO VB) | P(MD TO VB) | T[MD,TO] | T[NN,TO] |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, m in models.items():
        p = m["P(sequence | x)"]
        lines.append(
            f"| {name} | {m['prediction']} | {p['NN TO VB']:.4f} | {p['MD TO VB']:.4f} "
            f"| {m['T[MD,TO]']:.3f} | {m['T[NN,TO]']:.3f} |"
        )
    memm = models["memm_tagger"]
    lines += [
        "",
        f"MEMM local probabilities: P(MD | START, will) = {memm['P(MD | START, will)']:.4f}, "
        f"P(TO | MD, to) = {memm['P(TO | MD, to)']:.4f}, "
        f"P(TO | NN, to) = {memm['P(TO | NN, to)']:.4f}.",
    ]
    return "\n".join(lines)


def main() -> None:
    models = {
        "memm_tagger": report(train_toy("memm_tagger"), memm_sequence_log_prob, local=True),
        "crf_tagger": report(train_toy("crf_tagger"), crf_sequence_log_prob, local=False),
        "memm_tagger, CRF loss + CRF Viterbi": globally_normalized_memm(),
    }
    result = {
        **header("spacy", "thinc", "numpy", "spacy-seqlab"),
        "setup": {"corpus": CORPUS, "text": TEXT, "tok2vec": TOK2VEC, "steps": STEPS,
                  "learn_rate": LEARN_RATE, "seed": 0},
        "models": models,
    }
    write_results(RESULTS, "label_bias", result, markdown(result))


if __name__ == "__main__":
    main()
