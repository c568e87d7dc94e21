"""Tests of dismir_tf.partition_loss (Theorem 4's contrastive loss)."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

import dismir_tf  # noqa: F401  (legacy Keras; conftest.py sets it first)
from dismir_tf.partition_loss import (
    partition_logits,
    partition_loss_per_example,
)

LEARNING_RATE = 0.1


def numpy_reference(
    anchor: np.ndarray, positive: np.ndarray, negatives: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(logits [B, 1 + No], loss [B]) with explicit loops over the batch."""
    batch = anchor.shape[0]
    logits = []
    for b in range(batch):
        negs = negatives if negatives.ndim == 2 else negatives[b]
        logits.append([anchor[b] @ positive[b]] + [anchor[b] @ neg for neg in negs])
    logits = np.array(logits, np.float64)
    top = logits.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return logits, log_z - logits[:, 0]


def random_inputs(
    seed: int, batch: int, negatives: int, dim: int, shared: bool
) -> tuple[np.ndarray, ...]:
    rng = np.random.RandomState(seed)
    anchor = rng.normal(size=(batch, dim)).astype(np.float32)
    positive = rng.normal(size=(batch, dim)).astype(np.float32)
    shape = (negatives, dim) if shared else (batch, negatives, dim)
    return anchor, positive, rng.normal(size=shape).astype(np.float32)


CASES = (
    dict(
        testcase_name="shared_negatives",
        seed=0,
        batch=5,
        negatives=7,
        dim=4,
        shared=True,
    ),
    dict(
        testcase_name="per_anchor_negatives",
        seed=1,
        batch=3,
        negatives=11,
        dim=8,
        shared=False,
    ),
)


class PartitionLossTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(*CASES)
    def test_matches_numpy(self, seed, batch, negatives, dim, shared):
        anchor, positive, negs = random_inputs(seed, batch, negatives, dim, shared)
        expected_logits, expected_loss = numpy_reference(anchor, positive, negs)
        logits = partition_logits(anchor, positive, negs)
        self.assertEqual(logits.shape, (batch, 1 + negatives))
        self.assertAllClose(logits, expected_logits, rtol=1e-5, atol=1e-5)
        self.assertAllClose(
            partition_loss_per_example(anchor, positive, negs),
            expected_loss,
            rtol=1e-5,
            atol=1e-5,
        )

    def test_hand_computed(self):
        # w_i = (1, 0), w_pos = (2, 0), negatives (0, 1) and (1, 0):
        # logits [2, 0, 1]; loss = log(e^2 + e^0 + e^1) - 2.
        loss = partition_loss_per_example(
            tf.constant([[1.0, 0.0]]),
            tf.constant([[2.0, 0.0]]),
            tf.constant([[0.0, 1.0], [1.0, 0.0]]),
        )
        self.assertAllClose(loss, [np.log(np.e**2 + 1 + np.e) - 2])

    def test_mask(self):
        anchor, positive, negs = random_inputs(2, 4, 6, 3, shared=False)
        _, expected = numpy_reference(anchor, positive, negs)
        # An infinite anchor would give NaN under a multiplicative mask.
        anchor[1] = np.inf
        mask = np.array([True, False, True, False])
        loss = partition_loss_per_example(anchor, positive, negs, mask)
        self.assertAllClose(loss, np.where(mask, expected, 0.0), rtol=1e-5)
        numeric = partition_loss_per_example(
            anchor, positive, negs, mask.astype(np.float32)
        )
        self.assertAllClose(numeric, loss)

    def test_masked_entries_have_no_gradient(self):
        anchor, positive, negs = random_inputs(3, 3, 5, 4, shared=True)
        anchor = tf.Variable(anchor)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(
                partition_loss_per_example(
                    anchor, positive, negs, tf.constant([True, False, True])
                )
            )
        gradient = tape.gradient(loss, anchor).numpy()
        self.assertAllEqual(gradient[1], np.zeros(4))
        self.assertGreater(np.abs(gradient[0]).sum(), 0.0)

    @parameterized.named_parameters(*CASES)
    def test_gradient_step_favours_positive(self, seed, batch, negatives, dim, shared):
        anchor, positive, negs = (
            tf.Variable(a) for a in random_inputs(seed, batch, negatives, dim, shared)
        )

        def margins() -> np.ndarray:
            # w_i . w_pos minus the log-sum-exp of w_i . w_neg, per anchor.
            logits = partition_logits(anchor, positive, negs)
            return (logits[:, 0] - tf.reduce_logsumexp(logits[:, 1:], axis=1)).numpy()

        before = margins()
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(partition_loss_per_example(anchor, positive, negs))
        variables = [anchor, positive, negs]
        for variable, gradient in zip(variables, tape.gradient(loss, variables)):
            variable.assign_sub(LEARNING_RATE * gradient)
        after = margins()
        self.assertTrue(np.all(after > before), msg=f"{before} -> {after}")
        # dL/dlogit = softmax - onehot(0): negative for the positive column.
        logits = tf.Variable(partition_logits(anchor, positive, negs))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.reduce_logsumexp(logits, axis=1) - logits[:, 0])
        gradient = tape.gradient(loss, logits).numpy()
        self.assertTrue(np.all(gradient[:, 0] < 0))
        self.assertTrue(np.all(gradient[:, 1:] > 0))

    def test_bad_negatives_rank(self):
        with self.assertRaisesRegex(ValueError, "rank 1"):
            partition_logits(tf.ones([2, 3]), tf.ones([2, 3]), tf.ones([3]))


if __name__ == "__main__":
    tf.test.main()
