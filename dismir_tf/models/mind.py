"""MIND (Li et al., CIKM '19): capsule interests, label-aware attention.

* Interests: :class:`CapsuleInterestExtractor` with one shared bilinear
  matrix (``transform='shared'``, the reference's ``bilinear_type=0``),
  randomly initialised routing logits and 3 routing iterations, routed as
  REMI's ``CapsuleNetwork`` (which produced docs/reference-runs.md): the
  routing softmax runs over the history positions with padding kept in it
  (``softmax_over='positions'``, ``padding_in_softmax=True``), and the
  matrix starts as torch's kaiming_normal_ on a Linear(d, d) weight,
  N(0, 2/d) (what each choice scored: docs/models.md, "Faithfulness
  against the reference runs").  The random logits are drawn
  once from the model's seed and kept fixed, so serving scores what
  evaluation scored; the reference code re-draws them on every forward
  pass, which also makes its evaluation non-deterministic.
* Training readout: label-aware attention against the target.  The
  default is the *hard* readout (the interest with the largest
  m_f . e_t), which is what both reference codes (ComiRec's TF Model_MIND
  and REMI's MIND) do after computing softmax_f((m_f . e_t)^1), and what
  docs/reference-runs.md measured; ``hard_readout=False`` gives the MIND
  paper's soft label-aware attention with p = 1 (the two readouts against
  the reference runs: docs/models.md).
* Objective: sampled softmax with ``sampled_softmax_negatives`` uniform
  negatives shared by the batch (:mod:`dismir_tf.models.sampled_softmax`).
* Retrieval: 'merge' (each interest retrieves its own top-N).

The reference code's ReLU projection of the interests is used there on
Amazon Books only and is left out.
"""

from __future__ import annotations

import math

from dismir_tf import types
from dismir_tf.config import ModelConfig
from dismir_tf.initializers import weight_seed
from dismir_tf.layers import CapsuleInterestExtractor
from dismir_tf.models.sampled_softmax import SampledSoftmaxModel


class MIND(SampledSoftmaxModel):
    """Shared-bilinear dynamic routing, label-aware readout (hard by
    default, as the reference code; ``hard_readout=False``: soft)."""

    hard_readout = True
    readout_power = 1.0

    def __init__(self, num_items: int, config: ModelConfig, seed: int = 0, **kwargs):
        super().__init__(num_items, config, seed, **kwargs)
        self.capsule = CapsuleInterestExtractor(
            config.num_interests,
            config.max_len,
            transform="shared",
            routing_init="random",
            softmax_over="positions",
            padding_in_softmax=True,
            kernel_stddev=math.sqrt(2.0 / config.embedding_dim),
            iterations=config.routing_iterations or 3,
            seed=weight_seed(seed, "capsule"),
            name="capsule",
        )

    def encode(self, features, training=False, seed=None):
        history = features[types.HISTORY]
        return self.encode_with(self.capsule, history)
