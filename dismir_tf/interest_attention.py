"""Attention over a user's interests.

``InterestAttention`` is DisMIR's dynamic preference over interests (section
4.3): a_uf = softmax_f(m_uf . e_bar_u) with e_bar_u the masked mean of the
history embeddings.  ``LabelAwareAttention`` is the training readout of MIND
and ComiRec: the interests are weighted by their agreement with the target
item, either softly (MIND: softmax of (m_f . e_t)^p) or by a hard argmax
(ComiRec: the single interest closest to the target).
"""

from __future__ import annotations

import tensorflow as tf


def masked_mean(items: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """[B, L, d], [B, L] -> [B, d] mean over the real items."""
    mask = tf.cast(mask, items.dtype)
    total = tf.einsum("bld,bl->bd", items, mask)
    count = tf.reduce_sum(mask, axis=1, keepdims=True)
    return total / tf.maximum(count, 1.0)


@tf.keras.utils.register_keras_serializable(package="dismir_tf")
class InterestAttention(tf.keras.layers.Layer):
    """a_uf = softmax over f of m_uf . mean(history).

    Call args:
      interests: [B, F, d].
      items: [B, L, d] history embeddings.
      mask: [B, L].

    Returns:
      [B, F] attention weights, summing to 1 over f.
    """

    def call(self, interests, items, mask):
        mean = masked_mean(items, mask)                         # [B, d]
        return tf.nn.softmax(tf.einsum("bfd,bd->bf", interests, mean), -1)


@tf.keras.utils.register_keras_serializable(package="dismir_tf")
class LabelAwareAttention(tf.keras.layers.Layer):
    """Training readout of MIND (soft) and ComiRec (hard).

    Args:
      hard: bool. Pick the single interest with the largest m_f . e_t
        (ComiRec) instead of the soft weighting (MIND).
      power: float, default 1. MIND's exponent p on the logits.

    Call args:
      interests: [B, F, d]; target: [B, d] target item embeddings.

    Returns:
      [B, d] the user vector for the target.
    """

    def __init__(self, hard: bool = False, power: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.hard = hard
        self.power = power

    def call(self, interests, target):
        logits = tf.einsum("bfd,bd->bf", interests, target)
        if self.hard:
            weights = tf.one_hot(tf.argmax(logits, axis=-1),
                                 tf.shape(interests)[1], dtype=interests.dtype)
        else:
            weights = tf.nn.softmax(tf.pow(logits, self.power)
                                    if self.power != 1.0 else logits, -1)
        return tf.einsum("bf,bfd->bd", weights, interests)

    def get_config(self):
        config = super().get_config()
        config.update(hard=self.hard, power=self.power)
        return config
