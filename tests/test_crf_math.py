"""The CRF math against exhaustive enumeration and finite differences."""
import numpy
import pytest

from spacy_seqlab.crf import (
    ChainPotentials,
    allowed_from_gold,
    clamp_emissions,
    forward_backward,
    gold_counts,
    sequence_scores,
    viterbi,
)
from . import crf_reference as reference
from .crf_brute_force import brute_force, random_problem

xp = numpy


CASES = [
    (seed, L, lengths, with_mask)
    for seed, (L, lengths) in enumerate(
        [(1, [1, 3]), (2, [1, 2, 5]), (3, [5, 4, 1, 3]), (4, [2, 5, 3]), (4, [5]), (3, [1])]
    )
    for with_mask in (False, True)
]


@pytest.mark.parametrize("seed,L,lengths,with_mask", CASES)
def test_forward_backward_equals_enumeration(seed, L, lengths, with_mask):
    E, lens, pot = random_problem(seed, L, lengths, with_mask=with_mask)
    out = forward_backward(xp, E, lens, pot)
    for b, n in enumerate(lengths):
        log_z, nodes, trans, _, _ = brute_force(E[b], n, pot.transitions, pot.start, pot.end, mask=pot.mask)
        assert out.log_z[b] == pytest.approx(log_z, abs=1e-9)
        numpy.testing.assert_allclose(out.nodes[b, :n], nodes, atol=1e-9)
        numpy.testing.assert_allclose(out.nodes[b, n:], 0.0)
        numpy.testing.assert_allclose(out.transitions[b], trans, atol=1e-9)


@pytest.mark.parametrize("seed,L,lengths,with_mask", CASES)
def test_viterbi_equals_exhaustive_argmax(seed, L, lengths, with_mask):
    E, lens, pot = random_problem(seed, L, lengths, with_mask=with_mask)
    paths, scores = viterbi(xp, E, lens, pot)
    for b, n in enumerate(lengths):
        _, _, _, best, best_score = brute_force(E[b], n, pot.transitions, pot.start, pot.end, mask=pot.mask)
        assert paths[b, :n].tolist() == best
        assert (paths[b, n:] == -1).all()
        assert scores[b] == pytest.approx(best_score, rel=1e-5, abs=1e-4)


@pytest.mark.parametrize("seed,L,lengths,with_mask", CASES)
def test_clamped_crf_equals_enumeration_over_consistent_sequences(seed, L, lengths, with_mask):
    E, lens, pot = random_problem(seed, L, lengths, with_mask=with_mask)
    rng = numpy.random.default_rng(seed + 100)
    # a feasible gold path (the Viterbi one), with about half the labels hidden
    gold, _ = viterbi(xp, E + rng.normal(size=E.shape), lens, pot)
    gold = numpy.where(rng.random(gold.shape) < 0.5, -1, gold)
    allowed = allowed_from_gold(xp, gold, L)
    out = forward_backward(xp, clamp_emissions(xp, E, allowed), lens, pot)
    for b, n in enumerate(lengths):
        log_z, nodes, trans, _, _ = brute_force(
            E[b], n, pot.transitions, pot.start, pot.end, allowed=allowed[b], mask=pot.mask
        )
        assert out.log_z[b] == pytest.approx(log_z, abs=1e-9)
        numpy.testing.assert_allclose(out.nodes[b, :n], nodes, atol=1e-9)
        numpy.testing.assert_allclose(out.transitions[b], trans, atol=1e-9)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_count_modes_agree(dtype):
    E, lens, pot = random_problem(9, 6, [7, 3, 12, 1, 12], with_mask=True)
    per_sequence = forward_backward(xp, E, lens, pot)
    batch = forward_backward(xp, E, lens, pot, counts="batch", dtype=dtype)
    none = forward_backward(xp, E, lens, pot, counts=None, dtype=dtype)
    tol = 1e-9 if dtype == "float64" else 1e-5
    numpy.testing.assert_allclose(batch.transitions, per_sequence.transitions.sum(axis=0), atol=tol * 10)
    numpy.testing.assert_allclose(batch.log_z, per_sequence.log_z, rtol=tol)
    numpy.testing.assert_allclose(none.nodes, per_sequence.nodes, atol=tol)
    assert none.transitions is None
    with pytest.raises(ValueError, match="counts must be one of"):
        forward_backward(xp, E, lens, pot, counts="all")


