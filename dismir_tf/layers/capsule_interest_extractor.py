"""The capsule interest extractor (dynamic routing with squash).

One layer serves DisMIR, MIND and ComiRec-DR; they differ in the
transformation of the history items and in how routing logits start:

============  ===================================  ======================
model         transformation ``u_{f|i}``            routing logits start
============  ===================================  ======================
DisMIR        identity (paper 5.1.4)                ``prototype``
MIND          one shared bilinear matrix            ``random`` (fixed)
ComiRec-DR    one matrix per (position, interest)   ``zeros``
============  ===================================  ======================

Why routing logits cannot simply start at zero for DisMIR: with the
identity transformation every interest sees the same ``u_{f|i} = e_i``;
zero logits give ``b_if = 1/F`` for every f, so all F capsules are equal,
their squashed vectors are equal, the logit updates ``e_i . v_f`` are equal,
and the interests stay identical forever (and with one routing pass there
are no updates at all).  ``prototype`` starts the logits as
``c_if = u_{f|i} . squash(p_f)`` with F learned prototype vectors p_f: the
paper's own logit formula ``c_if = e_i^T W v_f`` evaluated at a learned
initial capsule.  It is deterministic (serving returns what evaluation
scored), content-aware even with a single routing pass, and lets the item
partition steer which items an interest collects.  ``random`` draws fixed
N(0, 1) logits per (position, interest) once from the layer's seed (MIND's
"randomly initialised" logits, made deterministic instead of re-drawn on
every call as the reference code does).
"""

from __future__ import annotations

import math

import tensorflow as tf

from dismir_tf.initializers import weight_seed
from dismir_tf.layers.ops import recency_rank, squash

TRANSFORMS = ("identity", "shared", "per_position_interest")
ROUTING_INITS = ("prototype", "random", "random_per_call", "zeros")
SIMILARITIES = ("dot", "cosine")
SOFTMAX_AXES = ("interests", "positions")
RECENCY = ("none", "learned", "learned_per_interest")
_EPS = 1e-9
_MASKED_LOGIT = -1e9


