"""DisMIR (KDD '24): capsule interests, interest attention, item partition.

* Interests: :class:`CapsuleInterestExtractor` with the identity
  transformation and one routing pass (paper 5.1.4).  How the routing
  logits start, the routing softmax's axis, a temperature and whether the
  routed items pass gradient are options (``ModelConfig.params``, a
  :class:`~dismir_tf.model_params.CapsuleParams`);
  ``DEFAULT_CAPSULE`` is the project's default and ``CAPSULE_PRESETS`` the
  named configurations (:mod:`dismir_tf.capsule_config`; docs/models.md
  says why each).
* Attention: a_uf = softmax_f(m_uf . mean(history)) (section 4.3).
* Readout (``CapsuleParams.readout``), the same in training and retrieval:
  'fused', eq. 5: score(u, i) = sum_f a_uf m_uf . e_i (one query);
  'max': max_f m_uf . e_i (merge retrieval, as REMI's evaluator);
  'weighted_max': max_f a_uf m_uf . e_i (merge of the attention-scaled
  interests).
* Loss: eq. 5's pairwise loss with a hard negative (scored with the
  readout), plus lambda times the item-partition loss of Theorem 4
  (eq. 6), which the base class adds for every model when
  ``partition_weight`` > 0.  MIR is this model with lambda = 0; "w/o DPI"
  replaces the attention by equal weights.
"""

from __future__ import annotations

import tensorflow as tf

from dismir_tf import types
from dismir_tf.capsule_config import resolve_capsule
from dismir_tf.config import ModelConfig, model_config_from_dict
from dismir_tf.initializers import weight_seed
from dismir_tf.layers import CapsuleInterestExtractor, InterestAttention, SASRecBlock
from dismir_tf.layers.ops import recency_rank
from dismir_tf.model_params import CapsuleParams
from dismir_tf.models.base import _NEG_INF, Encoded, RetrievalModel


