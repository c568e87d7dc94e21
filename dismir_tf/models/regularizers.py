"""Anti-collapse regularisers of the baselines and ablations.

* :func:`routing_variation` -- REMI's routing regularisation (RR), the
  DisMIR paper's eq. 1: ``||diag(D)||^2`` with
  ``D = (B - B_bar)^T (B - B_bar)``, B the [L, F] item-to-interest routing
  matrix of one user and B_bar its mean over the items.  diag(D)_f is the
  (unnormalised) variance of interest f's routing weights over the history.
  As REMI's ``calculate_atten_loss``: the mean runs over all L positions
  (padding included, where the weights are 0), D is divided by the
  embedding size d, and the caller sums the result over the batch.
* :func:`backward_flow_loss` -- Re4's backward flow, the DisMIR paper's
  eq. 2: each interest m is pulled towards its representative item i and
  pushed from the user's other history items j,
  ``-log( e^{m.e_i} / (e^{m.e_i} + sum_j e^{m.e_j}) )``.
"""

from __future__ import annotations

import tensorflow as tf

_NEG_INF = -1e9


def routing_variation(routing: tf.Tensor, scale: float) -> tf.Tensor:
    """[B] ||diag(D)||^2 / scale^2 per user (eq. 1, REMI's normalisation).

    Args:
      routing: [B, F, L] item-to-interest weights (0 on padding).
      scale: REMI divides D by the embedding size d.

    Returns:
      [B] sum_f (sum_l (B_fl - mean_l B_fl)^2 / scale)^2.
    """
    centred = routing - tf.reduce_mean(routing, axis=2, keepdims=True)
    diag = tf.reduce_sum(tf.square(centred), axis=2) / scale  # [B, F]
    return tf.reduce_sum(tf.square(diag), axis=1)


def representative_items(routing: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """[B, F] the history position with the largest routing weight per
    interest (Re4's representative item), over real items only."""
    valid = tf.cast(mask, routing.dtype)[:, None, :] > 0  # [B, 1, L]
    return tf.argmax(tf.where(valid, routing, _NEG_INF), axis=2, output_type=tf.int32)


def backward_flow_loss(
    interests: tf.Tensor, items: tf.Tensor, routing: tf.Tensor, mask: tf.Tensor
) -> tf.Tensor:
    """[B] Re4's backward flow (eq. 2), summed over the F interests.

    For interest f of a user, the label is its representative item (the
    history item with the largest routing weight b_if) and the classes are
    the user's history items, scored by the inner product m_f . e_j.

    Args:
      interests: [B, F, d] interest vectors m_f.
      items: [B, L, d] history item embeddings.
      routing: [B, F, L] routing weights that choose the representatives
        (no gradient flows through the choice).
      mask: [B, L] 1 on real items.

    Returns:
      [B] sum over f of the cross-entropy of the representative item.
    """
    valid = tf.cast(mask, interests.dtype)[:, None, :] > 0  # [B, 1, L]
    logits = tf.einsum("bfd,bld->bfl", interests, items)
    logits = tf.where(valid, logits, _NEG_INF)
    labels = representative_items(tf.stop_gradient(routing), mask)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.reduce_sum(ce, axis=1)


def summed_over_batch(per_example: tf.Tensor) -> tf.Tensor:
    """The per-replica value whose replica sum, after the base class's
    division by the replica count, is the sum over the global batch."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return tf.reduce_sum(per_example) * tf.cast(replicas, per_example.dtype)


def weighted_routing_variation(
    routing: tf.Tensor, weight: float, embedding_dim: int
) -> tf.Tensor:
    """Eq. 1 as REMI applies it: ``weight`` (``routing_variance_weight``)
    times the per-user routing variation of ``routing`` [B, F, L] with d =
    ``embedding_dim``, summed over the batch (REMI, MIR-RV); a scalar."""
    if weight == 0:
        return tf.constant(0.0)
    per_user = routing_variation(routing, float(embedding_dim))
    return weight * summed_over_batch(per_user)
