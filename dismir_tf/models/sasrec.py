"""SASRec: causal self-attention over the ordered history (Kang and
McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018).

Follows the authors' TensorFlow code (github.com/kang205/SASRec, model.py
and modules.py; docs/sasrec.md compares the two line by line and lists
every difference):

* input: the item embeddings times sqrt(d), plus a learned position
  embedding, dropout, padding zeroed.  Positions count as in the
  reference's left-padded window: the newest item is always at position
  L - 1 (here the history is right-padded, so position ``t + L - n`` for
  the t-th of n items);
* ``sasrec_blocks`` blocks of: multi-head attention (``sasrec_heads``) with
  queries from LayerNorm(x) and keys and values from x, causal, padded keys
  masked, dropout on the attention weights, residual on the normalised
  queries; then a point-wise feed-forward network (ReLU, two d x d
  layers, dropout after each) on LayerNorm(x) with its residual; padding
  zeroed after each block; a final LayerNorm;
* the user vector is the output at the newest item (single-interest);
* the loss is the paper's: at every real position t, binary cross-entropy
  of the next item (the history's t+1-th item; the batch's target after
  the newest) against one uniformly drawn negative.

Dropout draws come from the step's stateless seed (``encode``'s ``seed``), so
a batch is still a function of the run seed and the step.

Shapes: history [B, L] int32 (right-padded with 0); interests [B, 1, d].
"""

from __future__ import annotations

import tensorflow as tf

from dismir_tf import types
from dismir_tf.config import ModelConfig
from dismir_tf.initializers import weight_seed
from dismir_tf.layers import SASRecBlock
from dismir_tf.layers.ops import stateless_dropout as _dropout
from dismir_tf.models.base import Encoded, RetrievalModel

# Uniform draws per position from which the negative is the first outside
# the example's window (sasrec.negatives).
NEGATIVE_DRAWS = 4


def next_items(history: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """[B, L] the item after each position of right-padded histories: the
    history's next item, the target after the newest, 0 on padding.

    Args:
      history: [B, L] int32, right-padded with 0.
      target: [B] int32, the item after the newest.
    """
    n = tf.reduce_sum(tf.cast(history > 0, tf.int32), 1)
    shifted = tf.concat([history[:, 1:], tf.zeros_like(history[:, :1])], axis=1)
    is_last = tf.equal(tf.range(tf.shape(history)[1])[None], (n - 1)[:, None])
    return tf.where(is_last, target[:, None], shifted)


class SASRec(RetrievalModel):
    """Causal self-attention; the newest item's output is the user."""

    multi_interest = False

    def __init__(self, num_items: int, config: ModelConfig, seed: int = 0, **kwargs):
        super().__init__(num_items, config, seed, **kwargs)
        d = config.embedding_dim
        # Both tables Glorot-uniform, as the reference's embedding().
        self.item_embedding.embeddings_initializer = (
            tf.keras.initializers.GlorotUniform(
                seed=weight_seed(seed, "item_embedding")
            )
        )
        self.position_embedding = tf.keras.layers.Embedding(
            config.max_len,
            d,
            name="position_embedding",
            embeddings_initializer=tf.keras.initializers.GlorotUniform(
                seed=weight_seed(seed, "position_embedding")
            ),
        )
        self.blocks = [
            SASRecBlock(
                d, config.own.heads, config.own.dropout, seed, i, name=f"block{i}"
            )
            for i in range(config.own.blocks)
        ]
        self.final_norm = tf.keras.layers.LayerNormalization(
            epsilon=1e-8, name="final_norm"
        )

    def encode(self, features, training=False, seed=None):
        """features[HISTORY] [B, L] -> Encoded (interests [B, 1, d];
        ``sequence`` [B, L, d] the output at every position); dropout draws
        from ``seed`` in training."""
        history = features[types.HISTORY]
        cfg = self.model_config
        seed = seed if training else None
        mask = tf.cast(history > 0, tf.float32)  # [B, L]
        n = tf.cast(tf.reduce_sum(mask, 1), tf.int32)  # [B]
        max_len = tf.shape(history)[1]
        items = self.item_embedding(history)  # [B, L, d]
        # Positions of the reference's left-padded window: the newest
        # item at max_len - 1.
        pos = tf.range(max_len)[None] + (max_len - n)[:, None]
        pos = tf.clip_by_value(pos, 0, cfg.max_len - 1)
        x = items * float(cfg.embedding_dim) ** 0.5 + self.position_embedding(pos)
        x = _dropout(x, cfg.own.dropout, seed, 1) * mask[:, :, None]
        for block in self.blocks:
            x = block(x, mask, seed)
        x = self.final_norm(x)  # [B, L, d]
        last = tf.maximum(n - 1, 0)
        user = tf.gather(x, last, batch_dims=1)  # [B, d]
        return Encoded(
            interests=user[:, None],
            weights=None,
            routing=None,
            items=items,
            mask=mask,
            sequence=x,
        )

    def rec_loss_per_example(self, batch, enc, seed):
        """[B] the paper's loss, -log sigmoid(s_t . e_next) -
        log(1 - sigmoid(s_t . e_neg)) at every real position t, summed per
        example and divided by the batch's mean number of real positions,
        so that the batch mean (``compute_average_loss``) is the mean over
        all positions of the batch, as the reference's
        ``sum(loss * istarget) / sum(istarget)``.  The negative of a
        position is the first of ``NEGATIVE_DRAWS`` uniform draws that is
        neither in the example's window nor its target (the reference draws
        outside the user's whole training sequence, which a batch does not
        carry)."""
        history = batch[types.HISTORY]
        mask = enc.mask
        nxt = next_items(history, batch[types.TARGET])
        neg = self.negatives(history, batch[types.TARGET], seed)  # [B, L]
        seq = enc.sequence
        pos_logit = tf.reduce_sum(seq * self.item_embedding(nxt), -1)
        neg_logit = tf.reduce_sum(seq * self.item_embedding(neg), -1)
        per_position = tf.nn.softplus(-pos_logit) + tf.nn.softplus(neg_logit)  # [B, L]
        mean_positions = tf.maximum(tf.reduce_mean(tf.reduce_sum(mask, 1)), 1.0)
        return tf.reduce_sum(per_position * mask, 1) / mean_positions

    def negatives(
        self, history: tf.Tensor, target: tf.Tensor, seed: tf.Tensor
    ) -> tf.Tensor:
        """[B, L] one negative per position: the first of NEGATIVE_DRAWS
        uniform items outside the example's window and target (the last
        draw if all of them are inside, vanishingly rare)."""
        b, n = tf.shape(history)[0], tf.shape(history)[1]
        draws = self.sample_items([b, n, NEGATIVE_DRAWS], seed)  # [B, L, K]
        seen = tf.concat([history, target[:, None]], 1)  # [B, L+1]
        inside = tf.reduce_any(
            draws[:, :, :, None] == seen[:, None, None, :], -1
        )  # [B, L, K]
        first = tf.argmax(
            tf.cast(~inside, tf.int32), axis=-1, output_type=tf.int32
        )  # [B, L]
        first = tf.where(tf.reduce_any(~inside, -1), first, NEGATIVE_DRAWS - 1)
        return tf.gather(draws, first, batch_dims=2)
