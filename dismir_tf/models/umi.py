"""UMI (Chai et al., SIGIR '22): user-aware multi-interest learning.

UMI conditions multi-interest extraction on a user profile p.  What
follows the paper and its reference code (github.com/WHUIR/UMI, TF1):

* Dual-attention routing (:class:`UserGuidedRouting`).  A user-guided
  attention net scores each history item against the profile,
  a_l = sigmoid(w2 . relu(W1 [e_l; p] + b1) + b2) (8 hidden units), and a
  capsule network routes the items into F interests with those weights:
  u_{f|l} = W_f e_l (one matrix per interest, shared by the positions: the
  reference's ``bilinear_type=1``), c_lf = softmax over f of b_lf (masked),
  v_f = squash(sum_l c_lf a_l u_{f|l}).  3 routing passes; the logits
  start random (N(0, 1) truncated at 2) and after each non-final pass are
  *replaced* by b_lf = u_{f|l} . v_f (the reference assigns, it does not
  accumulate as MIND/ComiRec do); the non-final passes see u and a through
  a stop-gradient, as in the reference.
* Interest refinement (:class:`InterestRefinement`).  The profile is split
  into its fields (the reference: gender, age, occupation, 8 dims each);
  for each interest a gate net g_f = sigmoid(W4 relu(W3 [p; v_f])) (8
  hidden units, one output per field) scales the fields, and the final
  interest is m_f = W6 relu(W5 [g_f * p; v_f]) (hidden d/2, output d,
  linear), the reference's ``linear_user_net``.
* Training readout: the interest closest to the target (the reference's
  ``hard_attention``), and a sampled softmax.
* Retrieval: 'merge' (each interest retrieves its own top-N), as the
  reference's evaluation.

What differs, and why:

* The profile.  UMI's profile is categorical user features; our data sets
  have none, and a learned user-id embedding is no option either: valid and
  test users never appear in training (PROTOCOL.md section 1), so it would
  be untrained for every evaluated user, and the export serves from the
  history alone.  The stand-in is computed from the user's own history,
  which exists for any user at training, test and serving time:
  p = W_p2 relu(W_p1 mean(e_l) + b_p1) + b_p2, a small MLP on the masked
  mean of the history embeddings, with the reference's shape (3 fields of
  8 dims).  It is a user-level summary that conditions which items the
  routing weights (the dual attention) and which part of it each interest
  keeps (the refinement), which is the role UMI gives the profile; it
  cannot add information the history does not hold.
* Hard negatives.  The DisMIR paper (5.1.3) trains UMI with REMI's
  hard-negative strategy [47] instead of UMI's own harder negatives (the
  reference scores every negative with its own closest interest): the
  shared uniform negatives of the sampled softmax are weighted by
  softmax_j(beta * s_j), beta = ``remi_beta`` (the same temperature as
  REMI), see :func:`sampled_softmax_loss`.  REMI's routing regulariser is
  not part of it.
* The routing logits are drawn once from the model's seed and kept fixed
  (as our MIND), not re-drawn on every call as the reference does, so
  serving returns what evaluation scored.

Initialisation follows the UMI reference, which is TF1 code with the
library defaults, not REMI's torch ``kaiming_normal_`` used by the other
reference-code baselines: the item embeddings are a bare
``tf.get_variable`` (default initializer: Glorot uniform, U(+-sqrt(6 /
(N + d))), i.e. tiny, std ~0.013 on beauty), every ``fully_connected``
kernel is Glorot uniform (``xavier_initializer``), the capsule transform
included (one [d, F*d] kernel: U(+-sqrt(6 / (d + F d)))), biases zero.
It matters: with N(0, 2/d) item embeddings and kernels, beauty test R@50
at 3,000 steps was 0.055 (valid plateau ~0.05), with the reference's
Glorot initialisation 0.084 (seed 0).
"""

from __future__ import annotations

import math

import tensorflow as tf

from dismir_tf.capsule import squash
from dismir_tf.config import ModelConfig
from dismir_tf.initializers import weight_seed
from dismir_tf.interest_attention import masked_mean
from dismir_tf.models.base import Encoded
from dismir_tf.models.sampled_softmax import SampledSoftmaxModel

# The reference's profile: three categorical fields of 8 dims each.
PROFILE_FIELDS = 3
PROFILE_FIELD_DIM = 8
# Hidden units of the user-guided attention and the refinement gate nets.
ATTENTION_UNITS = 8


def _dense(units: int, seed: int, activation=None,
           name: str | None = None) -> tf.keras.layers.Dense:
    """A ``fully_connected`` layer as the reference's: Glorot-uniform
    kernel (TF1's ``xavier_initializer``), zero bias."""
    return tf.keras.layers.Dense(
        units, activation=activation,
        kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed),
        bias_initializer="zeros", name=name)


