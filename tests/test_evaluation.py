"""The evaluator against hand-computed cases and a literal reference merge."""

import math

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import evaluation, retrieval, types
from dismir_tf.pipeline import EvalExamples
from dismir_tf.retrieval import merge_top_k
from tests.reference_metrics import metrics_from_topk


def _core(topk, targets, ks):
    """The package's metrics (``retrieval.protocol_metrics``) as NumPy."""
    got = retrieval.protocol_metrics(
        tf.constant(topk), tf.constant(targets), ks, tf.float64
    )
    return {name: v.numpy() for name, v in got.items()}


# Every hand-computed case holds for the package's TF core and for the
# NumPy reference the other tests compare with.
BOTH = pytest.mark.parametrize(
    "metrics", [_core, metrics_from_topk], ids=["tf-core", "numpy-reference"]
)


@BOTH
def test_metrics_hand_computed_with_repeated_targets(metrics):
    # One user, top-5 = [3, 1, 7, 2, 9], targets [1, 1, 4, 9] (1 repeated).
    topk = np.array([[3, 1, 7, 2, 9]])
    targets = np.array([[1, 1, 4, 9]])
    m = metrics(topk, targets, (2, 5))
    # @2: top = [3, 1]; target entries in it: 1, 1 -> 2 of 4.
    assert m["recall@2"][0] == pytest.approx(2 / 4)
    assert m["hr@2"][0] == 1.0
    # NDCG@2: rel = [0, 1]; DCG = 1/log2(3); 3 distinct targets, IDCG over
    # min(3, 2) = 2 ranks: 1 + 1/log2(3).
    assert m["ndcg@2"][0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    # @5: entries 1, 1, 9 hit -> 3/4; rel = [0, 1, 0, 0, 1].
    assert m["recall@5"][0] == pytest.approx(3 / 4)
    dcg = 1 / math.log2(3) + 1 / math.log2(6)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg@5"][0] == pytest.approx(dcg / idcg)


@BOTH
def test_metrics_fewer_hits_than_n_and_padding(metrics):
    topk = np.array([[5, 6, 7], [1, 2, 3]])
    targets = np.array([[8, 0, 0], [3, 4, 0]])  # 0 is padding
    m = metrics(topk, targets, (3,))
    np.testing.assert_allclose(m["recall@3"], [0.0, 0.5])
    np.testing.assert_allclose(m["hr@3"], [0.0, 1.0])
    # user 2: rel = [0, 0, 1] -> DCG 1/log2(4) = 0.5; IDCG = 1 + 1/log2(3).
    np.testing.assert_allclose(m["ndcg@3"], [0.0, 0.5 / (1 + 1 / math.log2(3))])


def _np_merge_topk(items: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """The reference merge in NumPy (the check of the TF core,
    ``retrieval.merge_top_k``): sort by score, de-duplicate, keep the
    first k.

    Args:
      items: [B, M] candidate items (e.g. F per-interest top-k lists side by
        side).
      scores: [B, M] their scores.
      k: output length; every row must hold at least k distinct items.

    Returns:
      [B, k] items, best first, each item once.
    """
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked = np.take_along_axis(items, order, axis=1)
    # A stable sort by item keeps each item's best-scored copy first.
    by_item = np.argsort(ranked, axis=1, kind="stable")
    sorted_items = np.take_along_axis(ranked, by_item, axis=1)
    first = np.ones_like(sorted_items, dtype=bool)
    first[:, 1:] = sorted_items[:, 1:] != sorted_items[:, :-1]
    keep = np.empty_like(first)
    np.put_along_axis(keep, by_item, first, axis=1)
    keep &= np.cumsum(keep, axis=1) <= k
    counts = keep.sum(axis=1)
    if np.any(counts < k):
        raise ValueError("a row has fewer than k distinct candidates")
    return ranked[keep].reshape(len(items), k)


def test_merge_deduplicates_an_item_retrieved_by_two_interests():
    # Interest A: items 4 (0.9), 2 (0.5); interest B: 4 (0.8), 7 (0.7).
    items = np.array([[4, 2, 4, 7]])
    scores = np.array([[0.9, 0.5, 0.8, 0.7]])
    for k, expected in ((2, [[4, 7]]), (3, [[4, 7, 2]])):
        np.testing.assert_array_equal(_np_merge_topk(items, scores, k), expected)
        np.testing.assert_array_equal(
            merge_top_k(
                tf.constant(scores, tf.float32), tf.constant(items, tf.int32), k
            ).numpy(),
            expected,
        )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tf_merge_equals_the_numpy_reference_with_ties(seed):
    rng = np.random.RandomState(seed)
    items = rng.randint(1, 9, size=(20, 12))
    scores = rng.randint(0, 4, size=(20, 12)).astype(np.float32)  # ties
    k = 4
    ok = [len(set(row)) >= k for row in items]
    items, scores = items[ok], scores[ok]
    np.testing.assert_array_equal(
        merge_top_k(tf.constant(scores), tf.constant(items, tf.int32), k).numpy(),
        _np_merge_topk(items, scores, k),
    )


def _reference_merge(queries, emb, k):
    """Literal ComiRec procedure: per-interest top-k, sort, dedupe, cut."""
    out = []
    for q in queries:
        cands = []
        for f in range(q.shape[0]):
            s = emb[1:] @ q[f]
            top = np.argsort(-s, kind="stable")[:k]
            cands += [(s[i], i + 1) for i in top]
        cands.sort(key=lambda x: -x[0])
        seen, row = set(), []
        for _, item in cands:
            if item not in seen:
                seen.add(item)
                row.append(item)
        out.append(row[:k])
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("num_queries", [1, 4])
def test_exact_and_tfrs_backends_equal_the_reference_merge(seed, num_queries):
    rng = np.random.RandomState(seed)
    n, d, users, k = 60, 8, 7, 10
    emb = rng.randn(n + 1, d).astype(np.float32)
    queries = rng.randn(users, num_queries, d).astype(np.float32)
    expected = _reference_merge(queries, emb, k)
    _, exact = retrieval.score_and_top_k(
        tf.constant(queries), tf.constant(emb), k, None
    )
    np.testing.assert_array_equal(exact.numpy(), expected)
    np.testing.assert_array_equal(retrieval.tfrs_top_k(queries, emb, k), expected)


def test_padding_is_never_recommended_and_history_exclusion():
    # Item 0 (padding) has by far the largest score.
    emb = np.array([[100.0], [1.0], [3.0], [2.0]], np.float32)
    queries = np.ones((1, 1, 1), np.float32)
    _, top = retrieval.score_and_top_k(tf.constant(queries), tf.constant(emb), 3, None)
    np.testing.assert_array_equal(top.numpy(), [[2, 3, 1]])
    _, top = retrieval.score_and_top_k(
        tf.constant(queries), tf.constant(emb), 2, tf.constant([[2, 0]], tf.int32)
    )
    np.testing.assert_array_equal(top.numpy(), [[3, 1]])


def test_evaluate_batches_users_and_averages():
    rng = np.random.RandomState(4)
    emb = rng.randn(31, 4).astype(np.float32)
    hist = rng.randint(1, 31, size=(9, 5)).astype(np.int32)
    targets = rng.randint(1, 31, size=(9, 3)).astype(np.int32)
    ex = EvalExamples(users=np.arange(9, dtype=np.int32), history=hist, targets=targets)

    def query_fn(features):
        # One query per user: the embedding of the first history item.
        return tf.gather(emb, features[types.HISTORY][:, :1])

    whole = evaluation.evaluate(
        query_fn, emb, ex, ks=(5, 10), batch_size=100, keep_topk=True
    )
    batched = evaluation.evaluate(
        query_fn, emb, ex, ks=(5, 10), batch_size=2, keep_topk=True
    )
    np.testing.assert_array_equal(whole.topk, batched.topk)
    for k, v in whole.metrics.items():
        assert batched.metrics[k] == pytest.approx(v)
    per_user = metrics_from_topk(whole.topk, targets, (5, 10))
    assert whole.metrics["recall@10"] == pytest.approx(per_user["recall@10"].mean())
    # Each user's own first history item scores q.q = |q|^2, the largest
    # possible for that query unless another item is longer in its direction.
    assert whole.topk.shape == (9, 10)


def test_metrics_match_the_broadcast_definition_with_repeats_and_padding():
    rng = np.random.default_rng(3)
    users, n_items = 64, 120
    topk = np.stack(
        [rng.permutation(np.arange(1, n_items + 1))[:50] for _ in range(users)]
    ).astype(np.int32)
    lengths = rng.integers(0, 40, size=users)
    targets = np.zeros((users, 40), np.int32)
    for u, n in enumerate(lengths):  # repeats allowed, 0-padded
        targets[u, :n] = rng.integers(1, n_items + 1, size=n)
    got = _core(topk, targets, (20, 50))
    want = metrics_from_topk(topk, targets)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], err_msg=name)