def test_gold_score_and_counts_match_definition():
    E, lens, pot = random_problem(0, 3, [4, 2])
    gold = numpy.array([[0, 2, 1, 1], [2, 0, -1, -1]])
    scores = sequence_scores(xp, E, lens, gold, pot)
    A, s, e = pot.transitions, pot.start, pot.end
    expected0 = s[0] + E[0, 0, 0] + A[0, 2] + E[0, 1, 2] + A[2, 1] + E[0, 2, 1] + A[1, 1] + E[0, 3, 1] + e[1]
    expected1 = s[2] + E[1, 0, 2] + A[2, 0] + E[1, 1, 0] + e[0]
    numpy.testing.assert_allclose(scores, [expected0, expected1])
    nodes, trans = gold_counts(xp, lens, gold, 3)
    assert nodes.sum() == 6
    expected = numpy.zeros((3, 3))
    for i, j in [(0, 2), (2, 1), (1, 1), (2, 0)]:
        expected[i, j] += 1
    numpy.testing.assert_array_equal(trans, expected)
    assert nodes[0, 1, 2] == 1 and nodes[1, 1, 0] == 1 and nodes[1, 2:].sum() == 0


def test_padding_does_not_change_results():
    E, lens, pot = random_problem(5, 4, [3, 5])
    alone = forward_backward(xp, E[:1, :3], lens[:1], pot)
    batched = forward_backward(xp, E, lens, pot)
    assert batched.log_z[0] == pytest.approx(alone.log_z[0])
    numpy.testing.assert_allclose(batched.nodes[0, :3], alone.nodes[0])
    E2 = E.copy()
    E2[0, 3:] = 1e6  # garbage in the padding must be ignored
    assert forward_backward(xp, E2, lens, pot).log_z[0] == pytest.approx(alone.log_z[0])
    assert viterbi(xp, E2, lens, pot)[0][0].tolist() == viterbi(xp, E, lens, pot)[0][0].tolist()


