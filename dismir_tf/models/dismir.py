"""DisMIR (KDD '24): capsule interests, interest attention, item partition.

* Interests: :class:`CapsuleInterestExtractor` with the identity
  transformation and one routing pass (paper 5.1.4).
* Attention: a_uf = softmax_f(m_uf . mean(history)) (section 4.3).
* Loss: eq. 5's pairwise loss with a hard negative, plus lambda times the
  item-partition loss of Theorem 4 (eq. 6), which the base class adds for
  every model when ``partition_weight`` > 0.  MIR is this model with
  lambda = 0; "w/o DPI" replaces the attention by equal weights.
"""

from __future__ import annotations

import tensorflow as tf

from dismir_tf import types
from dismir_tf.capsule import CapsuleInterestExtractor
from dismir_tf.config import ModelConfig
from dismir_tf.interest_attention import InterestAttention
from dismir_tf.models.base import Encoded, RetrievalModel


class DisMIR(RetrievalModel):
    """The paper's model.

    Args:
      num_items, config, seed: see RetrievalModel.
      use_attention: False gives the "w/o DPI" ablation (equal weights).
    """

    default_retrieval = types.FUSED

    def __init__(self, num_items: int, config: ModelConfig, seed: int = 0,
                 use_attention: bool = True, **kwargs):
        super().__init__(num_items, config, seed, **kwargs)
        self.use_attention = use_attention
        self.capsule = CapsuleInterestExtractor(
            config.num_interests, config.max_len, transform="identity",
            routing_init="prototype",
            iterations=config.routing_iterations or 1, seed=seed,
            name="capsule")
        self.attention = InterestAttention(name="interest_attention")

    def encode(self, history, training=False):
        mask = tf.cast(history > 0, tf.float32)
        items = self.item_embedding(history)
        interests, routing = self.capsule(items, mask)
        weights = (self.attention(interests, items, mask)
                   if self.use_attention else None)
        return Encoded(interests=interests, weights=weights, routing=routing,
                       items=items, mask=mask)

    def get_config(self):
        config = super().get_config()
        config["use_attention"] = self.use_attention
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from dismir_tf.config import ModelConfig as _MC
        return cls(num_items=config["num_items"],
                   config=_MC(**config["config"]), seed=config["seed"],
                   use_attention=config.get("use_attention", True))
