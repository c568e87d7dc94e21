"""retrieval.exact_top_k: the block top-k equals tf.math.top_k exactly."""

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf.retrieval import exact_top_k


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n,k", [(40_000, 50), (30_001, 20), (3_000, 50)])
def test_block_top_k_equals_top_k_ties_and_minus_inf_included(seed, n, k):
    rng = np.random.default_rng(seed)
    # Few distinct values: many ties, across and inside blocks.
    scores = rng.integers(0, 60, size=(7, n)).astype(np.float32)
    scores[0] = 1.0  # one long tie
    scores[1, rng.choice(n, n - 10, replace=False)] = -np.inf
    scores[2] = rng.standard_normal(n)
    scores[3, :k] = 100.0  # the top in block 0
    scores[4, -3:] = 100.0  # the top in the last,
    x = tf.constant(scores)  # padded block
    values, indices = exact_top_k(x, k)
    top = tf.math.top_k(x, k=k, sorted=True)
    np.testing.assert_array_equal(indices.numpy(), top.indices.numpy())
    np.testing.assert_array_equal(values.numpy(), top.values.numpy())


def test_inside_a_tf_function_with_an_unknown_batch():
    fn = tf.function(
        lambda s: exact_top_k(s, 50),
        input_signature=[tf.TensorSpec([None, 50_000], tf.float32)],
    )
    scores = tf.random.stateless_normal([5, 50_000], [1, 2])
    np.testing.assert_array_equal(
        fn(scores)[1].numpy(), tf.math.top_k(scores, 50).indices.numpy()
    )