def test_long_sequence_many_labels_is_stable():
    """10,000 tokens, 60 labels: finite log Z equal to the log-space recursion."""
    rng = numpy.random.default_rng(1)
    T, L = 10_000, 60
    E = rng.normal(size=(2, T, L)) * 5
    pot = ChainPotentials(rng.normal(size=(L, L)) * 3, rng.normal(size=L), rng.normal(size=L))
    lens = numpy.array([T, T // 3])
    out = forward_backward(xp, E, lens, pot)
    assert numpy.isfinite(out.log_z).all()
    numpy.testing.assert_allclose(out.nodes[0].sum(axis=1), 1.0, atol=1e-9)
    numpy.testing.assert_allclose(out.transitions.sum(axis=(1, 2)), lens - 1, rtol=1e-9)
    for b, n in enumerate(lens):
        log_z, nodes, _ = reference.marginals(E[b, :n], pot.transitions, pot.start, pot.end)
        assert out.log_z[b] == pytest.approx(log_z, rel=1e-10)
        numpy.testing.assert_allclose(out.nodes[b, :n], nodes, atol=1e-7)
    paths, _ = viterbi(xp, E, lens, pot)
    assert (paths[0] >= 0).all() and (paths[1, T // 3 :] == -1).all()


def test_extreme_scores_stay_exact():
    """Score gaps beyond exp's float64 range (every surviving path is 800 below the
    best single factor) next to an ordinary row; results stay exact."""
    E = numpy.array([[[0.0, -800.0], [-800.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.5, 0.0], [0.0, 0.0]]])
    A = numpy.array([[0.0, -800.0], [0.0, 0.0]])
    pot = ChainPotentials(A, numpy.zeros(2), numpy.zeros(2))
    lens = numpy.array([3, 2])
    out = forward_backward(xp, E, lens, pot)
    summed = forward_backward(xp, E, lens, pot, counts="batch", dtype="float32")
    numpy.testing.assert_allclose(summed.transitions, out.transitions.sum(axis=0), atol=1e-5)
    numpy.testing.assert_allclose(summed.log_z, out.log_z, rtol=1e-6)
    for b, n in enumerate(lens):
        log_z, nodes, trans, _, _ = brute_force(E[b], n, A, pot.start, pot.end)
        assert out.log_z[b] == pytest.approx(log_z, abs=1e-8)
        numpy.testing.assert_allclose(out.nodes[b, :n], nodes, atol=1e-8)
        numpy.testing.assert_allclose(out.transitions[b], trans, atol=1e-8)


def test_masked_viterbi_never_takes_forbidden_transitions():
    rng = numpy.random.default_rng(7)
    for trial in range(20):
        E, lens, pot = random_problem(trial, 5, list(rng.integers(1, 12, size=6)), scale=4, with_mask=True)
        paths, scores = viterbi(xp, E, lens, pot)
        for b, n in enumerate(lens):
            y = paths[b, :n]
            assert pot.mask.start[y[0]] and pot.mask.end[y[-1]]
            assert all(pot.mask.transitions[y[t - 1], y[t]] for t in range(1, n))


def test_bad_lengths_raise_clear_errors():
    E, lens, pot = random_problem(0, 3, [2, 3])
    with pytest.raises(ValueError, match="lengths must lie"):
        forward_backward(xp, E, numpy.array([0, 3]), pot)
    with pytest.raises(ValueError, match="lengths must lie"):
        viterbi(xp, E, numpy.array([2, 4]), pot)
    with pytest.raises(ValueError, match="Expected emissions"):
        forward_backward(xp, E[0], lens, pot)


def reference_viterbi(E, n, A, s, e):
    """Plain max-plus dynamic programming over one sequence."""
    score = s + E[0]
    back = []
    for t in range(1, n):
        cand = score[:, None] + A
        back.append(cand.argmax(axis=0))
        score = cand.max(axis=0) + E[t]
    score = score + e
    path = [int(score.argmax())]
    for pointers in reversed(back):
        path.append(int(pointers[path[-1]]))
    return path[::-1], float(score.max())


@pytest.mark.parametrize("scale", [0.5, 3.0, 20.0])
def test_viterbi_with_many_labels_equals_reference(scale):
    """Peaked emissions (large scale) exercise the pruned max-plus step."""
    rng = numpy.random.default_rng(int(scale * 10))
    B, T, L = 6, 30, 24
    E = (rng.normal(size=(B, T, L)) * scale).astype("float32")
    A = rng.normal(size=(L, L)).astype("float32")
    s, e = rng.normal(size=L).astype("float32"), rng.normal(size=L).astype("float32")
    lens = numpy.array([30, 1, 17, 30, 5, 12])
    paths, scores = viterbi(xp, E, lens, ChainPotentials(A, s, e))
    for b, n in enumerate(lens):
        path, score = reference_viterbi(E[b], n, A, s, e)
        assert paths[b, :n].tolist() == path
        assert scores[b] == pytest.approx(score, rel=1e-5)


def dense_viterbi(E, A, s, e):
    """Textbook max-plus recursion and backtrace over every label pair (float64)."""
    best, back = s + E[0], []
    for t in range(1, E.shape[0]):
        cand = best[:, None] + A
        back.append(cand.argmax(axis=0))
        best = cand.max(axis=0) + E[t]
    path = [int((best + e).argmax())]
    for pointers in reversed(back):
        path.append(int(pointers[path[-1]]))
    return path[::-1]


def test_pruned_viterbi_steps_equal_the_dense_recursion(monkeypatch):
    # confident emissions leave each row one candidate predecessor, middling ones a
    # few (the sparse step), flat ones many (the dense step): every kind must be exact
    import importlib

    module = importlib.import_module("spacy_seqlab.crf.viterbi")
    candidates = []  # per step: the most candidate predecessors of any row
    sparse_step = module._sparse_step

    def spy(xp_, prev, A, bounds, columns):
        best = prev.argmax(axis=1)
        peak = prev[numpy.arange(prev.shape[0]), best]
        candidates.append(int((prev >= peak[:, None] - bounds[best]).sum(axis=1).max()))
        return sparse_step(xp_, prev, A, bounds, columns)

    monkeypatch.setattr(module, "_sparse_step", spy)
    L, lengths = 24, [30, 17, 1, 25, 30, 9]
    for seed, scale in enumerate([0.05, 1.0, 4.0, 40.0, 1e4]):
        rng = numpy.random.default_rng(seed)
        E = rng.normal(size=(len(lengths), 30, L)) * scale
        pot = ChainPotentials(rng.normal(size=(L, L)) * 2, rng.normal(size=L), rng.normal(size=L))
        paths, scores = viterbi(xp, E, numpy.asarray(lengths), pot)
        for b, n in enumerate(lengths):
            assert paths[b, :n].tolist() == dense_viterbi(E[b, :n], pot.transitions, pot.start, pot.end)
            assert scores[b] == pytest.approx(reference.viterbi_score(E[b, :n], pot.transitions, pot.start, pot.end))
    assert 1 in candidates  # one candidate
    assert any(1 < k <= L // 4 for k in candidates)  # a few: the sparse step
    assert any(k > L // 4 for k in candidates)  # many: the dense step
