"""``spacy seqlab-debug-data CONFIG``: the data checks of ``spacy debug data`` for the
sequence labelers of this package (spaCy keys its tagging and NER sections on the
factory names ``tagger`` and ``ner``, so it prints none for ``crf_tagger``/``crf_ner``).

For every CRF component of the pipeline (``crf_tagger``, ``memm_tagger``, ``crf_ner``)
it reads the gold labels as the component does in training and reports label counts,
missing values, tokens whose gold is lost to misaligned tokenization, gold sequences
that the component's transition constraints forbid (their loss would be infinite) and
label bigrams of dev never seen in train. It exits with status 1 on errors.
"""
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy
import typer
from spacy import util
from spacy.cli._util import Arg, Opt, app, import_code, parse_config_overrides, show_validation_error
from spacy.schemas import ConfigSchemaTraining
from spacy.training import Example
from spacy.util import registry, resolve_dot_names
from wasabi import msg

from ..components.crf_pipe import CRFPipe
from ..crf import TransitionMask

Bigram = Tuple[str, str]


@dataclass
class SplitStats:
    """What one corpus split says about one component's gold annotation."""

    docs: int = 0
    tokens: int = 0
    labels: Counter = field(default_factory=Counter)  # gold label -> tokens
    missing: int = 0  # tokens without a gold label
    unannotated_docs: int = 0  # docs without any gold label
    misaligned: int = 0  # predicted tokens not aligned one-to-one with the reference
    bigrams: Counter = field(default_factory=Counter)  # adjacent known gold labels
    impossible: List[Tuple[int, int, str]] = field(default_factory=list)  # (doc, token, text)
    unknown: Counter = field(default_factory=Counter)  # gold labels the component lacks
    unreadable: List[Tuple[int, str, str]] = field(default_factory=list)  # (doc, text, error)


def misaligned_tokens(eg: Example) -> int:
    """Predicted tokens not aligned one-to-one with a reference token (their gold
    labels are missing in training)."""
    x2y, y2x = eg.alignment.x2y, eg.alignment.y2x
    lengths = x2y.lengths
    one = lengths == 1
    first = numpy.cumsum(lengths) - lengths
    ok = one.copy()
    ok[one] = y2x.lengths[x2y.data[first[one]]] == 1
    return int((~ok).sum())


def first_impossible_token(allowed: numpy.ndarray, mask: Optional[TransitionMask]) -> Optional[int]:
    """The first token (of ``allowed`` (T, L) bool) at which no label sequence that
    agrees with the gold and the mask survives, or None if one does. The boolean
    forward recursion: ``reach[j]`` = some allowed prefix ends in label j."""
    if not len(allowed):
        return None
    n_labels = allowed.shape[1]
    trans = numpy.ones((n_labels, n_labels), bool) if mask is None else mask.transitions
    start = numpy.ones(n_labels, bool) if mask is None else mask.start
    end = numpy.ones(n_labels, bool) if mask is None else mask.end
    reach = allowed[0] & start
    for t in range(len(allowed)):
        if t:
            reach = (reach.astype(int) @ trans.astype(int) > 0) & allowed[t]
        if not reach.any():
            return t
    return None if (reach & end).any() else len(allowed) - 1


def _positive(pipe: CRFPipe, label: str) -> str:
    """``label`` without the negative prefix (``!PER`` -> ``PER``)."""
    neg = pipe.cfg["neg_prefix"]
    return label[len(neg):] if neg and label.startswith(neg) else label


def _readable(pipe: CRFPipe, eg: Example) -> bool:
    try:
        pipe.gold_labels(eg)
    except ValueError:
        return False
    return True


def split_stats(pipe: CRFPipe, examples: Sequence[Example]) -> SplitStats:
    """Gold statistics of ``examples`` as ``pipe`` reads them in training; ``pipe``
    must have its labels (``add_label``) for the constraint checks."""
    stats = SplitStats()
    mask = pipe.transition_mask()
    known = set(pipe.output_labels)
    for i, eg in enumerate(examples):
        stats.docs += 1
        try:
            gold = list(pipe.gold_labels(eg))
        except ValueError as err:  # say, E093: an I- token without a B- before it
            stats.unreadable.append((i, eg.reference.text[:60], str(err)))
            continue
        stats.tokens += len(gold)
        stats.misaligned += misaligned_tokens(eg)
        n_missing = sum(1 for label in gold if not label)
        stats.missing += n_missing
        stats.unannotated_docs += int(bool(gold) and n_missing == len(gold))
        stats.labels.update(label for label in gold if label)
        stats.bigrams.update(
            (a, b) for a, b in zip(gold, gold[1:]) if a and b
        )
        try:
            allowed = pipe.allowed_labels(eg)
        except ValueError:  # a label the component does not have
            stats.unknown.update(label for label in gold if label and _positive(pipe, label) not in known)
            continue
        t = first_impossible_token(allowed, mask)
        if t is not None:
            stats.impossible.append((i, t, eg.predicted.text[:60]))
    return stats


