"""Functions the layers share (and the models that use them directly).

Shapes are given per function; none holds state.
"""

from __future__ import annotations

import math

import tensorflow as tf

# Logit of a masked position (softmax weight 0 in float32).
NEG_INF = -1e9
# Guards the squash's norm against 0.
_EPS = 1e-9


def squash(m: tf.Tensor, axis: int = -1) -> tf.Tensor:
    """v = |m|^2 / (1 + |m|^2) * m / |m| along ``axis``."""
    sq = tf.reduce_sum(tf.square(m), axis=axis, keepdims=True)
    return m * (sq / (1.0 + sq)) / tf.sqrt(sq + _EPS)


def masked_mean(items: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """[B, L, d], [B, L] -> [B, d] mean over the real items."""
    mask = tf.cast(mask, items.dtype)
    total = tf.einsum("bld,bl->bd", items, mask)
    count = tf.reduce_sum(mask, axis=1, keepdims=True)
    return total / tf.maximum(count, 1.0)


def recency_rank(mask: tf.Tensor, max_len: int) -> tf.Tensor:
    """[B, L] int32 recency rank r(i) = n - 1 - i of each position of
    right-padded histories of n real items (``mask`` [B, L], 1 on them):
    0 for the newest item, clipped into [0, max_len - 1] (padding gets 0)."""
    n = tf.cast(tf.reduce_sum(tf.cast(mask, tf.float32), 1, keepdims=True), tf.int32)
    rank = n - 1 - tf.range(tf.shape(mask)[1])[None]
    return tf.clip_by_value(rank, 0, max_len - 1)


def masked_softmax(logits: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    return tf.nn.softmax(tf.where(mask > 0, logits, NEG_INF), axis=-1)


def project(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """x [..., d] @ kernel [d, d'] as one 2-D matmul (``x @ kernel`` on a
    rank-3/4 x runs as a batch of tiny matmuls on the CPU, ~40x slower)."""
    flat = tf.reshape(x, [-1, tf.shape(x)[-1]]) @ kernel
    return tf.reshape(flat, tf.concat([tf.shape(x)[:-1], tf.shape(kernel)[-1:]], 0))


def dense(
    units: int, seed: int, activation=None, name: str | None = None
) -> tf.keras.layers.Dense:
    """A ``fully_connected`` layer as the reference's: Glorot-uniform
    kernel (TF1's ``xavier_initializer``), zero bias."""
    return tf.keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed),
        bias_initializer="zeros",
        name=name,
    )


def capsule_kernel_initializer(
    dim: int, num_interests: int, seed: int
) -> tf.keras.initializers.Initializer:
    """Glorot uniform of the reference's [d, F*d] capsule transform,
    U(+-sqrt(6 / (d + F d))), for our [d, F, d] kernel (Keras'
    GlorotUniform would take the fans of a 3-D shape differently)."""
    limit = math.sqrt(6.0 / (dim + num_interests * dim))
    return tf.keras.initializers.RandomUniform(-limit, limit, seed=seed)


def stateless_dropout(
    x: tf.Tensor, rate: float, seed: tf.Tensor | None, salt: int
) -> tf.Tensor:
    """Stateless dropout from the step's seed (identity without one)."""
    if seed is None or rate <= 0.0:
        return x
    s = tf.random.experimental.stateless_fold_in(seed, salt, alg="philox")
    return tf.nn.experimental.stateless_dropout(x, rate, seed=s, rng_alg="philox")