def test_one_heavy_user_sets_only_its_own_batch():
    """Targets are ragged: a batch is padded to its own longest list, so
    one user with 4,000 targets does not widen every batch (issue: evaluation
    memory set by the heaviest user of the split)."""
    from dismir_tf.pipeline import EvalExamples, Targets

    lengths = np.full(1000, 3)
    lengths[700] = 4000
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = np.random.default_rng(0).integers(1, 50, size=offsets[-1])
    ex = EvalExamples(
        users=np.arange(1000, dtype=np.int32),
        history=np.ones((1000, 5), np.int32),
        targets=Targets(values, offsets),
    )
    widths = [ex.targets[sl].shape[1] for sl in ex.batches(256)]
    assert widths == [3, 3, 4000, 3]
    np.testing.assert_array_equal(ex.targets[700], values[offsets[700] : offsets[701]])
    # A padded array given to the constructor is converted.
    padded = EvalExamples(
        users=ex.users[:2],
        history=ex.history[:2],
        targets=np.array([[4, 5, 0], [6, 0, 0]]),
    )
    np.testing.assert_array_equal(padded.targets[0:2], [[4, 5], [6, 0]])


def test_exclude_history_removes_the_whole_known_sequence():
    # One valid user of 30 items: known = the first 24, of which the model
    # reads the last 5.  The query scores items by their index, so the
    # known items 1..19 that the model does not read would fill the top
    # of the list unless the whole known sequence is excluded.
    from dismir_tf import pipeline
    from tests.helpers import make_dataset

    seq = list(range(1, 31))
    ds = make_dataset([seq, list(range(31, 61))], 80, train=[1], valid=[0], test=[])
    ex = pipeline.eval_examples(ds, "valid", max_len=5)
    assert ex.history[0].tolist() == [20, 21, 22, 23, 24]
    assert ex.known[0].tolist() == list(range(1, 25))
    emb = np.zeros((81, 1), np.float32)
    emb[1:, 0] = -np.arange(1, 81, dtype=np.float32)  # item 1 scores best

    def query_fn(features):
        return tf.ones([tf.shape(features[types.HISTORY])[0], 1, 1])

    top = evaluation.evaluate(
        query_fn, emb, ex, ks=(20,), exclude_history=True, keep_topk=True
    ).topk[0]
    assert not set(top.tolist()) & set(range(1, 25))
    assert top.tolist()[:6] == [25, 26, 27, 28, 29, 30]
    kept = evaluation.evaluate(query_fn, emb, ex, ks=(20,), keep_topk=True).topk[0]
    assert kept.tolist()[:3] == [1, 2, 3]


def test_metrics_of_users_with_20000_targets_fit_in_memory():
    """The core sorts and searches instead of comparing every target with
    every target or listed item: a [B, T, T] comparison of these 64 users
    would take 25.6 GB."""
    rng = np.random.default_rng(5)
    topk = rng.integers(1, 5000, size=(64, 50)).astype(np.int32)
    targets = rng.integers(0, 5000, size=(64, 20000)).astype(np.int32)
    got = _core(topk, targets, (20, 50))
    want = metrics_from_topk(topk, targets)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], err_msg=name)
