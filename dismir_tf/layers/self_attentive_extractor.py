"""ComiRec-SA's self-attentive interest extractor (Cen et al., KDD '20)."""

from __future__ import annotations

import tensorflow as tf

from dismir_tf.initializers import he_normal, weight_seed
from dismir_tf.layers.ops import NEG_INF as _NEG_INF


@tf.keras.utils.register_keras_serializable(package="dismir_tf")
class SelfAttentiveExtractor(tf.keras.layers.Layer):
    """F interests by multi-head self-attentive pooling (ComiRec-SA).

    A = softmax over positions of W2 tanh(W1 (H + P)^T), interests = A H.
    Initialised as the reference code (torch ``kaiming_normal_``).

    Args:
      num_interests: int. F, the attention heads.
      max_len: int. L, the length of the position embedding.
      hidden_factor: int, default 4. d_a = hidden_factor * d.
      add_positions: bool, default True. Add a learned position embedding
        to the attention's input.
      seed: int. Seeds the initialisers.

    Call args:
      items: [B, L, d] history embeddings; mask: [B, L] 1 on real items.

    Returns:
      (interests [B, F, d], attention [B, F, L], 0 on padding, summing to
      1 over the real items of each interest).

    Example:
      >>> import tensorflow as tf
      >>> layer = SelfAttentiveExtractor(num_interests=4, max_len=5)
      >>> items = tf.random.normal([2, 5, 8])
      >>> mask = tf.constant([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
      >>> interests, attention = layer(items, mask)
      >>> interests.shape, attention.shape
      (TensorShape([2, 4, 8]), TensorShape([2, 4, 5]))
    """

    def __init__(
        self,
        num_interests: int,
        max_len: int,
        hidden_factor: int = 4,
        add_positions: bool = True,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_interests < 1:
            raise ValueError(f"num_interests must be >= 1, got {num_interests}")
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        if hidden_factor < 1:
            raise ValueError(f"hidden_factor must be >= 1, got {hidden_factor}")
        self.num_interests = num_interests
        self.max_len = max_len
        self.hidden_factor = hidden_factor
        self.add_positions = add_positions
        self.seed = seed

    def build(self, input_shape):
        d = int(input_shape[-1])
        hidden = self.hidden_factor * d
        self.w1 = self.add_weight(
            "w1", [d, hidden], initializer=he_normal(d, weight_seed(self.seed, "w1"))
        )
        self.w2 = self.add_weight(
            "w2",
            [hidden, self.num_interests],
            initializer=he_normal(hidden, weight_seed(self.seed, "w2")),
        )
        if self.add_positions:
            # torch's fan_in of a [1, L, d] tensor is L * d.
            self.positions = self.add_weight(
                "positions",
                [self.max_len, d],
                initializer=he_normal(
                    self.max_len * d, weight_seed(self.seed, "positions")
                ),
            )
        super().build(input_shape)

    def call(self, items, mask):
        mask = tf.cast(mask, items.dtype)
        keys = items
        if self.add_positions:
            keys = items + self.positions[None, : tf.shape(items)[1]]
        logits = tf.einsum("blh,hf->bfl", tf.tanh(keys @ self.w1), self.w2)
        logits = tf.where(mask[:, None, :] > 0, logits, _NEG_INF)
        attention = tf.nn.softmax(logits, axis=-1)  # [B, F, L]
        attention = attention * mask[:, None, :]
        return tf.einsum("bfl,bld->bfd", attention, items), attention

    def get_config(self):
        config = super().get_config()
        config.update(
            num_interests=self.num_interests,
            max_len=self.max_len,
            hidden_factor=self.hidden_factor,
            add_positions=self.add_positions,
            seed=self.seed,
        )
        return config
