"""The CRF math and every component on a GPU (cupy) give what they give on the CPU.

Skipped, with the reason, where cupy or a GPU is missing: the GPU path is then
unverified. Recurrent pipelines also need a CUDA build of torch.
"""
import dataclasses

import numpy
import pytest
import spacy
from thinc import compat
from thinc.api import require_cpu, require_gpu

from spacy_seqlab.crf import (
    ChainPotentials,
    TransitionMask,
    allowed_from_gold,
    clamp_emissions,
    forward_backward,
    gold_counts,
    log_messages,
    nbest,
    segment_log_probs,
    sequence_scores,
    viterbi,
)

from .crf_brute_force import random_problem
from .tiny_pipelines import (
    PIPELINES,
    RECURRENT,
    assert_same_predictions,
    examples,
    predictions,
    train,
)

cupy = pytest.importorskip("cupy", reason="cupy is not installed: the GPU path is not tested")
if not compat.has_cupy_gpu:
    pytest.skip("cupy finds no GPU: the GPU path is not tested", allow_module_level=True)


def to_host(value):
    """cupy arrays (also inside dataclasses, tuples and lists) as numpy."""
    if isinstance(value, cupy.ndarray):
        return cupy.asnumpy(value)
    if dataclasses.is_dataclass(value):
        return {f.name: to_host(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [to_host(v) for v in value]
    return value


def to_device(value):
    if isinstance(value, numpy.ndarray):
        return cupy.asarray(value)
    if isinstance(value, (ChainPotentials, TransitionMask)):
        return dataclasses.replace(
            value, **{f.name: to_device(getattr(value, f.name)) for f in dataclasses.fields(value)}
        )
    return value


def assert_close(gpu, cpu, path="result"):
    if isinstance(cpu, dict):
        assert gpu.keys() == cpu.keys(), path
        for key in cpu:
            assert_close(gpu[key], cpu[key], f"{path}.{key}")
    elif isinstance(cpu, (tuple, list)):
        assert len(gpu) == len(cpu), path
        for i, (g, c) in enumerate(zip(gpu, cpu)):
            assert_close(g, c, f"{path}[{i}]")
    elif cpu is None:
        assert gpu is None, path
    else:
        numpy.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5, err_msg=path)


def crf_calls(E, lengths, potentials, gold):
    """Every public function of spacy_seqlab.crf on one problem, by name."""
    return {
        "forward_backward": lambda xp: forward_backward(xp, E(xp), lengths(xp), potentials(xp)),
        "forward_backward_batch_float32": lambda xp: forward_backward(
            xp, E(xp), lengths(xp), potentials(xp), counts="batch", dtype="float32"),
        "clamped_forward_backward": lambda xp: forward_backward(
            xp, clamp_emissions(xp, E(xp), allowed_from_gold(xp, gold(xp), E(xp).shape[2])),
            lengths(xp), potentials(xp)),
        "log_messages": lambda xp: log_messages(xp, E(xp), lengths(xp), potentials(xp)),
        "viterbi": lambda xp: viterbi(xp, E(xp), lengths(xp), potentials(xp)),
        "nbest": lambda xp: nbest(xp, E(xp)[0], potentials(xp), 4),
        "segment_log_probs": lambda xp: segment_log_probs(
            xp, log_messages(xp, E(xp), lengths(xp), potentials(xp)), E(xp), potentials(xp),
            rows=[0, 1], starts=[0, 1], paths=[[0, 1], [2, -1]]),
        "sequence_scores": lambda xp: sequence_scores(
            xp, E(xp), lengths(xp), xp.maximum(gold(xp), 0), potentials(xp)),
        "gold_counts": lambda xp: gold_counts(xp, lengths(xp), xp.maximum(gold(xp), 0), E(xp).shape[2]),
    }


@pytest.mark.parametrize("with_mask", [False, True])
def test_crf_math_on_cupy_equals_numpy(with_mask):
    E, lengths, potentials = random_problem(3, 4, [5, 3, 1, 4], with_mask=with_mask)
    gold = numpy.random.default_rng(0).integers(-1, 4, size=E.shape[:2])
    gold[:, 0] = 0  # a feasible start under the mask
    on = {numpy: lambda x: x, cupy: to_device}
    calls = crf_calls(
        lambda xp: on[xp](E), lambda xp: on[xp](lengths), lambda xp: on[xp](potentials),
        lambda xp: on[xp](gold),
    )
    for name, call in calls.items():
        gpu = to_host(call(cupy))
        assert_close(gpu, to_host(call(numpy)), name)


@pytest.fixture
def back_to_cpu():
    yield
    require_cpu()


@pytest.mark.parametrize("name", list(PIPELINES))
def test_component_on_gpu_predicts_as_on_cpu_and_trains(name, back_to_cpu):
    """Trained on the CPU, loaded on the GPU: the same labels and confidences, and
    an update there gives a finite loss."""
    if name in RECURRENT and not compat.has_torch_cuda_gpu:
        pytest.skip("torch has no CUDA device: recurrent layers are not tested on the GPU")
    factory, config = PIPELINES[name]
    cpu_nlp = train(factory, config)
    expected, data = predictions(cpu_nlp), cpu_nlp.to_bytes()
    require_gpu()
    nlp = spacy.blank("en")
    nlp.add_pipe(factory, config=config)
    nlp.from_bytes(data)
    assert_same_predictions(predictions(nlp), expected, rtol=1e-3)
    if factory != "hmm_tagger":  # counted, not trained by gradient
        losses = nlp.update(examples(nlp, factory), sgd=nlp.resume_training())
        assert numpy.isfinite(losses[factory]) and losses[factory] > 0
