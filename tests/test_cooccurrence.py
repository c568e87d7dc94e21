"""Tests of dismir_tf.cooccurrence: the graph S and the positive sampler."""

import numpy as np
import scipy.stats
import tensorflow as tf
from absl.testing import parameterized

import dismir_tf  # noqa: F401  (legacy Keras; conftest.py sets it first)
from dismir_tf.cooccurrence import (
    CooccurrenceGraph,
    PositiveSampler,
    build_cooccurrence,
    cooccurrence_nnz_bound,
)
from dismir_tf.data.dataset import SequenceDataset

NUM_DRAWS = 20_000
# Seeded draws make the test deterministic; 1e-3 keeps the seed from mattering.
MIN_P_VALUE = 1e-3

# Four users, five items.  u0, u1, u2 train; u3 test.
#   u0: 1 2 3 1   (a repeat visit of 1: still one user for each pair)
#   u1: 2 3 4
#   u2: 1 3
#   u3: 4 5 1 2   (test user: none of these pairs may count)
# Pairs over the train users: u0 {1,2,3} -> (1,2) (1,3) (2,3);
# u1 {2,3,4} -> (2,3) (2,4) (3,4); u2 {1,3} -> (1,3).
#
#          j=0  1  2  3  4  5     row total
# co = i=0 [ 0  0  0  0  0  0 ]   0  (padding)
#      i=1 [ 0  0  1  2  0  0 ]   3
#      i=2 [ 0  1  0  2  1  0 ]   4
#      i=3 [ 0  2  2  0  1  0 ]   5
#      i=4 [ 0  0  1  1  0  0 ]   2
#      i=5 [ 0  0  0  0  0  0 ]   0  (only the test user has item 5)
EXPECTED_CO = np.array(
    [
        [0, 0, 0, 0, 0, 0],
        [0, 0, 1, 2, 0, 0],
        [0, 1, 0, 2, 1, 0],
        [0, 2, 2, 0, 1, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
)


def sample_positives_numpy(
    graph: CooccurrenceGraph, anchors: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The plain NumPy reference of :class:`PositiveSampler`, one row at a
    time.

    Args:
      graph: The co-occurrence graph.
      anchors: [B] int item indices in 0..N.
      rng: The random generator.

    Returns:
      (positives [B] int32, has_positive [B] bool), with the same meaning as
      :meth:`PositiveSampler.__call__` (not the same random stream).
    """
    anchors = np.asarray(anchors)
    positives = np.zeros(anchors.shape, np.int32)
    has_positive = np.zeros(anchors.shape, bool)
    for n, anchor in enumerate(anchors):
        neighbours, counts = graph.row(int(anchor))
        if len(neighbours):
            # One slot per co-occurring user: uniform slot = j ~ S_anchor.
            slots = np.repeat(neighbours, counts)
            positives[n] = slots[rng.integers(len(slots))]
            has_positive[n] = True
    return positives, has_positive


def _dataset(
    sequences: list[list[int]],
    num_items: int,
    train: list[int],
    valid: list[int],
    test: list[int],
) -> SequenceDataset:
    lengths = [len(s) for s in sequences]
    return SequenceDataset(
        name="tiny",
        item_ids=np.array([""] + [f"i{n}" for n in range(1, num_items + 1)]),
        user_ids=np.array([f"u{n}" for n in range(len(sequences))]),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        items=np.concatenate(sequences).astype(np.int32),
        timestamps=None,
        train_users=np.array(train, np.int32),
        valid_users=np.array(valid, np.int32),
        test_users=np.array(test, np.int32),
    )


def tiny_dataset() -> SequenceDataset:
    return _dataset(
        [[1, 2, 3, 1], [2, 3, 4], [1, 3], [4, 5, 1, 2]],
        num_items=5,
        train=[0, 1, 2],
        valid=[],
        test=[3],
    )


def random_dataset(
    seed: int, num_users: int = 60, num_items: int = 25
) -> SequenceDataset:
    rng = np.random.RandomState(seed)
    sequences = [
        list(rng.randint(1, num_items + 1, size=rng.randint(2, 12)))
        for _ in range(num_users)
    ]
    users = rng.permutation(num_users)
    return _dataset(
        sequences,
        num_items,
        train=list(users[:40]),
        valid=list(users[40:50]),
        test=list(users[50:]),
    )


def dense_reference(ds: SequenceDataset) -> np.ndarray:
    """[N + 1, N + 1] co over train users from a dense binary matrix."""
    binary = np.zeros((ds.num_users, ds.num_items + 1), np.int64)
    for user in ds.train_users:
        binary[user, ds.sequence(user)] = 1
    co = binary.T @ binary
    np.fill_diagonal(co, 0)
    return co


class BuildCooccurrenceTest(tf.test.TestCase, parameterized.TestCase):
    def test_hand_made_matrix(self):
        graph = build_cooccurrence(tiny_dataset())
        self.assertAllEqual(graph.to_scipy().toarray(), EXPECTED_CO)
        self.assertEqual(graph.nnz, 10)
        self.assertAllEqual(graph.indptr, [0, 0, 2, 5, 8, 10, 10])
        self.assertEqual(graph.indptr.dtype, np.int64)
        self.assertEqual(graph.indices.dtype, np.int32)
        self.assertEqual(graph.counts.dtype, np.int32)
        self.assertAllEqual(graph.row_totals(), [0, 3, 4, 5, 2, 0])
        self.assertAllClose(graph.row_probabilities(3), [0, 2 / 5, 2 / 5, 0, 1 / 5, 0])
        self.assertAllEqual(graph.row_probabilities(5), np.zeros(6))

    def test_explicit_users(self):
        # Only u1 {2, 3, 4}: pairs (2,3), (2,4), (3,4), once each.
        graph = build_cooccurrence(tiny_dataset(), users=np.array([1]))
        expected = np.zeros((6, 6), np.int64)
        for i, j in [(2, 3), (2, 4), (3, 4)]:
            expected[i, j] = expected[j, i] = 1
        self.assertAllEqual(graph.to_scipy().toarray(), expected)

    @parameterized.named_parameters(
        ("one_row_blocks", 1), ("small_blocks", 40), ("one_block", 1 << 20)
    )
    def test_blocks_match_dense_reference(self, block_entries):
        ds = random_dataset(seed=3)
        graph = build_cooccurrence(ds, block_entries=block_entries)
        self.assertAllEqual(graph.to_scipy().toarray(), dense_reference(ds))
        self.assertLessEqual(graph.nnz, cooccurrence_nnz_bound(ds))
        for item in range(ds.num_items + 1):
            neighbours, _ = graph.row(item)
            self.assertAllEqual(neighbours, np.sort(neighbours))

    def test_log_messages(self):
        messages = []
        build_cooccurrence(tiny_dataset(), log=messages.append)
        self.assertLen(messages, 2)
        self.assertIn("10 entries", messages[-1])

    def test_invalid_arguments(self):
        ds = tiny_dataset()
        with self.assertRaisesRegex(ValueError, "distinct"):
            build_cooccurrence(ds, users=np.array([0, 0]))
        with self.assertRaisesRegex(ValueError, "must lie in"):
            build_cooccurrence(ds, users=np.array([4]))
        with self.assertRaisesRegex(ValueError, "training users"):
            build_cooccurrence(ds, users=np.array([0, 3]))  # 3 is a test user.
        with self.assertRaisesRegex(ValueError, "1-D integer"):
            build_cooccurrence(ds, users=np.array([[0]]))
        with self.assertRaisesRegex(ValueError, "block_entries"):
            build_cooccurrence(ds, block_entries=0)
        with self.assertRaisesRegex(ValueError, "exceeds max_nnz=5"):
            build_cooccurrence(ds, max_nnz=5)
        with self.assertRaisesRegex(IndexError, "outside"):
            build_cooccurrence(ds).row(6)

    def test_graph_validation(self):
        good = build_cooccurrence(tiny_dataset())
        with self.assertRaisesRegex(ValueError, "indptr has shape"):
            CooccurrenceGraph(4, good.indptr, good.indices, good.counts)
        with self.assertRaisesRegex(ValueError, "int64"):
            CooccurrenceGraph(
                5, good.indptr.astype(np.int32), good.indices, good.counts
            )
        with self.assertRaisesRegex(ValueError, "int32"):
            CooccurrenceGraph(
                5, good.indptr, good.indices.astype(np.int64), good.counts
            )


class PositiveSamplerTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.graph = build_cooccurrence(random_dataset(seed=11))
        self.sampler = PositiveSampler(self.graph)
        totals = self.graph.row_totals()
        # A few rows with several neighbours of unequal weight.
        self.rows = [int(i) for i in np.argsort(-totals, kind="stable")[:3]]

    def _assert_matches_distribution(self, draws: np.ndarray, item: int):
        neighbours, counts = self.graph.row(item)
        observed = np.array([np.sum(draws == j) for j in neighbours])
        self.assertEqual(observed.sum(), len(draws))  # Only neighbours drawn.
        expected = counts / counts.sum() * len(draws)
        p_value = scipy.stats.chisquare(observed, expected).pvalue
        self.assertGreater(p_value, MIN_P_VALUE, msg=f"row {item}")

    def test_offsets_enumerate_row_exactly(self):
        for item in self.rows:
            neighbours, counts = self.graph.row(item)
            total = int(counts.sum())
            positives, has_positive = self.sampler.positives_at(
                tf.fill([total], item), tf.range(total, dtype=tf.int64)
            )
            self.assertAllEqual(positives, np.repeat(neighbours, counts))
            self.assertTrue(np.all(has_positive.numpy()))

    def test_frequencies_match_row(self):
        anchors = np.repeat(self.rows, NUM_DRAWS).astype(np.int32)
        positives, has_positive = self.sampler(anchors, tf.constant([1, 2]))
        self.assertEqual(positives.dtype, tf.int32)
        self.assertTrue(np.all(has_positive.numpy()))
        for n, item in enumerate(self.rows):
            self._assert_matches_distribution(
                positives.numpy()[n * NUM_DRAWS : (n + 1) * NUM_DRAWS], item
            )

    def test_numpy_reference_matches_row(self):
        rng = np.random.default_rng(5)
        for item in self.rows:
            positives, has_positive = sample_positives_numpy(
                self.graph, np.full(NUM_DRAWS // 4, item), rng
            )
            self.assertTrue(np.all(has_positive))
            self._assert_matches_distribution(positives, item)

    def test_empty_rows_flagged(self):
        graph = build_cooccurrence(tiny_dataset())
        sampler = PositiveSampler(graph)
        anchors = tf.constant([0, 5, 1, 4, 5], tf.int64)
        positives, has_positive = sampler(anchors, tf.constant([3, 4]))
        self.assertAllEqual(has_positive, [False, False, True, True, False])
        self.assertAllEqual(positives.numpy()[[0, 1, 4]], [0, 0, 0])
        self.assertIn(int(positives[2]), (2, 3))
        self.assertIn(int(positives[3]), (2, 3))
        reference, reference_has = sample_positives_numpy(
            graph, anchors.numpy(), np.random.default_rng(0)
        )
        self.assertAllEqual(reference_has, has_positive)
        self.assertAllEqual(reference[[0, 1, 4]], [0, 0, 0])

    def test_empty_graph(self):
        ds = tiny_dataset()
        graph = build_cooccurrence(ds, users=np.array([], np.int32))
        self.assertEqual(graph.nnz, 0)
        positives, has_positive = PositiveSampler(graph)(
            tf.constant([0, 1, 2]), tf.constant([0, 0])
        )
        self.assertAllEqual(positives, [0, 0, 0])
        self.assertAllEqual(has_positive, [False, False, False])

    def test_deterministic_for_seed(self):
        anchors = tf.constant(np.repeat(self.rows, 200), tf.int32)
        first, _ = self.sampler(anchors, tf.constant([7, 9], tf.int64))
        again, _ = self.sampler(anchors, tf.constant([7, 9], tf.int64))
        other, _ = self.sampler(anchors, tf.constant([7, 10], tf.int64))
        self.assertAllEqual(first, again)
        self.assertNotAllEqual(first, other)

    def test_inside_dataset_map(self):
        anchors = tf.constant(np.repeat(self.rows, 50), tf.int32)
        seed_base = 13
        dataset = tf.data.Dataset.range(3).map(
            lambda step: self.sampler(
                anchors, tf.stack([tf.constant(seed_base, tf.int64), step])
            )
        )
        for step, (positives, has_positive) in enumerate(dataset):
            eager, eager_has = self.sampler(
                anchors, tf.constant([seed_base, step], tf.int64)
            )
            self.assertAllEqual(positives, eager)
            self.assertAllEqual(has_positive, eager_has)

    def test_any_anchor_shape(self):
        anchors = tf.constant([[self.rows[0], 0], [self.rows[1], 0]])
        positives, has_positive = self.sampler(anchors, tf.constant([1, 1]))
        self.assertEqual(positives.shape, (2, 2))
        self.assertAllEqual(has_positive, [[True, False], [True, False]])


if __name__ == "__main__":
    tf.test.main()


def _global_cumulative_draws(graph, anchors, seed):
    """The sampler as it was before its tables moved to cumulative counts
    within each row: one int64 cumulative sum over every entry and a
    searchsorted of row start + offset (same random bits)."""
    cumulative = np.cumsum(graph.counts.astype(np.int64))
    before = np.concatenate([[0], cumulative])[graph.indptr]  # [N + 2]
    low, high = before[anchors], before[anchors + 1]
    bits = tf.random.stateless_uniform(
        anchors.shape, seed=seed, minval=None, maxval=None, dtype=tf.int64
    ).numpy() & ((1 << 63) - 1)
    offsets = bits % np.maximum(high - low, 1)
    entry = np.minimum(
        np.searchsorted(cumulative, low + offsets, side="right"), len(cumulative) - 1
    )
    return np.where(high > low, graph.indices[entry], 0)


class SamplerTablesTest(tf.test.TestCase):
    """The compact tables (8 bytes an entry, binary search within a row)
    draw exactly the positives of the global-cumulative tables, on a
    mid-size planted set, and build_positive_sampler (the training path,
    arrays reused in place) equals the sampler of the graph."""

    def test_same_draws_as_the_global_cumulative_sampler(self):
        from dismir_tf.config import SyntheticConfig
        from dismir_tf.cooccurrence import build_positive_sampler
        from dismir_tf.data.synthetic import generate

        ds, _ = generate(
            SyntheticConfig(num_users=1500, num_items=900, num_groups=9, seed=5)
        )
        graph = build_cooccurrence(ds)
        kept = (graph.indptr.copy(), graph.indices.copy(), graph.counts.copy())
        sampler = PositiveSampler(graph)
        # The graph is left as it was.
        for before, after in zip(kept, (graph.indptr, graph.indices, graph.counts)):
            np.testing.assert_array_equal(before, after)
        consumed = build_positive_sampler(ds)
        rng = np.random.default_rng(0)
        for seed in range(5):
            anchors = rng.integers(0, ds.num_items + 1, size=4096)
            tf_seed = tf.constant([seed, 7], tf.int64)
            want = _global_cumulative_draws(graph, anchors, tf_seed)
            got, _ = sampler(tf.constant(anchors), tf_seed)
            np.testing.assert_array_equal(got.numpy(), want)
            got2, _ = consumed(tf.constant(anchors), tf_seed)
            np.testing.assert_array_equal(got2.numpy(), want)

    def test_row_totals_past_int32_use_int64(self):
        from dismir_tf.cooccurrence import _row_cumulative

        big = np.iinfo(np.int32).max
        counts = np.array([5, big, 3, 1, 2], np.int32)
        indptr = np.array([0, 0, 3, 5], np.int64)
        within = _row_cumulative(counts.copy(), indptr, in_place=True)
        self.assertEqual(within.dtype, np.int64)
        np.testing.assert_array_equal(within, [5, 5 + big, 8 + big, 1, 3])
        small = _row_cumulative(
            np.array([1, 2, 3], np.int32), np.array([0, 2, 3], np.int64), in_place=False
        )
        self.assertEqual(small.dtype, np.int32)
        np.testing.assert_array_equal(small, [1, 3, 3])
