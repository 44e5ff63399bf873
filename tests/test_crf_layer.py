"""The CRF Thinc layer: loss and gradients (finite differences), backprop, decoding."""
import numpy
import pytest
from thinc.api import NumpyOps

from spacy_seqlab.crf import ChainPotentials
from spacy_seqlab.layers.crf import CRF, CRFScores, crf_decode, crf_loss

from .crf_brute_force import brute_force
from .gradients import numeric_gradient

ops = NumpyOps()


def problem(seed=0, L=3, lengths=(4, 1, 3)):
    rng = numpy.random.default_rng(seed)
    B, T = len(lengths), max(lengths)
    E = rng.normal(size=(B, T, L))
    pot = ChainPotentials(rng.normal(size=(L, L)), rng.normal(size=L), rng.normal(size=L))
    gold = [rng.integers(0, L, size=n) for n in lengths]
    allowed = []
    for k, g in enumerate(gold):
        a = numpy.zeros((len(g), L), dtype=bool)
        a[numpy.arange(len(g)), g] = True
        if k == 0:
            a[1] = True  # a missing label
            a[2] = True
            a[2, 1] = False  # a negative label
        allowed.append(a)
    return CRFScores(E, numpy.asarray(lengths), pot), allowed


def total_loss(scores, allowed):
    return crf_loss(ops, scores, allowed, dtype="float64")[0]


def test_loss_is_nll_of_the_allowed_sequences():
    scores, allowed = problem()
    loss, _ = crf_loss(ops, scores, allowed, dtype="float64")
    expected = 0.0
    pot = scores.potentials
    for b, n in enumerate(scores.lengths):
        args = (scores.emissions[b], n, pot.transitions, pot.start, pot.end)
        expected += brute_force(*args)[0] - brute_force(*args, allowed=allowed[b])[0]
    assert loss == pytest.approx(expected, abs=1e-8)


def test_gradients_equal_finite_differences():
    scores, allowed = problem(seed=3)
    _, grad = crf_loss(ops, scores, allowed, dtype="float64")
    eps = 1e-5
    pot = scores.potentials
    for name, array, analytic in [
        ("emissions", scores.emissions, grad.emissions),
        ("transitions", pot.transitions, grad.transitions),
        ("start", pot.start, grad.start),
        ("end", pot.end, grad.end),
    ]:
        numeric = numeric_gradient(array, lambda: total_loss(scores, allowed), eps)
        if name == "emissions":  # padding positions have no gradient
            for b, n in enumerate(scores.lengths):
                numeric[b, n:] = 0.0
        numpy.testing.assert_allclose(analytic, numeric, atol=1e-5, err_msg=name)


def test_float32_loss_matches_float64():
    scores, allowed = problem(seed=5, L=12, lengths=(30, 7, 19))
    loss64, grad64 = crf_loss(ops, scores, allowed, dtype="float64")
    loss32, grad32 = crf_loss(ops, scores, allowed)
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    numpy.testing.assert_allclose(grad32.emissions, grad64.emissions, atol=1e-5)
    numpy.testing.assert_allclose(grad32.transitions, grad64.transitions, atol=1e-4)


def test_unlabeled_sequence_contributes_nothing():
    scores, allowed = problem()
    allowed = [numpy.ones_like(a) for a in allowed]
    loss, grad = crf_loss(ops, scores, allowed)
    assert loss == pytest.approx(0.0, abs=1e-9)
    assert numpy.abs(grad.emissions).max() < 1e-6
    assert numpy.abs(grad.transitions).max() < 1e-6


def test_layer_backprop_routes_gradients_to_params_and_inputs():
    L = 4
    model = CRF()
    X = [numpy.random.default_rng(0).normal(size=(n, L)).astype("float32") for n in (3, 0, 5)]
    model.initialize(X=X)
    assert model.get_dim("nO") == L
    model.get_param("transitions")[:] = numpy.random.default_rng(1).normal(size=(L, L))
    scores, backprop = model.begin_update(X)
    assert scores.emissions.shape == (3, 5, L)
    allowed = [numpy.eye(L, dtype=bool)[numpy.arange(len(x)) % L] for x in X]
    loss, grad = crf_loss(model.ops, scores, allowed)
    dX = backprop(grad)
    assert [d.shape for d in dX] == [x.shape for x in X]
    numpy.testing.assert_allclose(dX[2], grad.emissions[2, :5])
    numpy.testing.assert_allclose(model.get_grad("transitions"), grad.transitions)
    numpy.testing.assert_allclose(model.get_grad("start"), grad.start)
    assert loss > 0


def test_decode_returns_viterbi_paths_and_their_marginals():
    scores, _ = problem(seed=4, lengths=(3, 2, 4))
    scores.lengths = numpy.asarray([3, 0, 4])
    paths, confidences = crf_decode(ops, scores)
    assert len(paths[1]) == 0 and len(confidences[1]) == 0
    pot = scores.potentials
    for b in (0, 2):
        n = int(scores.lengths[b])
        _, nodes, _, best, _ = brute_force(scores.emissions[b], n, pot.transitions, pot.start, pot.end)
        assert paths[b].tolist() == best
        numpy.testing.assert_allclose(confidences[b], nodes[numpy.arange(n), best], rtol=1e-5)
