"""PIMIRec / PIMI (Chen et al., IJCAI '21, arXiv 2106.04415).

"Exploring Periodicity and Interactivity in Multi-Interest Framework for
Sequential Recommendation": ComiRec-SA's multi-interest extractor fed with
item representations that know (1) the time intervals between the user's
interactions (periodicity) and (2) their neighbours in the sequence and the
sequence as a whole (interactivity).  Per history of length L:

1. Periodicity.  The interval matrix M [L, L] with
   m_ij = min(floor(|t_i - t_j|), K) (t in time units, K =
   ``pimirec_time_span``), an embedding E_k (k = 0..K) per clipped interval,
   and attention over each row: a_ij = softmax_j(E_{m_ij} . w) over the real
   items j, time_i = sum_j a_ij E_{m_ij}.  The item representation is
   h_i = e_i + p_i + time_i (p a learned position embedding).
2. Interactivity.  A star graph: every item node i is linked to its previous
   and next item (local) and to a virtual central node c (global), which
   starts as the mean of the h_i.  ``pimirec_graph_layers`` rounds of
       h_i <- ReLU(h_i + Attn(h_i, [h_{i-1}, h_{i+1}, c, e_i + p_i]))
       c   <- ReLU(c + Attn(c, [c, h_1, ..., h_L]))
   with Attn(q, N) = softmax(q Wq (N Wk)^T / sqrt(d)) N Wv over the
   existing neighbours (the first item has no previous, the last no next;
   padding is never a neighbour), one set of weights per round and per kind
   of node (the last round's centre update, which nothing reads, is left
   out).
3. Multi-interest extraction: ComiRec-SA's A = softmax(W2 tanh(W1 H^T)) on
   the graph's item features H (no extra position embedding: p is already
   in them), interests = A E with E the plain item embeddings
   (:class:`SelfAttentiveExtractor`'s attention, reused).
4. Training and retrieval as ComiRec-SA (:class:`SampledSoftmaxModel`): the
   interest closest to the target (hard readout) scored with a sampled
   softmax over shared uniform negatives; at retrieval every interest
   retrieves its own top-N ('merge').

What follows the authors' code (TF1, read for facts only): the clipped
|t_i - t_j| interval matrix with K = 64 (its --time_span default), the
interval attention through one learned vector w, the sum e + p + time, the
star graph with previous/next/centre neighbours plus the node's own e + p,
3 rounds, ReLU after each attention, the central node initialised as the
masked mean, extraction on the graph output pooling the plain embeddings,
hard readout + sampled softmax.  What was chosen here:

* Time unit: the authors' data iterator (which turns timestamps into the
  matrix) was not found; ``pimirec_time_unit`` defaults to one day
  (86,400 s), the unit in which a clip at K = 64 makes sense for Amazon
  review times (day resolution).
* Attention: single-head scaled dot-product with Q/K/V projections and a
  residual, no output projection, no dropout, no layer norm (the authors
  call a transformer-style ``multihead_attention`` helper whose exact
  settings were not read); node and centre rounds have separate weights.
* Data sets with only an order (beauty's seq_lines, the synthetic set): the
  pipeline gives each history item its position in the window, i.e. every
  interaction one time unit after the previous, so m_ij = min(|i - j|, K)
  (the periodicity module then sees a constant interval between
  neighbours and acts as a clipped relative-position embedding).  The same
  fallback is used whenever no times are given, e.g. by the export's
  history-only serving signature (see :meth:`PIMIRec.encode`).
"""

from __future__ import annotations

import tensorflow as tf

from dismir_tf import types
from dismir_tf.config import ModelConfig
from dismir_tf.initializers import he_normal, weight_seed
from dismir_tf.layers import (
    IntervalAttention,
    SelfAttentiveExtractor,
    StarGraphInteraction,
)
from dismir_tf.models.base import Encoded
from dismir_tf.models.sampled_softmax import SampledSoftmaxModel


def interval_buckets(times: tf.Tensor, max_interval: int) -> tf.Tensor:
    """[B, L, L] int32 m_ij = min(floor(|t_i - t_j|), K).

    Args:
      times: [B, L] history times in time units (``types.HISTORY_TIME``).
      max_interval: K; intervals of K units or more share bucket K.
    """
    gaps = tf.abs(times[:, :, None] - times[:, None, :])
    return tf.cast(tf.minimum(tf.floor(gaps), float(max_interval)), tf.int32)


def position_times(history: tf.Tensor) -> tf.Tensor:
    """[B, L] float32 order-only times: the position in the window, 0 on
    padding (what the pipeline gives for data sets without timestamps)."""
    pos = tf.cast(tf.range(tf.shape(history)[1]), tf.float32)[None]
    return tf.where(history > 0, pos, 0.0)


class PIMIRec(SampledSoftmaxModel):
    """Periodicity + interactivity + ComiRec-SA extraction (see module doc).

    Its ``input_features`` include ``types.HISTORY_TIME``: the pipeline adds
    the history times to its training batches and evaluation examples for
    this model (in units of ``pimirec_time_unit`` seconds); other models
    never pay for them.
    """

    hard_readout = True
    input_features = (types.HISTORY, types.HISTORY_TIME)

    def __init__(self, num_items: int, config: ModelConfig, seed: int = 0, **kwargs):
        super().__init__(num_items, config, seed, **kwargs)
        d, length = config.embedding_dim, config.max_len
        self.position_embedding = tf.keras.layers.Embedding(
            length,
            d,
            name="position_embedding",
            embeddings_initializer=he_normal(
                d, weight_seed(seed, "position_embedding")
            ),
        )
        self.periodicity = IntervalAttention(
            config.own.time_span,
            d,
            seed=weight_seed(seed, "periodicity"),
            name="periodicity",
        )
        self.interactivity = StarGraphInteraction(
            config.own.graph_layers,
            seed=weight_seed(seed, "interactivity"),
            name="interactivity",
        )
        self.extractor = SelfAttentiveExtractor(
            config.num_interests,
            length,
            add_positions=False,
            seed=weight_seed(seed, "self_attention"),
            name="self_attention",
        )

    def item_features(self, history, times=None):
        """(graph item features H [B, L, d], plain embeddings [B, L, d],
        mask [B, L], interval attention [B, L, L])."""
        if times is None:
            times = position_times(history)
        mask = tf.cast(history > 0, tf.float32)
        m3 = mask[:, :, None]
        items = self.item_embedding(history) * m3
        length = tf.shape(history)[1]
        initial = (items + self.position_embedding(tf.range(length))[None]) * m3
        buckets = interval_buckets(
            tf.cast(times, tf.float32), self.model_config.own.time_span
        )
        time_emb, interval_attention = self.periodicity(buckets, mask)
        nodes, _ = self.interactivity((initial + time_emb) * m3, initial, mask)
        return nodes, items, mask, interval_attention

    def encode(self, features, training=False, seed=None):
        """History [B, L] (+ ``types.HISTORY_TIME`` [B, L], else the
        positions) -> interests [B, F, d] = A E, routing = A [B, F, L]."""
        nodes, items, mask, _ = self.item_features(
            features[types.HISTORY], features.get(types.HISTORY_TIME)
        )
        _, attention = self.extractor(nodes, mask)
        interests = tf.einsum("bfl,bld->bfd", attention, items)
        return Encoded(
            interests=interests, weights=None, routing=attention, items=items, mask=mask
        )
