"""DNN (YouTube-DNN style): the masked mean of the history, one dense layer.

As in ComiRec's Model_DNN: the user vector is a linear map of the mean of
the history embeddings.  A single-interest model (F = 1).  Trained with the
DisMIR paper's pairwise loss and hard negative, as the paper's baselines.
"""

from __future__ import annotations

import tensorflow as tf

from dismir_tf import types
from dismir_tf.config import ModelConfig
from dismir_tf.initializers import weight_seed
from dismir_tf.layers.ops import masked_mean
from dismir_tf.models.base import Encoded, RetrievalModel


class DNN(RetrievalModel):
    """Mean pooling of the history followed by Dense(d)."""

    multi_interest = False

    def __init__(self, num_items: int, config: ModelConfig, seed: int = 0, **kwargs):
        super().__init__(num_items, config, seed, **kwargs)
        self.dense = tf.keras.layers.Dense(
            config.embedding_dim,
            name="user_dense",
            kernel_initializer=tf.keras.initializers.GlorotUniform(
                weight_seed(seed, "user_dense")
            ),
        )

    def encode(self, features, training=False, seed=None):
        history = features[types.HISTORY]
        mask = tf.cast(history > 0, tf.float32)
        items = self.item_embedding(history)
        user = self.dense(masked_mean(items, mask))
        return Encoded(
            interests=user[:, None], weights=None, routing=None, items=items, mask=mask
        )
