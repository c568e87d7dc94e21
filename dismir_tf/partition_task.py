"""The item-partition task as a TFRS task (the plugin of the paper's
Table 5, for any TFRS model).

``PartitionTask`` is a Keras layer on TFRS's task base, as
``tfrs.tasks.Retrieval`` is: a model adds it to its ``compute_loss`` with a
weight lambda,

    loss = retrieval_task(query, candidate) + lam * partition_task(
        anchors, positives, mask)

fed by the project's tf.data co-occurrence positives
(``pipeline.TrainSampler`` with a ``cooccurrence.PositiveSampler``: the
batch keys ``partition_anchor``, ``partition_positive``,
``partition_mask``).  The loss is :mod:`dismir_tf.partition_loss` (paper
section 4, Theorem 4, eq. 6): for each anchor item i, the cross-entropy of
its co-occurrence positive j against N_o uniformly drawn items, with the
item embeddings as the partition weights (e_i = w_i).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

from dismir_tf.partition_loss import partition_loss_per_example


class PartitionTask(tf.keras.layers.Layer, tfrs.tasks.Task):
    """The item-partition loss over a shared item embedding.

    Args:
      item_embedding: the model's item table, an ``Embedding`` of N + 1 rows
        (row 0 padding); its rows are the partition weights, so the task
        shapes the same embeddings retrieval uses.
      num_negatives: N_o, uniform negatives shared by a batch's anchors
        (paper default 100).

    Call args:
      anchors: [B, A] int item indices (0 = none).
      positives: [B, A] int, a co-occurrence positive of each anchor.
      mask: [B, A] float, 1 on real anchors (default: anchors > 0).
      seed: optional [2] int stateless seed of the negatives (default: a
        stateful draw).

    Returns:
      A scalar: the mean over examples of the mean over their anchors.
    """

    def __init__(
        self,
        item_embedding: tf.keras.layers.Embedding,
        num_negatives: int = 100,
        name: str = "partition",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
        self.item_embedding = item_embedding
        self.num_negatives = num_negatives

    def call(
        self,
        anchors: tf.Tensor,
        positives: tf.Tensor,
        mask: tf.Tensor | None = None,
        seed: tf.Tensor | None = None,
    ) -> tf.Tensor:
        return tf.reduce_mean(self.per_example(anchors, positives, mask, seed))

    def per_example(
        self,
        anchors: tf.Tensor,
        positives: tf.Tensor,
        mask: tf.Tensor | None = None,
        seed: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """[B] each example's mean loss over its anchors (the call's
        arguments); the models average it over the global batch
        (``tf.nn.compute_average_loss``) as a distribution strategy needs.
        """
        if mask is None:
            mask = tf.cast(anchors > 0, tf.float32)
        num_items = self.item_embedding.input_dim - 1
        if seed is None:
            negatives = tf.random.uniform(
                [self.num_negatives], 1, num_items + 1, dtype=tf.int32
            )
        else:
            # As RetrievalModel.sample_items: the same seed draws the same
            # negatives as the project's models.
            negatives = tf.random.stateless_uniform(
                [self.num_negatives],
                seed,
                1,
                num_items + 1,
                dtype=tf.int32,
                alg="philox",
            )
        k = tf.shape(self.item_embedding.embeddings)[1]
        per_anchor = partition_loss_per_example(
            tf.reshape(self.item_embedding(anchors), [-1, k]),
            tf.reshape(self.item_embedding(positives), [-1, k]),
            self.item_embedding(negatives),
            tf.reshape(mask, [-1]),
        )
        per_anchor = tf.reshape(per_anchor, tf.shape(anchors))
        return tf.reduce_sum(per_anchor, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
