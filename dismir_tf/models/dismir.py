"""DisMIR (KDD '24): capsule interests, interest attention, item partition.

* Interests: :class:`CapsuleInterestExtractor` with the identity
  transformation and one routing pass (paper 5.1.4).  How the routing
  logits start, the routing softmax's axis, a temperature and whether the
  routed items pass gradient are options (``ModelConfig.params``, a
  :class:`~dismir_tf.model_params.CapsuleParams`);
  ``DEFAULT_CAPSULE`` is the project's default and ``CAPSULE_PRESETS`` the
  named configurations (docs/models.md says why each).
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

import dataclasses
from typing import Any

import tensorflow as tf

from dismir_tf import config as config_lib
from dismir_tf import types
from dismir_tf.config import ModelConfig, model_config_from_dict
from dismir_tf.errors import ConfigError
from dismir_tf.initializers import weight_seed
from dismir_tf.layers import CapsuleInterestExtractor, InterestAttention, SASRecBlock
from dismir_tf.layers.ops import recency_rank
from dismir_tf.model_params import CapsuleParams
from dismir_tf.models.base import _NEG_INF, Encoded, RetrievalModel

# The capsule options (CapsuleParams' fields but its beta) and their "model
# default" markers (the dataclass defaults).
CAPSULE_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(CapsuleParams)
    if f.name not in ("capsule_preset", "remi_beta")
)
_UNSET: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(CapsuleParams)}

# The project's default DisMIR capsule (docs/models.md, "Choosing the
# capsule").
DEFAULT_CAPSULE: dict[str, Any] = dict(
    routing_init="prototype",
    routing_softmax="interests",
    routing_padding_in_softmax=False,
    routing_similarity="cosine",
    routing_temperature=0.02,
    routing_detach=False,
    interest_norm="squash",
    readout="max",
    rec_loss="pairwise",
    capsule_transform="shared_from_identity",
    capsule_recency="learned",
)
# The default before the recency weights (--routing_temperature 0.1
# --capsule_recency none) is in docs/models.md, "How the default was
# chosen".
# The default before the collapse study (prototype logits by dot product,
# W = I, the fused eq. 5 readout): on real data it ranks as mean pooling.
LEGACY_CAPSULE = {
    k: v for k, v in config_lib.LEGACY_CAPSULE.items() if k != "capsule_preset"
}

# Named configurations.  'paper-remi': "identity transformation, one
# routing pass" on REMI's code base (the paper's footnote 6), i.e. REMI's
# CapsuleNetwork MIND path (bilinear_type 0) with W = I: N(0, 1) routing
# logits drawn on every forward pass, the routing softmax over the history
# positions with padding inside it, and the single pass summing detached
# items (REMI's passes i < 2 use item_eb_hat_iter); eq. 5's fused score in
# training and REMI's evaluator in retrieval (every interest retrieves,
# merged by score).
CAPSULE_PRESETS: dict[str, dict[str, Any]] = {
    "paper-remi": dict(
        routing_init="random_per_call",
        routing_softmax="positions",
        routing_padding_in_softmax=True,
        routing_similarity="dot",
        routing_temperature=1.0,
        routing_detach=True,
        interest_norm="squash",
        readout="fused",
        rec_loss="pairwise",
        capsule_transform="identity",
        capsule_recency="none",
        retrieval=types.MERGE,
    ),
}


def resolve_capsule(config: ModelConfig) -> ModelConfig:
    """Fills the DisMIR family's unset capsule options (``config.params``,
    :class:`~dismir_tf.model_params.CapsuleParams`) from the preset (if
    ``capsule_preset`` names one) or ``DEFAULT_CAPSULE``; a preset's
    ``retrieval`` is set on the config itself.

    Raises:
      ConfigError: an option set explicitly contradicts the preset,
        ``remi_beta`` is set for the pairwise objective it does not act on,
        or ``capsule_order`` is set with detached routed items (its weights
        would get no gradient).
    """
    params = dict(config.params)
    preset = params.get("capsule_preset", "")
    base = CAPSULE_PRESETS[preset] if preset else DEFAULT_CAPSULE
    top: dict[str, Any] = {}
    for field, value in base.items():
        if field not in _UNSET:  # retrieval
            given = getattr(config, field)
            if given != "" and given != value:
                raise ConfigError(
                    f"capsule_preset {preset!r} sets {field}={value!r}; drop "
                    f"--{field} (given {given!r}) or the preset"
                )
            top[field] = value
            continue
        given = params.get(field, _UNSET[field])
        if given == _UNSET[field]:
            params[field] = value
        elif preset and given != value:
            raise ConfigError(
                f"capsule_preset {preset!r} sets {field}={value!r}; drop "
                f"--{field} (given {given!r}) or the preset"
            )
    if params["capsule_order"] != "none" and params["routing_detach"]:
        raise ConfigError(
            f"--capsule_order {params['capsule_order']} learns through the "
            "routed items, which --routing_detach (set by the paper-remi "
            "preset) cuts from the gradient; drop one of them"
        )
    if (
        params["rec_loss"] != "sampled_softmax"
        and params["remi_beta"] != _UNSET["remi_beta"]
    ):
        raise ConfigError(
            "--remi_beta acts on the DisMIR family only with --rec_loss "
            f"sampled_softmax (the objective is {params['rec_loss']!r}); "
            "remove it"
        )
    return dataclasses.replace(config, params=params, **top)


def clear_capsule_options(config: ModelConfig) -> ModelConfig:
    """``config`` with the DisMIR family's capsule options (and preset)
    unset, its other params kept (to reuse a resolved DisMIR config for
    another model)."""
    params = {
        k: v
        for k, v in config.params.items()
        if k not in CAPSULE_FIELDS and k != "capsule_preset"
    }
    return dataclasses.replace(config, params=params)


class DisMIR(RetrievalModel):
    """The paper's model.

    Args:
      num_items, config, seed: see RetrievalModel.  ``config`` must be
        resolved (``dismir_tf.models.resolve_config``).
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
