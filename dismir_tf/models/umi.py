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
  test users never appear in training (docs/protocol.md, "Preprocessing and
  the user split"), so it would be untrained for every evaluated user, and
  the export serves from the history alone.  The stand-in is computed from
  the user's own history, which exists for any user at training, test and
  serving time:
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
  softmax_j(beta * s_j), beta = ``UMIParams.remi_beta`` (flag ``--remi_beta``,
  the same temperature as REMI), see :func:`sampled_softmax_loss`.
  REMI's routing regulariser is not part of it.
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
It matters: the item embeddings' scale decides whether UMI overfits early
(docs/models.md, "UMI").
"""

from __future__ import annotations

import tensorflow as tf

from dismir_tf import types
from dismir_tf.config import ModelConfig
from dismir_tf.initializers import weight_seed
from dismir_tf.layers import InterestRefinement, UserGuidedRouting
from dismir_tf.layers.ops import dense as _dense
from dismir_tf.layers.ops import masked_mean
from dismir_tf.models.base import Encoded
from dismir_tf.models.sampled_softmax import SampledSoftmaxModel

# The reference's profile: three categorical fields of 8 dims each.
PROFILE_FIELDS = 3
PROFILE_FIELD_DIM = 8
# Hidden units of the user-guided attention and the refinement gate nets.
ATTENTION_UNITS = 8


class UMI(SampledSoftmaxModel):
    """User-guided routing + interest refinement; history-derived profile;
    REMI's hard-negative sampled softmax (see the module docstring)."""

    hard_readout = True

    def __init__(self, num_items: int, config: ModelConfig, seed: int = 0, **kwargs):
        super().__init__(num_items, config, seed, **kwargs)
        d = config.embedding_dim
        # The reference's item embeddings: a bare tf.get_variable, whose
        # default initializer is Glorot uniform over [N, d] (the layer is
        # not built yet, so this takes effect at build).
        self.item_embedding.embeddings_initializer = (
            tf.keras.initializers.GlorotUniform(
                seed=weight_seed(seed, "item_embedding")
            )
        )
        profile_dim = PROFILE_FIELDS * PROFILE_FIELD_DIM
        # The profile stand-in: an MLP on the mean history embedding.
        self.profile_hidden = _dense(
            profile_dim,
            weight_seed(seed, "profile_hidden"),
            activation="relu",
            name="profile_hidden",
        )
        self.profile_out = _dense(
            profile_dim, weight_seed(seed, "profile_out"), name="profile_out"
        )
        self.dual_routing = UserGuidedRouting(
            config.num_interests,
            config.max_len,
            profile_dim,
            iterations=config.routing_iterations or 3,
            seed=weight_seed(seed, "user_guided_routing"),
            name="user_guided_routing",
        )
        self.refinement = InterestRefinement(
            PROFILE_FIELDS,
            profile_dim,
            d,
            seed=weight_seed(seed, "interest_refinement"),
            name="interest_refinement",
        )

    @property
    def negative_beta(self) -> float:
        return self.model_config.own.remi_beta

    def profile(self, items: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """[B, P] the profile stand-in from the history alone."""
        return self.profile_out(self.profile_hidden(masked_mean(items, mask)))

    def encode(self, features, training=False, seed=None):
        history = features[types.HISTORY]
        mask = tf.cast(history > 0, tf.float32)
        items = self.item_embedding(history)
        profile = self.profile(items, mask)
        capsules, routing, _ = self.dual_routing(items, mask, profile)
        interests, _ = self.refinement(capsules, profile)
        return Encoded(
            interests=interests, weights=None, routing=routing, items=items, mask=mask
        )
