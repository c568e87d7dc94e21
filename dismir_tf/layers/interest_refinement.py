"""UMI's interest refinement gate (Chai et al., CIKM '22; dismir_tf/models/umi.py)."""

from __future__ import annotations

import tensorflow as tf

from dismir_tf.initializers import weight_seed
from dismir_tf.layers.ops import dense as _dense

# Hidden units of the user-guided attention and the refinement gate nets
# (the reference's).
ATTENTION_UNITS = 8


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

    Example:
      >>> import tensorflow as tf
      >>> layer = InterestRefinement(num_fields=3, profile_dim=6, output_dim=8)
      >>> interests = tf.random.normal([2, 4, 8])
      >>> profile = tf.random.normal([2, 6])
      >>> refined, gates = layer(interests, profile)
      >>> refined.shape, gates.shape
      (TensorShape([2, 4, 8]), TensorShape([2, 4, 3]))
    """

    def __init__(
        self,
        num_fields: int,
        profile_dim: int,
        output_dim: int,
        gate_units: int = ATTENTION_UNITS,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_fields < 1 or output_dim < 2 or gate_units < 1:
            raise ValueError("need num_fields >= 1, output_dim >= 2, gate_units >= 1")
        if profile_dim < 1 or profile_dim % num_fields:
            raise ValueError(
                f"profile_dim {profile_dim} must be a positive "
                f"multiple of num_fields {num_fields}"
            )
        self.num_fields = num_fields
        self.profile_dim = profile_dim
        self.output_dim = output_dim
        self.gate_units = gate_units
        self.seed = seed

    def build(self, input_shape):
        d, p = int(input_shape[-1]), self.profile_dim
        hidden = self.output_dim // 2
        self.gate_hidden = _dense(
            self.gate_units,
            weight_seed(self.seed, "gate_hidden"),
            activation="relu",
            name="gate_hidden",
        )
        self.gate_out = _dense(
            self.num_fields,
            weight_seed(self.seed, "gate_out"),
            activation="sigmoid",
            name="gate_out",
        )
        self.user_hidden = _dense(
            hidden,
            weight_seed(self.seed, "user_hidden"),
            activation="relu",
            name="user_hidden",
        )
        self.user_out = _dense(
            self.output_dim, weight_seed(self.seed, "user_out"), name="user_out"
        )
        for layer, fan_in in (
            (self.gate_hidden, p + d),
            (self.gate_out, self.gate_units),
            (self.user_hidden, p + d),
            (self.user_out, hidden),
        ):
            layer.build([None, None, fan_in])
        super().build(input_shape)

    def call(self, interests, profile):
        f = tf.shape(interests)[1]
        tiled = tf.tile(profile[:, None], [1, f, 1])  # [B, F, P]
        gates = self.gate_out(
            self.gate_hidden(tf.concat([tiled, interests], axis=-1))
        )  # [B, F, n]
        field_gates = tf.repeat(
            gates, self.profile_dim // self.num_fields, axis=-1
        )  # [B, F, P]
        refined = tf.concat([field_gates * tiled, interests], axis=-1)
        return self.user_out(self.user_hidden(refined)), gates

    def get_config(self):
        config = super().get_config()
        config.update(
            num_fields=self.num_fields,
            profile_dim=self.profile_dim,
            output_dim=self.output_dim,
            gate_units=self.gate_units,
            seed=self.seed,
        )
        return config
