"""The item-partition contrastive loss of DisMIR (Theorem 4, eq. 6).

With item embeddings as partition weights (``e_i = w_i``, d = K), Theorem 4
writes the overlapped partition objective of eq. 4 as

    L_Partition = sum_i E_{j ~ M(S_i)} log softmax_j'(w_i . w_j')[j],

a softmax over *all* N items j'.  It is estimated here per anchor i by

* one positive j drawn from S_i (dismir_tf.cooccurrence.PositiveSampler),
  which is an unbiased one-sample estimate of the expectation over M(S_i);
* N_o uniformly drawn negatives standing in for the rest of the catalogue
  in the partition function ``sum_j' exp(w_i . w_j')``.  Their sum is,
  up to the constant factor N / N_o, a Monte-Carlo estimate of it; as in the
  paper ("we sample N_o items to approximate the rest of the items") the
  factor is not applied, which makes this the InfoNCE form of the loss.  A
  negative that happens to equal the positive is kept, as in the full
  softmax, where j itself is one of the j'.

This module returns the per-anchor cross-entropy ``-log softmax[0]``, i.e.
the *negated* log-likelihood of Theorem 4, so that eq. 6 is minimised as
``L_Rec + lambda * mean(partition loss)``.  The Keras layer and TFRS task
around it, which every model and a TFRS model's plugin use, is
``dismir_tf.partition_task.PartitionTask``.
"""

from __future__ import annotations

import tensorflow as tf

POSITIVE_COLUMN = 0  # The positive's logit comes first, the negatives after.
_SHARED_NEGATIVES_RANK = 2  # negatives [No, K], the same for every anchor.
_PER_ANCHOR_NEGATIVES_RANK = 3  # negatives [B, No, K].


def partition_logits(
    anchor: tf.Tensor, positive: tf.Tensor, negatives: tf.Tensor
) -> tf.Tensor:
    """The logits ``w_i . w_j`` of the positive and the negatives.

    Args:
      anchor: [B, K] partition weights w_i of the anchor items.
      positive: [B, K] partition weights w_j of their positives.
      negatives: [No, K] negatives shared by the batch, or [B, No, K] negatives
        per anchor.

    Returns:
      [B, 1 + No] logits: column 0 is ``w_i . w_pos``, column 1 + n is
      ``w_i . w_neg_n``.

    Raises:
      ValueError: ``negatives`` is neither rank 2 nor rank 3.
    """
    anchor = tf.convert_to_tensor(anchor)
    positive = tf.convert_to_tensor(positive, dtype=anchor.dtype)
    negatives = tf.convert_to_tensor(negatives, dtype=anchor.dtype)
    positive_logit = tf.reduce_sum(anchor * positive, axis=-1, keepdims=True)  # [B, 1]
    rank = negatives.shape.rank
    if rank == _SHARED_NEGATIVES_RANK:
        negative_logits = tf.matmul(anchor, negatives, transpose_b=True)  # [B, No]
    elif rank == _PER_ANCHOR_NEGATIVES_RANK:
        negative_logits = tf.einsum("bk,bnk->bn", anchor, negatives)
    else:
        raise ValueError(f"negatives must be [No, K] or [B, No, K], got rank {rank}")
    return tf.concat([positive_logit, negative_logits], axis=1)


def partition_loss_per_example(
    anchor: tf.Tensor,
    positive: tf.Tensor,
    negatives: tf.Tensor,
    mask: tf.Tensor | None = None,
) -> tf.Tensor:
    """Softmax cross-entropy of each anchor with its positive as the label.

    Args:
      anchor: [B, K] partition weights w_i of the anchor items.
      positive: [B, K] partition weights w_j, j ~ S_i.
      negatives: [No, K] or [B, No, K] partition weights of the negatives.
      mask: [B] bool (or 0/1) or None; False entries (padding anchors,
        anchors without a positive) get a loss of exactly 0 and no gradient.

    Returns:
      [B] ``logsumexp(logits) - logits[:, 0]``, the negated log-likelihood
      of the positive among the 1 + No candidates.

    Raises:
      ValueError: ``negatives`` is neither rank 2 nor rank 3.
    """
    logits = partition_logits(anchor, positive, negatives)  # [B, 1 + No]
    loss = tf.reduce_logsumexp(logits, axis=1) - logits[:, POSITIVE_COLUMN]  # [B]
    if mask is None:
        return loss
    # tf.where (not a product) so that a non-finite masked loss stays 0.
    return tf.where(tf.cast(mask, tf.bool), loss, tf.zeros_like(loss))
