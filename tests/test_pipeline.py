"""The tf.data pipelines follow docs/protocol.md, "Training examples" and
"Evaluation examples"."""

import numpy as np
import tensorflow as tf

from dismir_tf import pipeline, types
from tests.helpers import make_dataset

# Three train users (disjoint items, so a row identifies its user), one
# valid, one test; items 1..20.
SEQS = [
    [1, 2, 3, 4, 5, 6, 7],  # train
    [10, 11, 12, 13, 14],  # train (n = 5: k must be 4)
    [20, 19, 18, 17, 16, 15, 14, 13, 12],  # train
    [1, 3, 5, 7, 9, 2, 4, 6, 8, 1],  # valid, n = 10
    [4, 4, 4, 4, 2],  # test,  n = 5
]


def _ds():
    return make_dataset(SEQS, 20, train=[0, 1, 2], valid=[3], test=[4])


def test_train_batch_is_a_prefix_and_its_next_item():
    ds = _ds()
    sampler = pipeline.TrainSampler(ds, max_len=3, batch_size=3, seed=5)
    seqs = [np.array(SEQS[u]) for u in ds.train_users]
    for step in range(30):
        batch = sampler.sample(tf.constant(step, tf.int64))
        b = {k: v.numpy() for k, v in batch.items()}
        assert b[types.HISTORY].shape == (3, 3)
        assert b[types.HISTORY_MASK].shape == (3, 3)
        np.testing.assert_array_equal(
            b[types.HISTORY_MASK], (b[types.HISTORY] > 0).astype(np.float32)
        )
        users_seen = set()
        for row in range(3):
            hist = b[types.HISTORY][row]
            real = hist[hist > 0]
            # Right padding: real items first.
            assert np.all(hist[: len(real)] > 0)
            # Find the sequence this row came from: history = s[k-3:k],
            # target = s[k] with 4 <= k <= n - 1.
            matches = [
                (u, k)
                for u, s in enumerate(seqs)
                for k in range(4, len(s))
                if s[k] == b[types.TARGET][row]
                and np.array_equal(s[max(0, k - 3) : k], real)
            ]
            assert matches, (hist, b[types.TARGET][row])
            users_seen.add(matches[0][0])
        # Batch size equals the number of train users: all distinct.
        assert len(users_seen) == 3


def test_train_batches_depend_only_on_seed_and_step():
    ds = _ds()
    a = pipeline.TrainSampler(ds, 3, 2, seed=1).dataset_from(0, 6)
    b = pipeline.TrainSampler(ds, 3, 2, seed=1).dataset_from(3, 3)
    c = pipeline.TrainSampler(ds, 3, 2, seed=2).dataset_from(0, 6)
    la = [x[types.HISTORY].numpy() for x in a]
    lb = [x[types.HISTORY].numpy() for x in b]
    lc = [x[types.HISTORY].numpy() for x in c]
    assert len(la) == 6
    for x, y in zip(la[3:], lb):
        np.testing.assert_array_equal(x, y)  # resuming at step 3
    assert any(not np.array_equal(x, y) for x, y in zip(la, lc))


def test_targets_cover_every_allowed_position():
    ds = make_dataset([[1, 2, 3, 4, 5, 6, 7, 8]], 8, [0], [], [])
    sampler = pipeline.TrainSampler(ds, max_len=10, batch_size=1, seed=0)
    targets = {
        int(sampler.sample(tf.constant(s, tf.int64))[types.TARGET][0])
        for s in range(200)
    }
    assert targets == {5, 6, 7, 8}  # s[4] .. s[7]


def test_eval_examples_first_80_percent_and_targets():
    ds = _ds()
    valid = pipeline.eval_examples(ds, "valid", max_len=3)
    # n = 10: k = 8, history = s[5:8], targets = s[8:].
    np.testing.assert_array_equal(valid.history, [[2, 4, 6]])
    np.testing.assert_array_equal(valid.targets, [[8, 1]])
    test = pipeline.eval_examples(ds, "test", max_len=6)
    # n = 5: k = 4, history right-padded, target s[4:].
    np.testing.assert_array_equal(test.history, [[4, 4, 4, 4, 0, 0]])
    np.testing.assert_array_equal(test.targets, [[2]])