def capsule_kernel_initializer(dim: int, num_interests: int, seed: int
                               ) -> tf.keras.initializers.Initializer:
    """Glorot uniform of the reference's [d, F*d] capsule transform,
    U(+-sqrt(6 / (d + F d))), for our [d, F, d] kernel (Keras'
    GlorotUniform would take the fans of a 3-D shape differently)."""
    limit = math.sqrt(6.0 / (dim + num_interests * dim))
    return tf.keras.initializers.RandomUniform(-limit, limit, seed=seed)


@tf.keras.utils.register_keras_serializable(package="dismir_tf")
class UserGuidedRouting(tf.keras.layers.Layer):
    """UMI's dual-attention routing: profile-weighted capsule routing.

    Args:
      num_interests: int. F.
      max_len: int. L (the length of the fixed initial routing logits).
      profile_dim: int. Size of the profile p.
      iterations: int, default 3. Routing passes.
      attention_units: int, default 8. Hidden units of the user-guided
        attention net.
      seed: int. Seeds the initialisers.

    Call args:
      items: [B, L, d] history embeddings; mask: [B, L] 1 on real items;
      profile: [B, P].

    Returns:
      (interests [B, F, d] squashed capsules, routing [B, F, L] the final
      c_lf (0 on padding), attention [B, L] the user-guided weights a_l).
    """

    def __init__(self, num_interests: int, max_len: int, profile_dim: int,
                 iterations: int = 3, attention_units: int = ATTENTION_UNITS,
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("num_interests", num_interests),
                            ("max_len", max_len), ("profile_dim", profile_dim),
                            ("iterations", iterations),
                            ("attention_units", attention_units)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.num_interests = num_interests
        self.max_len = max_len
        self.profile_dim = profile_dim
        self.iterations = iterations
        self.attention_units = attention_units
        self.seed = seed

    def build(self, input_shape):
        d = int(input_shape[-1])
        f = self.num_interests
        self.kernel = self.add_weight(
            "kernel", [d, f, d],
            initializer=capsule_kernel_initializer(
                d, f, weight_seed(self.seed, "kernel")))
        self.attention_hidden = _dense(
            self.attention_units, weight_seed(self.seed, "attention_hidden"),
            activation="relu",
            name="attention_hidden")
        self.attention_out = _dense(
            1, weight_seed(self.seed, "attention_out"), activation="sigmoid",
            name="attention_out")
        self.attention_hidden.build([None, None, d + self.profile_dim])
        self.attention_out.build([None, None, self.attention_units])
        self.initial_logits = self.add_weight(
            "initial_logits", [self.max_len, f], trainable=False,
            initializer=tf.keras.initializers.TruncatedNormal(
                stddev=1.0, seed=weight_seed(self.seed, "initial_logits")))
        super().build(input_shape)

    def user_attention(self, items, profile):
        """[B, L] a_l = sigmoid(w2 . relu(W1 [e_l; p] + b1) + b2)."""
        length = tf.shape(items)[1]
        tiled = tf.tile(profile[:, None], [1, length, 1])
        hidden = self.attention_hidden(tf.concat([items, tiled], axis=-1))
        return self.attention_out(hidden)[..., 0]

    def call(self, items, mask, profile):
        mask = tf.cast(mask, items.dtype)
        attention = self.user_attention(items, profile)           # [B, L]
        u = tf.einsum("bld,dfe->bfle", items, self.kernel)      # [B,F,L,d]
        length = tf.shape(items)[1]
        logits = tf.tile(tf.transpose(self.initial_logits[:length])[None],
                         [tf.shape(items)[0], 1, 1])              # [B, F, L]
        u_stop = tf.stop_gradient(u)
        attention_stop = tf.stop_gradient(attention)
        for it in range(self.iterations):
            last = it == self.iterations - 1
            routing = tf.nn.softmax(logits, axis=1) * mask[:, None, :]
            u_it, a_it = (u, attention) if last else (u_stop, attention_stop)
            interests = squash(tf.einsum("bfl,bl,bfld->bfd", routing, a_it,
                                         u_it))
            if not last:
                logits = tf.einsum("bfld,bfd->bfl", u_stop, interests)
        return interests, routing, attention

    def get_config(self):
        config = super().get_config()
        config.update(num_interests=self.num_interests, max_len=self.max_len,
                      profile_dim=self.profile_dim,
                      iterations=self.iterations,
                      attention_units=self.attention_units, seed=self.seed)
        return config


@tf.keras.utils.register_keras_serializable(package="dismir_tf")
class InterestRefinement(tf.keras.layers.Layer):
    """UMI's interest refinement: profile fields gated per interest.

    g_f = sigmoid(W2 relu(W1 [p; v_f] + b1) + b2) (one gate per field),
    m_f = W4 relu(W3 [g_f * p; v_f] + b3) + b4.

    Args:
      num_fields: int. The profile's fields (p is split evenly).
      profile_dim: int. P, the size of the profile.
      output_dim: int. d, the size of the refined interests.
      gate_units: int, default 8. Hidden units of the gate net.
      seed: int. Seeds the initialisers.

    Call args:
      interests: [B, F, d] routed capsules; profile: [B, P].

    Returns:
      (interests [B, F, output_dim], gates [B, F, num_fields]).
    """

    def __init__(self, num_fields: int, profile_dim: int, output_dim: int,
                 gate_units: int = ATTENTION_UNITS, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if num_fields < 1 or output_dim < 2 or gate_units < 1:
            raise ValueError("need num_fields >= 1, output_dim >= 2, "
                             "gate_units >= 1")
        if profile_dim < 1 or profile_dim % num_fields:
            raise ValueError(f"profile_dim {profile_dim} must be a positive "
                             f"multiple of num_fields {num_fields}")
        self.num_fields = num_fields
        self.profile_dim = profile_dim
        self.output_dim = output_dim
        self.gate_units = gate_units
        self.seed = seed

    def build(self, input_shape):
        d, p = int(input_shape[-1]), self.profile_dim
        hidden = self.output_dim // 2
        self.gate_hidden = _dense(self.gate_units,
                                  weight_seed(self.seed, "gate_hidden"),
                                  activation="relu", name="gate_hidden")
        self.gate_out = _dense(self.num_fields,
                               weight_seed(self.seed, "gate_out"),
                               activation="sigmoid", name="gate_out")
        self.user_hidden = _dense(hidden, weight_seed(self.seed, "user_hidden"),
                                  activation="relu",
                                  name="user_hidden")
        self.user_out = _dense(self.output_dim,
                               weight_seed(self.seed, "user_out"),
                               name="user_out")
        for layer, fan_in in ((self.gate_hidden, p + d),
                              (self.gate_out, self.gate_units),
                              (self.user_hidden, p + d),
                              (self.user_out, hidden)):
            layer.build([None, None, fan_in])
        super().build(input_shape)

    def call(self, interests, profile):
        f = tf.shape(interests)[1]
        tiled = tf.tile(profile[:, None], [1, f, 1])              # [B, F, P]
        gates = self.gate_out(self.gate_hidden(
            tf.concat([tiled, interests], axis=-1)))              # [B, F, n]
        field_gates = tf.repeat(gates, self.profile_dim // self.num_fields,
                                axis=-1)                          # [B, F, P]
        refined = tf.concat([field_gates * tiled, interests], axis=-1)
        return self.user_out(self.user_hidden(refined)), gates

    def get_config(self):
        config = super().get_config()
        config.update(num_fields=self.num_fields,
                      profile_dim=self.profile_dim,
                      output_dim=self.output_dim,
                      gate_units=self.gate_units, seed=self.seed)
        return config


class UMI(SampledSoftmaxModel):
    """User-guided routing + interest refinement; history-derived profile;
    REMI's hard-negative sampled softmax (see the module docstring)."""

    hard_readout = True

    def __init__(self, num_items: int, config: ModelConfig, seed: int = 0,
                 **kwargs):
        super().__init__(num_items, config, seed, **kwargs)
        d = config.embedding_dim
        # The reference's item embeddings: a bare tf.get_variable, whose
        # default initializer is Glorot uniform over [N, d] (the layer is
        # not built yet, so this takes effect at build).
        self.item_embedding.embeddings_initializer = (
            tf.keras.initializers.GlorotUniform(
                seed=weight_seed(seed, "item_embedding")))
        profile_dim = PROFILE_FIELDS * PROFILE_FIELD_DIM
        # The profile stand-in: an MLP on the mean history embedding.
        self.profile_hidden = _dense(profile_dim,
                                     weight_seed(seed, "profile_hidden"),
                                     activation="relu", name="profile_hidden")
        self.profile_out = _dense(profile_dim,
                                  weight_seed(seed, "profile_out"),
                                  name="profile_out")
        self.dual_routing = UserGuidedRouting(
            config.num_interests, config.max_len, profile_dim,
            iterations=config.routing_iterations or 3,
            seed=weight_seed(seed, "user_guided_routing"),
            name="user_guided_routing")
        self.refinement = InterestRefinement(
            PROFILE_FIELDS, profile_dim, d,
            seed=weight_seed(seed, "interest_refinement"),
            name="interest_refinement")

    @property
    def negative_beta(self) -> float:
        return self.model_config.remi_beta

    def profile(self, items: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """[B, P] the profile stand-in from the history alone."""
        return self.profile_out(self.profile_hidden(masked_mean(items, mask)))

    def encode(self, history, training=False):
        mask = tf.cast(history > 0, tf.float32)
        items = self.item_embedding(history)
        profile = self.profile(items, mask)
        capsules, routing, _ = self.dual_routing(items, mask, profile)
        interests, _ = self.refinement(capsules, profile)
        return Encoded(interests=interests, weights=None, routing=routing,
                       items=items, mask=mask)