def check_component(pipe: CRFPipe, train: Sequence[Example], dev: Sequence[Example]) -> Tuple[List[str], List[str], Dict[str, SplitStats]]:
    """Errors, warnings and per-split statistics of ``pipe``'s gold in train and dev.
    Adds the training labels to ``pipe`` (an uninitialized component) first."""
    readable = [eg for eg in train if _readable(pipe, eg)]
    for label in pipe.labels_from_examples(lambda: readable):
        pipe.add_label(label)
    errors: List[str] = []
    warnings: List[str] = []
    if not pipe.labels:
        errors.append("no gold labels in the training corpus")
        return errors, warnings, {}
    stats = {"train": split_stats(pipe, train), "dev": split_stats(pipe, dev)}
    for split, s in stats.items():
        if not s.docs:
            errors.append(f"the {split} corpus is empty")
            continue
        for doc, text, err in s.unreadable[:5]:
            errors.append(f"{split} doc {doc} ({text!r}): its gold annotation cannot be read: {err}")
        if len(s.unreadable) > 5:
            errors.append(f"{split}: {len(s.unreadable) - 5} more docs with unreadable gold")
        for doc, token, text in s.impossible[:5]:
            errors.append(
                f"{split} doc {doc} ({text!r}): its gold labels are impossible under the "
                f"transition constraints from token {token} on (the loss would be infinite)"
            )
        if len(s.impossible) > 5:
            errors.append(f"{split}: {len(s.impossible) - 5} more docs with impossible gold sequences")
        if s.misaligned:
            warnings.append(
                f"{split}: {s.misaligned} tokens are not aligned one-to-one with the gold "
                f"tokenization; their gold labels are missing in training"
            )
        if s.missing:
            warnings.append(
                f"{split}: {s.missing} of {s.tokens} tokens have no gold label (missing "
                f"values: the loss marginalizes over them); {s.unannotated_docs} docs have none"
            )
    if stats["train"].unknown:
        errors.append(f"train: gold labels the component cannot learn: {dict(stats['train'].unknown)}")
    if stats["dev"].unknown:
        warnings.append(
            f"dev: labels never seen in train (always scored as errors): {dict(stats['dev'].unknown)}"
        )
    unseen = {bg: n for bg, n in stats["dev"].bigrams.items() if bg not in stats["train"].bigrams}
    if unseen:
        top = sorted(unseen.items(), key=lambda kv: -kv[1])[:10]
        warnings.append(
            f"dev: {len(unseen)} label bigrams ({sum(unseen.values())} occurrences) never "
            f"seen in train, e.g. " + ", ".join(f"{a} {b} ({n})" for (a, b), n in top)
        )
    return errors, warnings, stats


def debug_data(config_path: Path, overrides: Dict[str, str], verbose: bool = False) -> int:
    """Run the checks for every CRF component of the config's pipeline; the number of
    errors found."""
    with show_validation_error(config_path):
        config = util.load_config(config_path, overrides=overrides)
        nlp = util.load_model_from_config(config)
        resolved = nlp.config.interpolate()
        training = registry.resolve(resolved["training"], schema=ConfigSchemaTraining)
    train_corpus, dev_corpus = resolve_dot_names(
        resolved, [training["train_corpus"], training["dev_corpus"]]
    )
    train, dev = list(train_corpus(nlp)), list(dev_corpus(nlp))
    msg.good(f"Corpora loaded: {len(train)} training docs, {len(dev)} dev docs")
    pipes = [(name, pipe) for name, pipe in nlp.pipeline if isinstance(pipe, CRFPipe)]
    if not pipes:
        msg.warn("No crf_tagger, memm_tagger or crf_ner component in the pipeline")
    n_errors = 0
    for name, pipe in pipes:
        msg.divider(f"{name} ({nlp.get_pipe_meta(name).factory})")
        errors, warnings, stats = check_component(pipe, train, dev)
        if stats:
            counts = stats["train"].labels
            msg.info(f"{len(counts)} gold labels in train: " + ", ".join(
                f"{label} {n}" for label, n in counts.most_common(None if verbose else 20)
            ))
            rare = [label for label, n in counts.items() if n < 10]
            if rare:
                warnings.append(f"train: labels with fewer than 10 tokens: {', '.join(sorted(rare))}")
        for text in warnings:
            msg.warn(text)
        for text in errors:
            msg.fail(text)
        if not errors:
            msg.good("No errors")
        n_errors += len(errors)
    return n_errors


@app.command(
    "seqlab-debug-data",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def debug_data_cli(
    # fmt: off
    ctx: typer.Context,
    config_path: Path = Arg(..., help="Training config", exists=True),
    code_path: Optional[Path] = Opt(None, "--code", "-c", help="Python file with custom code to import"),
    verbose: bool = Opt(False, "--verbose", "-V", help="List every label"),
    # fmt: on
) -> None:
    """Check the training and dev data of the pipeline's crf_tagger, memm_tagger and
    crf_ner components: label counts, missing values, misaligned tokens, gold sequences
    impossible under the transition constraints, dev label bigrams unseen in train.
    Exits with status 1 on errors. Config overrides: --paths.train ... as for spacy train."""
    import_code(code_path)
    n_errors = debug_data(config_path, parse_config_overrides(ctx.args), verbose)
    if n_errors:
        msg.fail(f"{n_errors} errors")
        sys.exit(1)
