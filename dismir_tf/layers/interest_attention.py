"""DisMIR's dynamic preference over interests (paper section 4.3)."""

from __future__ import annotations

import tensorflow as tf

from dismir_tf.layers.ops import masked_mean


@tf.keras.utils.register_keras_serializable(package="dismir_tf")
class InterestAttention(tf.keras.layers.Layer):
    """a_uf = softmax over f of m_uf . mean(history).

    Call args:
      interests: [B, F, d].
      items: [B, L, d] history embeddings.
      mask: [B, L].

    Returns:
      [B, F] attention weights, summing to 1 over f.

    Example:
      >>> import tensorflow as tf
      >>> layer = InterestAttention()
      >>> interests = tf.random.normal([2, 4, 8])
      >>> items = tf.random.normal([2, 5, 8])
      >>> mask = tf.constant([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
      >>> layer(interests, items, mask).shape
      TensorShape([2, 4])
    """

    def call(self, interests, items, mask):
        mean = masked_mean(items, mask)  # [B, d]
        return tf.nn.softmax(tf.einsum("bfd,bd->bf", interests, mean), -1)
