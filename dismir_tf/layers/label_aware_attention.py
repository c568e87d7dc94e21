"""The training readout of MIND and ComiRec: interests weighted by their
agreement with the target item.
"""

from __future__ import annotations

import tensorflow as tf


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

    Example:
      >>> import tensorflow as tf
      >>> layer = LabelAwareAttention(hard=True)
      >>> interests = tf.random.normal([2, 4, 8])
      >>> target = tf.random.normal([2, 8])
      >>> layer(interests, target).shape
      TensorShape([2, 8])
    """

    def __init__(self, hard: bool = False, power: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.hard = hard
        self.power = power

    def call(self, interests, target):
        logits = tf.einsum("bfd,bd->bf", interests, target)
        if self.hard:
            weights = tf.one_hot(
                tf.argmax(logits, axis=-1),
                tf.shape(interests)[1],
                dtype=interests.dtype,
            )
        else:
            weights = tf.nn.softmax(
                tf.pow(logits, self.power) if self.power != 1.0 else logits, -1
            )
        return tf.einsum("bf,bfd->bd", weights, interests)

    def get_config(self):
        config = super().get_config()
        config.update(hard=self.hard, power=self.power)
        return config
