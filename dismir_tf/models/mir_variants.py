"""The ablations MIR-RV and MIR-BF (DisMIR paper, Table 3).

Both are DisMIR without the item partition (lambda = 0, forced by the
registry) plus another anti-collapse term on the capsule network:

* MIR-RV: REMI's routing-variation regulariser (eq. 1) on the capsule
  routing weights b_if [F, L] of each user, weight
  ``MIRRVParams.routing_variance_weight``, summed over the batch exactly as REMI does
  it (:class:`dismir_tf.models.remi.REMI`).
* MIR-BF: Re4's backward flow (eq. 2), weight
  ``MIRBFParams.backward_flow_weight``:
  each interest's representative item is the history item with the largest
  routing weight b_if; the interest is contrasted against it vs the user's
  other history items (a softmax over the history by inner product),
  summed over the interests and averaged over the batch.
"""

from __future__ import annotations

import tensorflow as tf

from dismir_tf.models.dismir import DisMIR
from dismir_tf.models.regularizers import backward_flow_loss, weighted_routing_variation


class MIRRV(DisMIR):
    """DisMIR, lambda = 0, plus the routing-variation regulariser."""

    def regularization(self, batch, enc, seed):
        del batch, seed
        config = self.model_config
        return weighted_routing_variation(
            enc.routing, config.own.routing_variance_weight, config.embedding_dim
        )


class MIRBF(DisMIR):
    """DisMIR, lambda = 0, plus Re4's backward-flow loss."""

    def regularization(self, batch, enc, seed):
        del batch, seed
        weight = self.model_config.own.backward_flow_weight
        if weight == 0:
            return tf.constant(0.0)
        per_user = backward_flow_loss(enc.interests, enc.items, enc.routing, enc.mask)
        return weight * tf.reduce_mean(per_user)
