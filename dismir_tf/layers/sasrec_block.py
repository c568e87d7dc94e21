"""One SASRec self-attention block (Kang and McAuley, ICDM '18;
dismir_tf/models/sasrec.py, docs/sasrec.md).
"""

from __future__ import annotations

import tensorflow as tf

from dismir_tf.initializers import weight_seed
from dismir_tf.layers.ops import NEG_INF as _NEG_INF
from dismir_tf.layers.ops import stateless_dropout as _dropout


class SASRecBlock(tf.keras.layers.Layer):
    """One self-attention block of the reference (modules.py).

    Args:
      dim: d.
      heads: attention heads (d must be a multiple).
      dropout: rate on the attention weights and after each feed-forward
        layer.
      seed: initialiser seed.

    Call: x [B, L, d], mask [B, L] float, step seed [2] or None -> [B, L, d].

    Example:
      >>> import tensorflow as tf
      >>> layer = SASRecBlock(dim=8, heads=2, dropout=0.2, seed=0, index=0)
      >>> x = tf.random.normal([2, 5, 8])
      >>> mask = tf.constant([[1., 1., 1., 0., 0.], [1., 1., 1., 1., 1.]])
      >>> layer(x, mask).shape
      TensorShape([2, 5, 8])
    """

    def __init__(
        self, dim: int, heads: int, dropout: float, seed: int, index: int, **kwargs
    ):
        super().__init__(**kwargs)
        if dim % heads:
            raise ValueError(
                f"embedding_dim {dim} is not a multiple of sasrec_heads {heads}"
            )
        self.dim, self.heads, self.dropout, self.index = (dim, heads, dropout, index)

        def dense(name, activation=None):
            return tf.keras.layers.Dense(
                dim,
                activation=activation,
                name=name,
                kernel_initializer=tf.keras.initializers.GlorotUniform(
                    weight_seed(seed, f"block{index}/{name}")
                ),
            )

        self.attention_norm = tf.keras.layers.LayerNormalization(
            epsilon=1e-8, name="attention_norm"
        )
        self.query, self.key, self.value = (
            dense("query"),
            dense("key"),
            dense("value"),
        )
        self.ffn_norm = tf.keras.layers.LayerNormalization(
            epsilon=1e-8, name="ffn_norm"
        )
        self.ffn1, self.ffn2 = dense("ffn1", "relu"), dense("ffn2")

    def _split(self, x: tf.Tensor) -> tf.Tensor:
        b, n = tf.shape(x)[0], tf.shape(x)[1]
        x = tf.reshape(x, [b, n, self.heads, self.dim // self.heads])
        return tf.transpose(x, [0, 2, 1, 3])  # [B, H, L, d/H]

    def call(self, x, mask, seed=None):
        salt = 10 * (self.index + 1)  # the input dropout uses 1
        n = tf.shape(x)[1]
        queries = self.attention_norm(x)
        q = self._split(self.query(queries))
        k = self._split(self.key(x))
        v = self._split(self.value(x))
        scores = tf.matmul(q, k, transpose_b=True) / (
            float(self.dim // self.heads) ** 0.5
        )  # [B, H, L, L]
        causal = tf.linalg.band_part(tf.ones([n, n]), -1, 0)
        allowed = causal[None, None] * mask[:, None, None, :]
        scores = tf.where(allowed > 0, scores, _NEG_INF)
        weights = tf.nn.softmax(scores, axis=-1) * mask[:, None, :, None]
        weights = _dropout(weights, self.dropout, seed, salt + 1)
        out = tf.matmul(weights, v)  # [B, H, L, d/H]
        out = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [tf.shape(x)[0], n, self.dim])
        x = out + queries
        h = self.ffn_norm(x)
        f = _dropout(self.ffn1(h), self.dropout, seed, salt + 2)
        f = _dropout(self.ffn2(f), self.dropout, seed, salt + 3)
        return (f + h) * mask[:, :, None]
