"""UMI's user-guided routing (Chai et al., CIKM '22; dismir_tf/models/umi.py)."""

from __future__ import annotations

import tensorflow as tf

from dismir_tf.initializers import weight_seed
from dismir_tf.layers.ops import capsule_kernel_initializer, squash
from dismir_tf.layers.ops import dense as _dense

# Hidden units of the user-guided attention and the refinement gate nets
# (the reference's).
ATTENTION_UNITS = 8


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

    Example:
      >>> import tensorflow as tf
      >>> layer = UserGuidedRouting(num_interests=4, max_len=5, profile_dim=6)
      >>> items = tf.random.normal([2, 5, 8])
      >>> mask = tf.constant([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
      >>> profile = tf.random.normal([2, 6])
      >>> interests, routing, attention = layer(items, mask, profile)
      >>> interests.shape, routing.shape, attention.shape
      (TensorShape([2, 4, 8]), TensorShape([2, 4, 5]), TensorShape([2, 5]))
    """

    def __init__(
        self,
        num_interests: int,
        max_len: int,
        profile_dim: int,
        iterations: int = 3,
        attention_units: int = ATTENTION_UNITS,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("num_interests", num_interests),
            ("max_len", max_len),
            ("profile_dim", profile_dim),
            ("iterations", iterations),
            ("attention_units", attention_units),
        ):
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
            "kernel",
            [d, f, d],
            initializer=capsule_kernel_initializer(
                d, f, weight_seed(self.seed, "kernel")
            ),
        )
        self.attention_hidden = _dense(
            self.attention_units,
            weight_seed(self.seed, "attention_hidden"),
            activation="relu",
            name="attention_hidden",
        )
        self.attention_out = _dense(
            1,
            weight_seed(self.seed, "attention_out"),
            activation="sigmoid",
            name="attention_out",
        )
        self.attention_hidden.build([None, None, d + self.profile_dim])
        self.attention_out.build([None, None, self.attention_units])
        self.initial_logits = self.add_weight(
            "initial_logits",
            [self.max_len, f],
            trainable=False,
            initializer=tf.keras.initializers.TruncatedNormal(
                stddev=1.0, seed=weight_seed(self.seed, "initial_logits")
            ),
        )
        super().build(input_shape)

    def user_attention(self, items, profile):
        """[B, L] a_l = sigmoid(w2 . relu(W1 [e_l; p] + b1) + b2)."""
        length = tf.shape(items)[1]
        tiled = tf.tile(profile[:, None], [1, length, 1])
        hidden = self.attention_hidden(tf.concat([items, tiled], axis=-1))
        return self.attention_out(hidden)[..., 0]

    def call(self, items, mask, profile):
        mask = tf.cast(mask, items.dtype)
        attention = self.user_attention(items, profile)  # [B, L]
        u = tf.einsum("bld,dfe->bfle", items, self.kernel)  # [B,F,L,d]
        length = tf.shape(items)[1]
        logits = tf.tile(
            tf.transpose(self.initial_logits[:length])[None], [tf.shape(items)[0], 1, 1]
        )  # [B, F, L]
        u_stop = tf.stop_gradient(u)
        attention_stop = tf.stop_gradient(attention)
        for it in range(self.iterations):
            last = it == self.iterations - 1
            routing = tf.nn.softmax(logits, axis=1) * mask[:, None, :]
            u_it, a_it = (u, attention) if last else (u_stop, attention_stop)
            interests = squash(tf.einsum("bfl,bl,bfld->bfd", routing, a_it, u_it))
            if not last:
                logits = tf.einsum("bfld,bfd->bfl", u_stop, interests)
        return interests, routing, attention

    def get_config(self):
        config = super().get_config()
        config.update(
            num_interests=self.num_interests,
            max_len=self.max_len,
            profile_dim=self.profile_dim,
            iterations=self.iterations,
            attention_units=self.attention_units,
            seed=self.seed,
        )
        return config
