"""Tests of dismir_tf.optimizers: the lazy Adam update of embedding tables
against a NumPy reference, with and without XLA, and --embedding_update."""

import numpy as np
import pytest
import tensorflow as tf

import dismir_tf  # noqa: F401  (legacy Keras; conftest.py sets it first)
from dismir_tf import optimizers
from dismir_tf.config import TrainConfig
from dismir_tf.errors import ConfigError

N, D, ROWS, STEPS, LR = 40, 3, 25, 15, 0.01


def _batches(seed=1):
    rng = np.random.default_rng(seed)
    # Rows N/2.. are never gathered.
    return [
        (
            rng.integers(0, N // 2, size=ROWS).astype(np.int32),
            rng.normal(size=(ROWS, D)).astype(np.float32),
        )
        for _ in range(STEPS)
    ]


def _reference_lazy(w0, batches, b1=0.9, b2=0.999, eps=1e-7):
    """Lazy Adam in float64: repeated rows summed, only the seen rows'
    moments and values updated, Adam's bias-corrected step size."""
    w = w0.astype(np.float64).copy()
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, (idx, vals) in enumerate(batches, 1):
        g = np.zeros_like(w)
        np.add.at(g, idx, vals)
        rows = np.unique(idx)
        m[rows] = b1 * m[rows] + (1 - b1) * g[rows]
        v[rows] = b2 * v[rows] + (1 - b2) * g[rows] ** 2
        alpha = LR * np.sqrt(1 - b2**t) / (1 - b1**t)
        w[rows] -= alpha * m[rows] / (np.sqrt(v[rows]) + eps)
    return w


def _train(optimizer_cls, batches, w0, jit):
    var = tf.Variable(w0)
    opt = optimizer_cls(LR)
    opt.jit_compile = jit

    @tf.function(jit_compile=jit)
    def step(idx, vals):
        opt.apply_gradients([(tf.IndexedSlices(vals, idx, tf.constant([N, D])), var)])

    for idx, vals in batches:
        step(tf.constant(idx), tf.constant(vals))
    return var.numpy()


@pytest.mark.parametrize("jit", [False, True])
def test_lazy_adam_matches_the_reference(jit):
    w0 = np.random.default_rng(0).normal(size=(N, D)).astype(np.float32)
    batches = _batches()
    got = _train(optimizers.LazyAdam, batches, w0, jit)
    np.testing.assert_allclose(got, _reference_lazy(w0, batches), atol=2e-6)
    # Rows never gathered keep their values; the dense update moves them.
    seen = np.unique(np.concatenate([i for i, _ in batches]))
    unseen = np.setdiff1d(np.arange(N), seen)
    assert len(unseen) > 0
    np.testing.assert_array_equal(got[unseen], w0[unseen])
    dense = _train(optimizers.DenseUpdateAdam, batches, w0, jit)
    assert not np.allclose(dense[seen], got[seen], atol=1e-6)


def test_dense_rows_take_keras_adam():
    w0 = np.ones((4, 2), np.float32)
    var_lazy, var_keras = tf.Variable(w0), tf.Variable(w0)
    grad = tf.constant(np.arange(8, dtype=np.float32).reshape(4, 2))
    optimizers.LazyAdam(LR).apply_gradients([(grad, var_lazy)])
    tf.keras.optimizers.Adam(LR).apply_gradients([(grad, var_keras)])
    np.testing.assert_allclose(var_lazy.numpy(), var_keras.numpy())


@pytest.mark.parametrize("jit", [False, True])
def test_sum_repeated_rows(jit):
    fn = tf.function(optimizers.sum_repeated_rows, jit_compile=jit)
    idx = tf.constant([3, 1, 3, 0, 1, 3])
    vals = tf.constant(np.arange(6, dtype=np.float32)[:, None])
    np.testing.assert_array_equal(
        fn(vals, idx, 5).numpy().ravel(),
        [0 + 2 + 5, 1 + 4, 0 + 2 + 5, 3, 1 + 4, 0 + 2 + 5],
    )
    # Many repeats of few ids, against NumPy (int64 ids as Keras may give).
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, 3000)
    v = rng.normal(size=(3000, 4)).astype(np.float32)
    want = np.zeros((50, 4), np.float64)
    np.add.at(want, ids, v)
    np.testing.assert_allclose(
        fn(tf.constant(v), tf.constant(ids, tf.int64), 50).numpy(),
        want[ids],
        rtol=1e-5,
        atol=1e-4,
    )


def test_auto_is_lazy_only_for_large_tables():
    assert optimizers.resolve_embedding_update("auto", 12_102) == "dense"
    assert (
        optimizers.resolve_embedding_update("auto", optimizers.LAZY_FROM_ROWS)
        == "dense"
    )
    assert (
        optimizers.resolve_embedding_update("auto", optimizers.LAZY_FROM_ROWS + 1)
        == "lazy"
    )
    assert optimizers.resolve_embedding_update("dense", 10**6) == "dense"
    assert optimizers.resolve_embedding_update("lazy", 10) == "lazy"
    with pytest.raises(ValueError):
        optimizers.resolve_embedding_update("sparse", 10)
    with pytest.raises(ConfigError, match="embedding_update"):
        TrainConfig(embedding_update="sparse")


def test_make_optimizer_follows_the_config():
    from dismir_tf import training

    lazy = training.make_optimizer(TrainConfig(embedding_update="lazy"), 50)
    assert isinstance(lazy, optimizers.LazyAdam) and lazy.jit_compile
    dense = training.make_optimizer(TrainConfig(), 50)
    assert type(dense) is optimizers.DenseUpdateAdam
    big = training.make_optimizer(TrainConfig(), 200_000)
    assert isinstance(big, optimizers.LazyAdam)
    plain = training.make_optimizer(TrainConfig(jit_compile=False), 50)
    assert type(plain) is tf.keras.optimizers.Adam