class DisMIR(RetrievalModel):
    """The paper's model.

    Args:
      num_items, config, seed: see RetrievalModel.  ``config`` must be
        resolved (``dismir_tf.capsule_config.resolve_config``).
      use_attention: False gives the "w/o DPI" ablation (equal weights).
    """

    default_retrieval = types.FUSED

    def __init__(
        self,
        num_items: int,
        config: ModelConfig,
        seed: int = 0,
        use_attention: bool = True,
        **kwargs,
    ):
        if not config.params.get("readout"):
            config = resolve_capsule(config)
        super().__init__(num_items, config, seed, **kwargs)
        own: CapsuleParams = config.own
        self.use_attention = use_attention
        self.readout = own.readout
        self.rec_loss = own.rec_loss
        self.beta = own.remi_beta
        self.retrieval = config.retrieval or (
            types.FUSED if self.readout == "fused" else types.MERGE
        )
        self.capsule = CapsuleInterestExtractor(
            config.num_interests,
            config.max_len,
            transform=("identity" if own.capsule_transform == "identity" else "shared"),
            kernel_init=(
                "identity"
                if own.capsule_transform == "shared_from_identity"
                else "normal"
            ),
            routing_init=own.routing_init,
            softmax_over=own.routing_softmax,
            padding_in_softmax=own.routing_padding_in_softmax,
            similarity=own.routing_similarity,
            temperature=own.routing_temperature,
            detach_routed_items=own.routing_detach,
            squash_output=own.interest_norm == "squash",
            iterations=config.routing_iterations or 1,
            recency=own.capsule_recency,
            seed=weight_seed(seed, "capsule"),
            name="capsule",
        )
        self.attention = InterestAttention(name="interest_attention")
        self.capsule_order = own.capsule_order
        if self.capsule_order != "none":
            # Started at 0: 'positions' begins as the order-free capsule.
            self.order_positions = tf.keras.layers.Embedding(
                config.max_len,
                config.embedding_dim,
                embeddings_initializer="zeros",
                name="capsule_positions",
            )
        if self.capsule_order == "self_attention":
            self.order_block = SASRecBlock(
                config.embedding_dim,
                heads=1,
                dropout=0.0,
                seed=weight_seed(seed, "capsule_order"),
                index=0,
                name="capsule_order_block",
            )

    def ordered_items(self, items: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """[B, L, d] the routed items under ``capsule_order``: ``items``
        (e_i, right-padded, 0 on padding) themselves ('none'), plus the
        learned embedding of each item's recency rank r(i) = n - 1 - i
        ('positions'), or one causal SASRec block's output over that sum
        ('self_attention': position i attends to the items 0..i, the newest
        sees the whole window); 0 on padding."""
        if self.capsule_order == "none":
            return items
        rank = recency_rank(mask, self.model_config.max_len)
        x = (items + self.order_positions(rank)) * mask[:, :, None]
        if self.capsule_order == "positions":
            return x
        return self.order_block(x, mask)

    def encode(self, features, training=False, seed=None):
        history = features[types.HISTORY]
        mask = tf.cast(history > 0, tf.float32)
        items = self.ordered_items(self.item_embedding(history), mask)
        interests, routing = self.capsule(items, mask, seed=seed)
        weights = self.attention(interests, items, mask) if self.use_attention else None
        routed = (
            tf.einsum("bld,de->ble", items, self.capsule.kernel)
            if self.capsule.transform == "shared"
            else None
        )
        return Encoded(
            interests=interests,
            weights=weights,
            routing=routing,
            items=items,
            mask=mask,
            routed_items=routed,
        )

    def readout_queries(self, enc: Encoded) -> tf.Tensor:
        """[B, Q, d]: the vectors whose inner products with e_i give the
        readout's per-interest scores (fused: Q = 1)."""
        if self.readout == "fused":
            return enc.fused()[:, None]
        if self.readout == "weighted_max" and enc.weights is not None:
            f = tf.cast(tf.shape(enc.interests)[1], enc.interests.dtype)
            # Scaled by F so that equal weights give the plain interests.
            return enc.interests * (f * enc.weights)[:, :, None]
        return enc.interests

    def rec_loss_per_example(self, batch, enc, seed):
        """[B] the recommendation loss, scored with the readout:
        score(u, i) = max_q (query_q . e_i).

        'pairwise' (eq. 5): softplus(s_uj - s_ui), j the highest-scoring of
        C uniform candidates (one equal to the target is skipped).
        'sampled_softmax': REMI's IHN sampled softmax of the target against
        S shared uniform negatives (:func:`sampled_softmax_loss`).
        """
        queries = self.readout_queries(enc)  # [B, Q, d]
        target = batch[types.TARGET]
        pos = tf.reduce_max(
            tf.einsum("bqd,bd->bq", queries, self.item_embedding(target)), 1
        )
        if self.rec_loss == "sampled_softmax":
            from dismir_tf.models.sampled_softmax import sampled_softmax_loss

            negatives = self.item_embedding(
                self.sample_items([self.model_config.sampled_softmax_negatives], seed)
            )
            neg = tf.reduce_max(
                tf.einsum("bqd,sd->bqs", queries, negatives), 1
            )  # [B, S]
            return sampled_softmax_loss(pos, neg, self.beta)
        c = self.model_config.hard_negative_candidates
        cand = self.sample_items([tf.shape(target)[0], c], seed)
        scores = tf.reduce_max(
            tf.einsum("bqd,bcd->bqc", queries, self.item_embedding(cand)), 1
        )
        scores = tf.where(cand == target[:, None], _NEG_INF, scores)
        return tf.nn.softplus(tf.reduce_max(scores, 1) - pos)

    def retrieval_queries(self, enc, retrieval=None):
        mode = retrieval or self.retrieval
        if mode == types.FUSED:
            return enc.fused()[:, None]
        return self.readout_queries(enc) if self.readout != "fused" else enc.interests

    def get_config(self):
        config = super().get_config()
        config["use_attention"] = self.use_attention
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(
            num_items=config["num_items"],
            config=model_config_from_dict(config["config"]),
            seed=config["seed"],
            use_attention=config.get("use_attention", True),
        )