def test_partition_anchors_are_targets_and_history():
    ds = _ds()

    def sampler(anchors, seed):
        del seed
        return anchors + 100, anchors % 2 == 1

    s = pipeline.TrainSampler(ds, 3, 2, seed=0, positive_sampler=sampler)
    b = {k: v.numpy() for k, v in s.sample(tf.constant(0, tf.int64)).items()}
    anchors = b[types.PARTITION_ANCHOR]
    np.testing.assert_array_equal(anchors[:, 0], b[types.TARGET])
    np.testing.assert_array_equal(anchors[:, 1:], b[types.HISTORY])
    np.testing.assert_array_equal(b[types.PARTITION_POSITIVE], anchors + 100)
    expected = (anchors % 2 == 1) & (anchors > 0)
    np.testing.assert_array_equal(b[types.PARTITION_MASK] > 0, expected)


def test_partition_anchors_can_be_the_targets_only():
    ds = _ds()

    def sampler(anchors, seed):
        del seed
        return anchors + 100, tf.ones_like(anchors, tf.bool)

    s = pipeline.TrainSampler(
        ds, 3, 2, seed=0, positive_sampler=sampler, anchors="targets"
    )
    b = {k: v.numpy() for k, v in s.sample(tf.constant(0, tf.int64)).items()}
    np.testing.assert_array_equal(b[types.PARTITION_ANCHOR][:, 0], b[types.TARGET])
    assert b[types.PARTITION_ANCHOR].shape == (2, 1)
    np.testing.assert_array_equal(b[types.PARTITION_MASK], np.ones((2, 1)))


def _many_users(n):
    """n training users of 5 items each (user u's items are distinct)."""
    seqs = [[5 * u + j + 1 for j in range(5)] for u in range(n)]
    return make_dataset(seqs, 5 * n, train=list(range(n)), valid=[], test=[])


def _users(sampler, seed):
    return sampler.draw_users(tf.constant(seed, tf.int64)).numpy()


def test_small_user_sets_keep_the_top_b_draw():
    # Below REJECTION_DRAW_FROM_USERS every batch is what it always was: the
    # top B of one stateless uniform per user.
    sampler = pipeline.TrainSampler(_many_users(50), 3, 8, seed=0)
    for s in range(5):
        seed = tf.constant([s, 7], tf.int64)
        want = tf.math.top_k(tf.random.stateless_uniform([50], seed), 8)
        np.testing.assert_array_equal(
            sampler.draw_users(seed).numpy(), want.indices.numpy()
        )


def test_rejection_draw_gives_distinct_uniform_users(monkeypatch):
    from scipy import stats

    monkeypatch.setattr(pipeline, "REJECTION_DRAW_FROM_USERS", 1)
    n, b, trials = 40, 16, 3000
    sampler = pipeline.TrainSampler(_many_users(n), 3, b, seed=0)
    counts = np.zeros(n)
    pairs = np.zeros((n, n))
    for t in range(trials):
        u = _users(sampler, [t, 1])
        assert len(u) == b and len(set(u.tolist())) == b  # distinct
        assert u.min() >= 0 and u.max() < n
        counts[u] += 1
        pairs[u[0], u[1]] += 1
    # Each user is in a batch with probability b / n ...
    assert stats.chisquare(counts).pvalue > 1e-3
    # ... and the order is random too: the first slot is uniform.
    assert stats.chisquare(pairs.sum(1)).pvalue > 1e-3
    # Deterministic in the seed; a batch is a function of the step alone.
    np.testing.assert_array_equal(_users(sampler, [3, 1]), _users(sampler, [3, 1]))
    batch = sampler.sample(tf.constant(4, tf.int64))
    again = sampler.sample(tf.constant(4, tf.int64))
    np.testing.assert_array_equal(
        batch[types.TARGET].numpy(), again[types.TARGET].numpy()
    )
    assert len(set(batch[types.TARGET].numpy().tolist())) == b


def test_rejection_draw_falls_back_when_draws_repeat(monkeypatch):
    # With one draw per slot among 10 users, a batch of 8 almost always
    # repeats a user: the top-B draw takes over, still distinct.
    monkeypatch.setattr(pipeline, "REJECTION_DRAW_FROM_USERS", 1)
    monkeypatch.setattr(pipeline, "DISTINCT_DRAW_FACTOR", 1)
    sampler = pipeline.TrainSampler(_many_users(10), 3, 8, seed=0)
    for s in range(20):
        u = _users(sampler, [s, 2])
        assert sorted(set(u.tolist())) == sorted(u.tolist()) and len(u) == 8
