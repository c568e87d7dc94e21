"""REMI (Xie et al., RecSys '23): ComiRec-SA + IHN + routing regulariser.

REMI is a training framework on top of a backbone; its reference results
(and docs/reference-runs.md) use ComiRec-SA, so this is :class:`ComiRecSA` with

* interest-aware hard negatives (IHN): the sampled softmax weights each
  shared negative by softmax_j(beta * s_j) (``REMIParams.remi_beta``, flag
  ``--remi_beta``, the reference's
  ``--rbeta``); see :func:`sampled_softmax_loss`;
* routing regularisation (RR): eq. 1 of the DisMIR paper on the
  self-attention matrix A [F, L] of each user, weight
  ``REMIParams.routing_variance_weight`` (the reference's ``--rlambda``).  As REMI's
  code, the per-user terms are summed over the batch, not averaged, so the
  weight is per example.
"""

from __future__ import annotations

from dismir_tf.models.comirec import ComiRecSA
from dismir_tf.models.regularizers import weighted_routing_variation


class REMI(ComiRecSA):
    """ComiRec-SA trained with REMI's IHN and RR."""

    @property
    def negative_beta(self) -> float:
        return self.model_config.own.remi_beta

    def regularization(self, batch, enc, seed):
        del batch, seed
        config = self.model_config
        return weighted_routing_variation(
            enc.routing, config.own.routing_variance_weight, config.embedding_dim
        )
