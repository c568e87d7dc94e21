"""GRU4Rec: a GRU over the history; its last state is the user vector.

Follows REMI's GRU4Rec (the reference code of docs/reference-runs.md): one
GRU layer of 2d units without biases over the history embeddings, the output
at the last real position (the history is right-padded, so a masked GRU's
final state), and a Dense(d) projection to the item space.  Single-interest.
Trained as every reference baseline: sampled softmax with uniform negatives
shared by the batch (:mod:`dismir_tf.models.sampled_softmax`).

Deviation: REMI applies dropout 0.2 to the history embeddings; it is left
out here, as ComiRec's TF GRU4Rec has none (the reference configuration
the tables keep).
"""

from __future__ import annotations

import tensorflow as tf

from dismir_tf import types
from dismir_tf.config import ModelConfig
from dismir_tf.initializers import weight_seed
from dismir_tf.models.base import Encoded
from dismir_tf.models.sampled_softmax import SampledSoftmaxModel


class GRU4Rec(SampledSoftmaxModel):
    """GRU(2d) over the history, Dense(d) on the last real position."""

    multi_interest = False

    def __init__(self, num_items: int, config: ModelConfig, seed: int = 0, **kwargs):
        super().__init__(num_items, config, seed, **kwargs)
        d = config.embedding_dim
        self.gru = tf.keras.layers.GRU(
            2 * d,
            use_bias=False,
            name="gru",
            kernel_initializer=tf.keras.initializers.GlorotUniform(
                weight_seed(seed, "gru/kernel")
            ),
            recurrent_initializer=tf.keras.initializers.Orthogonal(
                seed=weight_seed(seed, "gru/recurrent_kernel")
            ),
        )
        self.dense = tf.keras.layers.Dense(
            d,
            name="user_dense",
            kernel_initializer=tf.keras.initializers.GlorotUniform(
                weight_seed(seed, "user_dense")
            ),
        )

    def encode(self, features, training=False, seed=None):
        history = features[types.HISTORY]
        mask = history > 0
        items = self.item_embedding(history)  # [B, L, d]
        # With a mask, the returned state is the one after the last real
        # item (masked steps carry the state forward).
        state = self.gru(items, mask=mask, training=training)  # [B, 2d]
        user = self.dense(state)  # [B, d]
        return Encoded(
            interests=user[:, None],
            weights=None,
            routing=None,
            items=items,
            mask=tf.cast(mask, tf.float32),
        )