@tf.keras.utils.register_keras_serializable(package="dismir_tf")
class CapsuleInterestExtractor(tf.keras.layers.Layer):
    """F interest capsules from a masked history by dynamic routing.

    Args:
      num_interests: int. F.
      max_len: int. L, the history length (needed by the per-position
        transformation and the random logits).
      transform: str, default 'identity'. One of TRANSFORMS.
      routing_init: str, default 'prototype'. One of ROUTING_INITS.
      iterations: int, default 1. Routing passes (DisMIR 1, MIND/ComiRec 3).
      stop_routing_gradient: bool, default True. As ComiRec/REMI, the
        transformed items that feed the non-final routing passes get no
        gradient; the final pass always gets one.
      softmax_over: str, default 'interests'. The routing softmax runs over
        the interests (the paper's b_if, ComiRec's TF code) or over the
        history positions (REMI's PyTorch capsule, which produced the
        reference ComiRec-DR figures).
      padding_in_softmax: bool, default False. Only with
        ``softmax_over='positions'``.  False: padded positions are left
        out of the routing softmax (their logits are masked before it), so
        an interest's weights sum to 1 over the real items.  True: as
        REMI's capsule (BasicModel.py, ``CapsuleNetwork.forward``), the
        transformed items are zeroed on padding (REMI multiplies the item
        embeddings by the mask), the softmax runs over all L positions and
        the padded weights are zeroed after it without renormalising; the
        padded logits never change from their start (0, or the random
        draw), so padding keeps part of the softmax mass and a short
        history gives a proportionally smaller capsule before the squash.
      temperature: float, default 1. The routing logits are divided by it
        before every routing softmax (< 1 sharpens the routing).
      similarity: str, default 'dot'.  How ``prototype`` logits compare an
        item with a prototype: 'dot' c_if = u_{f|i} . squash(p_f) (the
        paper's formula at a learned capsule), 'cosine' c_if =
        cos(u_{f|i}, p_f), which is bounded in [-1, 1] whatever the
        embeddings' scale (pair it with a temperature).
      detach_routed_items: bool, default False.  True: the final pass, too,
        sums transformed items that get no gradient through the routing
        (REMI's CapsuleNetwork with one pass: its passes ``i < 2`` use the
        detached items), so with the identity transformation the interests
        carry no gradient back into the history embeddings.
      squash_output: bool, default True.  True: the layer returns the
        squashed capsules v_f (ComiRec, MIND, REMI).  False: it returns the
        capsules m_f = sum_i b_if u_{f|i} before the squash, as section 3.2
        of the DisMIR paper defines the interests (v_f = squash(m_f) is
        then only the routing's vector in c_if = e_i . v_f).
      kernel_init: str, default 'normal'.  How the 'shared' kernel starts:
        'normal' (N(0, kernel_stddev^2)) or 'identity' (W = I, the paper's
        choice, then learned).
      kernel_stddev: float or None. Standard deviation of the
        transformation's normal initialiser; None means 1/sqrt(d).
      recency: str, default 'none'.  'learned': each routed item is scaled
        by a learned positive weight of its recency rank, m_f = sum_i b_if
        w_{r(i)} u_{f|i} with r(i) = n - 1 - i for a history of n items
        (0 for the newest; histories are right-padded) and w_r =
        softplus(a_r) / log 2, a_r started at 0 (every w_r = 1).  It
        scales what an interest collects, not the routing: with one pass
        the routing weights b_if do not see it; with more passes the
        logit updates use the recency-weighted capsules.
        'learned_per_interest': one weight per (rank, interest),
        w_{r(i), f}, so that interests can keep different time scales.
        Not in the paper: options of this project's capsule study
        (docs/models.md).
      seed: int. The layer's seed; each weight's initialiser seed is
        derived from it and the weight's name (``initializers.weight_seed``).

    Call args:
      items: [B, L, d] history item embeddings.
      mask: [B, L] 1 for real items, 0 for padding.
      seed: optional [2] int32 stateless seed.  Only ``random_per_call``
        reads it: with a seed (training) the logits are a fresh N(0, 1)
        draw [B, F, L] from it, as REMI's MIND path draws ``torch.randn``
        on every forward pass; without one (evaluation, serving) they are
        one fixed N(0, 1) draw [F, L] from the layer's seed, shared by all
        users, so a user's interests do not depend on the batch.

    Returns:
      (interests [B, F, d] the squashed capsules v_f, or the capsules m_f
      with ``squash_output=False``; routing [B, F, L] the final routing
      weights b_if, 0 on padding).

    Example:
      >>> import tensorflow as tf
      >>> layer = CapsuleInterestExtractor(num_interests=4, max_len=5)
      >>> items = tf.random.normal([2, 5, 8])
      >>> mask = tf.constant([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
      >>> interests, routing = layer(items, mask)
      >>> interests.shape, routing.shape
      (TensorShape([2, 4, 8]), TensorShape([2, 4, 5]))
    """

    def __init__(
        self,
        num_interests: int,
        max_len: int,
        transform: str = "identity",
        routing_init: str = "prototype",
        iterations: int = 1,
        stop_routing_gradient: bool = True,
        softmax_over: str = "interests",
        padding_in_softmax: bool = False,
        temperature: float = 1.0,
        similarity: str = "dot",
        detach_routed_items: bool = False,
        squash_output: bool = True,
        kernel_init: str = "normal",
        kernel_stddev: float | None = None,
        recency: str = "none",
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_interests < 1:
            raise ValueError(f"num_interests must be >= 1, got {num_interests}")
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        if transform not in TRANSFORMS:
            raise ValueError(
                f"transform must be one of {TRANSFORMS}, got {transform!r}"
            )
        if routing_init not in ROUTING_INITS:
            raise ValueError(
                f"routing_init must be one of {ROUTING_INITS}, got {routing_init!r}"
            )
        if softmax_over not in SOFTMAX_AXES:
            raise ValueError(
                f"softmax_over must be one of {SOFTMAX_AXES}, got {softmax_over!r}"
            )
        if padding_in_softmax and softmax_over != "positions":
            raise ValueError("padding_in_softmax needs softmax_over='positions'")
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if similarity not in SIMILARITIES:
            raise ValueError(
                f"similarity must be one of {SIMILARITIES}, got {similarity!r}"
            )
        if transform == "identity" and routing_init == "zeros" and num_interests > 1:
            raise ValueError(
                "identity transform with zero routing logits makes all "
                "interests identical; use routing_init='prototype' or "
                "'random'"
            )
        self.num_interests = num_interests
        self.max_len = max_len
        self.transform = transform
        self.routing_init = routing_init
        self.iterations = iterations
        self.stop_routing_gradient = stop_routing_gradient
        self.softmax_over = softmax_over
        self.padding_in_softmax = padding_in_softmax
        self.temperature = float(temperature)
        self.similarity = similarity
        self.detach_routed_items = detach_routed_items
        self.squash_output = squash_output
        if kernel_init not in ("normal", "identity"):
            raise ValueError(
                f"kernel_init must be 'normal' or 'identity', got {kernel_init!r}"
            )
        self.kernel_init = kernel_init
        self.kernel_stddev = kernel_stddev
        if recency not in RECENCY:
            raise ValueError(f"recency must be one of {RECENCY}, got {recency!r}")
        self.recency = recency
        self.seed = seed

    def build(self, input_shape):
        d = int(input_shape[-1])
        f, l = self.num_interests, self.max_len
        stddev = self.kernel_stddev if self.kernel_stddev is not None else 1.0 / d**0.5
        init = tf.keras.initializers.RandomNormal(
            stddev=stddev, seed=weight_seed(self.seed, "kernel")
        )
        if self.transform == "shared":
            self.kernel = self.add_weight(
                "kernel",
                [d, d],
                initializer=(
                    tf.keras.initializers.Identity()
                    if self.kernel_init == "identity"
                    else init
                ),
            )
        elif self.transform == "per_position_interest":
            self.kernel = self.add_weight("kernel", [l, f, d, d], initializer=init)
        if self.routing_init == "prototype":
            self.prototypes = self.add_weight(
                "prototypes",
                [f, d],
                initializer=tf.keras.initializers.RandomNormal(
                    stddev=1.0, seed=weight_seed(self.seed, "prototypes")
                ),
            )
        elif self.routing_init in ("random", "random_per_call"):
            self.initial_logits = self.add_weight(
                "initial_logits",
                [l, f],
                trainable=False,
                initializer=tf.keras.initializers.RandomNormal(
                    stddev=1.0, seed=weight_seed(self.seed, "initial_logits")
                ),
            )
        if self.recency != "none":
            self.recency_logits = self.add_weight(
                "recency_logits",
                [l] if self.recency == "learned" else [l, f],
                initializer="zeros",
            )
        super().build(input_shape)

    def _recency_weights(self, mask: tf.Tensor) -> tf.Tensor:
        """w_{r(i)} per history position: [B, 1, L] ('learned') or
        [B, F, L] ('learned_per_interest'), 0 on padding."""
        rank = recency_rank(mask, self.max_len)
        # [B, L] or [B, L, F]; softplus(0) / log 2 = 1.
        w = tf.nn.softplus(tf.gather(self.recency_logits, rank)) / math.log(2.0)
        if self.recency == "learned":
            return (w * mask)[:, None]
        return tf.transpose(w, [0, 2, 1]) * mask[:, None]

    def _transformed(self, items: tf.Tensor) -> tf.Tensor:
        """u_{f|i}: [B, F, L, d]."""
        if self.transform == "identity":
            u = items[:, None]
            return tf.tile(u, [1, self.num_interests, 1, 1])
        if self.transform == "shared":
            u = tf.einsum("bld,de->ble", items, self.kernel)[:, None]
            return tf.tile(u, [1, self.num_interests, 1, 1])
        return tf.einsum("bld,lfed->bfle", items, self.kernel)

    def call(self, items, mask, seed=None):
        mask = tf.cast(mask, items.dtype)
        u = self._transformed(items)  # [B, F, L, d]
        if self.padding_in_softmax:
            u = u * mask[:, None, :, None]
        b_size = tf.shape(items)[0]
        length = tf.shape(items)[1]
        if self.routing_init == "prototype" and self.similarity == "cosine":
            logits = tf.einsum(
                "bfld,fd->bfl",
                tf.math.l2_normalize(u, -1),
                tf.math.l2_normalize(self.prototypes, -1),
            )
        elif self.routing_init == "prototype":
            logits = tf.einsum("bfld,fd->bfl", u, squash(self.prototypes))
        elif self.routing_init == "random_per_call" and seed is not None:
            logits = tf.random.stateless_normal(
                [b_size, self.num_interests, length],
                seed,
                dtype=items.dtype,
                alg="philox",
            )
        elif self.routing_init in ("random", "random_per_call"):
            logits = tf.tile(
                tf.transpose(self.initial_logits)[None, :, :length], [b_size, 1, 1]
            )
        else:
            logits = tf.zeros([b_size, self.num_interests, length], items.dtype)
        u_routing = tf.stop_gradient(u) if self.stop_routing_gradient else u
        valid = mask[:, None, :]  # [B, 1, L]
        # The recency weights are the same in every pass.
        recency = None if self.recency == "none" else self._recency_weights(mask)
        for it in range(self.iterations):
            last = it == self.iterations - 1
            scaled = logits if self.temperature == 1.0 else logits / self.temperature
            # b_if: softmax over interests (or positions), zero on padding.
            if self.softmax_over == "interests":
                weights = tf.nn.softmax(scaled, axis=1) * valid  # [B, F, L]
            elif self.padding_in_softmax:
                weights = tf.nn.softmax(scaled, axis=2) * valid
            else:
                weights = (
                    tf.nn.softmax(tf.where(valid > 0, scaled, _MASKED_LOGIT), axis=2)
                    * valid
                )
            if last and self.detach_routed_items:
                u_it = tf.stop_gradient(u)
            else:
                u_it = u if last else u_routing
            collected = weights if recency is None else weights * recency
            capsules = tf.einsum("bfl,bfld->bfd", collected, u_it)
            interests = squash(capsules)
            if last and not self.squash_output:
                interests = capsules
            if not last:
                logits = logits + tf.einsum("bfld,bfd->bfl", u_routing, interests)
        return interests, weights

    def get_config(self):
        config = super().get_config()
        config.update(
            num_interests=self.num_interests,
            max_len=self.max_len,
            transform=self.transform,
            routing_init=self.routing_init,
            iterations=self.iterations,
            stop_routing_gradient=self.stop_routing_gradient,
            softmax_over=self.softmax_over,
            padding_in_softmax=self.padding_in_softmax,
            temperature=self.temperature,
            similarity=self.similarity,
            detach_routed_items=self.detach_routed_items,
            squash_output=self.squash_output,
            kernel_init=self.kernel_init,
            kernel_stddev=self.kernel_stddev,
            recency=self.recency,
            seed=self.seed,
        )
        return config
