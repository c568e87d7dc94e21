"""Re4's re-construct flow (Zhang et al., WWW '22; dismir_tf/models/re4.py)."""

from __future__ import annotations

import tensorflow as tf

from dismir_tf.initializers import he_normal, weight_seed
from dismir_tf.layers.ops import NEG_INF as _NEG_INF


@tf.keras.utils.register_keras_serializable(package="dismir_tf")
class InterestReconstructor(tf.keras.layers.Layer):
    """Re4's re-construct decoder: interests -> one vector per position.

    r = dense(m_k) reshaped to L proposals [L, d];
    weights[l, p] = softmax_p(w_l . tanh(W3 r_p)) over non-padding p;
    output[l] = sum_p weights[l, p] W5 r_p.

    Args:
      max_len: L.
      seed: seeds the initialisers.

    Call args:
      interests: [B, F, d]; mask: [B, L'] 1 on real items (L' <= L).

    Returns:
      [B, F, L', d].

    Example:
      >>> import tensorflow as tf
      >>> layer = InterestReconstructor(max_len=5)
      >>> interests = tf.random.normal([2, 4, 8])
      >>> mask = tf.constant([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
      >>> layer(interests, mask).shape
      TensorShape([2, 4, 5, 8])
    """

    def __init__(self, max_len: int, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.max_len = max_len
        self.seed = seed

    def build(self, input_shape):
        d = int(input_shape[-1])
        self.dense = tf.keras.layers.Dense(
            self.max_len * d,
            kernel_initializer=he_normal(d, weight_seed(self.seed, "proposals")),
            name="proposals",
        )
        self.dense.build(tf.TensorShape([None, d]))
        self.w3 = self.add_weight(
            "w3", [d, d], initializer=he_normal(d, weight_seed(self.seed, "w3"))
        )
        self.query = self.add_weight(
            "query",
            [self.max_len, d],
            initializer=he_normal(d, weight_seed(self.seed, "query")),
        )
        self.w5 = self.add_weight(
            "w5", [d, d], initializer=he_normal(d, weight_seed(self.seed, "w5"))
        )
        super().build(input_shape)

    def call(self, interests, mask):
        d = tf.shape(interests)[-1]
        length = tf.shape(mask)[1]
        proposals = tf.reshape(
            self.dense(interests),
            tf.concat([tf.shape(interests)[:2], [self.max_len, d]], 0),
        )
        proposals = proposals[:, :, :length]  # [B,F,L,d]
        logits = tf.einsum(
            "bfpe,le->bflp", tf.tanh(proposals @ self.w3), self.query[:length]
        )
        valid = tf.cast(mask, logits.dtype)[:, None, None, :] > 0
        weights = tf.nn.softmax(tf.where(valid, logits, _NEG_INF), axis=-1)
        return tf.einsum("bflp,bfpd->bfld", weights, proposals @ self.w5)

    def get_config(self):
        config = super().get_config()
        config.update(max_len=self.max_len, seed=self.seed)
        return config
