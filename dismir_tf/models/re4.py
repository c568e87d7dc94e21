"""Re4 (Zhang et al., WWW '22): ComiRec-SA plus three backward flows.

Re4 keeps ComiRec's forward flow (self-attentive interests, the interest
closest to the target scored by a sampled softmax) and adds three training
terms that look back from each interest m_k to the history items e_j.  What
follows the paper and its official code (github.com/DeerSheep0314/
Re4-Learning-to-Re-contrast-Re-attend-Re-construct-for-Multi-interest-
Recommendation, ``src/model.py``, read for the maths, not copied):

* representative (positive) items of interest k: the history items whose
  forward attention a_kj exceeds a threshold, 1/|history| of the user by
  default (the code's ``--thre -1``), or a fixed ``re4_threshold``;
* re-contrast, weight ``re4_contrast_weight`` (the code's ``ct_lambda``):
  with cosine similarities c(.,.) and temperature tau (``re4_temperature``,
  the code's ``t_cont`` = 0.02), every positive j of interest k gives
  -log( e^{c(m_k,e_j)/tau} / D_k ), where D_k sums e^{c/tau} over all of
  the user's real history items (positives included), the user's other
  interests k' != k, and the real history items of another user of the
  batch (the previous row: the code's ``torch.roll`` by one).  The terms
  are averaged over all B x F x L (interest, position) cells, cells that
  are not positives counting 0, as the code's mean;
* re-attend, weight ``re4_attend_weight`` (``att_lambda``): the
  cross-entropy between softmax_j(m_k . e_j) over the real items and the
  forward attention a_k (its log), averaged over users and interests; as in
  the code the target distribution is not detached;
* re-construct, weight ``re4_construct_weight`` (``cs_lambda``): each
  interest is decoded into L proposal vectors (a dense layer d -> L*d), a
  self-attentive layer (softmax over the non-padding proposals of
  w_l . tanh(W3 r_p)) mixes W5-projected proposals into one vector per
  history position l, and the squared error to e_l is kept where l is a
  positive of the interest and averaged over all B x F x L x d entries.
  The item embeddings are targets with gradient, as in the code.

Choices of this implementation:

* The backbone is this repository's ComiRec-SA (:class:`ComiRecSA`: the
  ComiRec paper's attention with d_a = 4d and the learned position
  embedding, interests A H, hard readout, S shared uniform negatives), so
  that re4 differs from comirec-sa only by the three terms (with all three
  weights 0 it *is* comirec-sa, tested).  Re4's script adds a value
  projection (A H W2), no position embedding, a tanh(Linear) head on the
  interests before the readout and retrieval, and 5,000 negatives drawn
  without the batch's targets; none of these is part of ComiRec, which the
  Re4 paper presents as its forward flow, and they are left out.
* :func:`dismir_tf.models.regularizers.backward_flow_loss` (the DisMIR
  paper's eq. 2, MIR-BF) is the DisMIR paper's one-line summary of Re4's
  re-contrast: one argmax representative, inner products, the history as
  the only negatives, no temperature.  Re4's own re-contrast differs in
  each of these points, so it is written here from the code and eq. 2 is
  not reused for it.
* Initialisation: the decoder's weights are drawn N(0, 2/fan_in) as every
  weight of the ComiRec/REMI reference (the Re4 script uses torch.randn,
  N(0, 1), for W3, W3_2, W5 and torch's default for the dense layer); the
  dense layer's bias starts at 0.
* The forward attention's log is taken on the attention probabilities
  (floored at the smallest normal float32) since the extractor returns
  probabilities, not logits; it equals the code's log_softmax of the
  logits wherever the probability does not underflow.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dismir_tf.config import ModelConfig
from dismir_tf.initializers import weight_seed
from dismir_tf.layers import InterestReconstructor
from dismir_tf.models.comirec import ComiRecSA

_NEG_INF = -1e9
_TINY = float(np.finfo(np.float32).tiny)


def positive_items(
    attention: tf.Tensor, mask: tf.Tensor, threshold: float = 0.0
) -> tf.Tensor:
    """[B, F, L] bool: the items each interest attends to above threshold.

    Args:
      attention: [B, F, L] forward attention (0 on padding).
      mask: [B, L] 1 on real items.
      threshold: a fixed threshold in (0, 1), or 0 for 1 / |history| of
        each user (Re4's default).
    """
    mask = tf.cast(mask, attention.dtype)
    if threshold > 0:
        gate = tf.fill(tf.shape(mask)[:1], tf.cast(threshold, attention.dtype))
    else:
        gate = 1.0 / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
    return tf.logical_and(attention > gate[:, None, None], mask[:, None, :] > 0)


def re_contrast_loss(
    interests: tf.Tensor,
    items: tf.Tensor,
    positives: tf.Tensor,
    mask: tf.Tensor,
    temperature: float,
) -> tf.Tensor:
    """[B, F, L] Re4's re-contrast term per (interest, position) cell.

    Cell (k, j) holds -log(e^{c(m_k, e_j)/tau} / D_k) when j is a positive
    of k and 0 otherwise; D_k sums over the user's real items, the user's
    other interests and the real items of the previous user of the batch.

    Args:
      interests: [B, F, d] m_k.
      items: [B, L, d] history item embeddings.
      positives: [B, F, L] bool, see :func:`positive_items`.
      mask: [B, L] 1 on real items.
      temperature: tau.
    """
    m = tf.math.l2_normalize(interests, axis=-1)
    e = tf.math.l2_normalize(items, axis=-1)
    valid = tf.cast(mask, m.dtype) > 0  # [B, L]
    to_items = tf.einsum("bfd,bld->bfl", m, e) / temperature
    num_interests = tf.shape(m)[1]
    to_interests = tf.einsum("bfd,bgd->bfg", m, m) / temperature
    other = tf.eye(num_interests, dtype=m.dtype)[None] == 0  # k' != k
    to_others = tf.einsum("bfd,bld->bfl", m, tf.roll(e, 1, axis=0))
    to_others = to_others / temperature
    log_denominator = tf.reduce_logsumexp(
        tf.concat(
            [
                tf.where(valid[:, None, :], to_items, _NEG_INF),
                tf.where(other, to_interests, _NEG_INF),
                tf.where(tf.roll(valid, 1, axis=0)[:, None, :], to_others, _NEG_INF),
            ],
            axis=-1,
        ),
        axis=-1,
    )  # [B, F]
    return tf.where(positives, log_denominator[:, :, None] - to_items, 0.0)


def re_attend_loss(
    interests: tf.Tensor, items: tf.Tensor, attention: tf.Tensor, mask: tf.Tensor
) -> tf.Tensor:
    """[B, F] cross-entropy of the forward attention a_k against
    softmax_j(m_k . e_j) over the real items (Re4's re-attend)."""
    valid = (tf.cast(mask, attention.dtype) > 0)[:, None, :]  # [B, 1, L]
    scores = tf.einsum("bfd,bld->bfl", interests, items)
    target = tf.nn.softmax(tf.where(valid, scores, _NEG_INF), axis=-1)
    log_attention = tf.where(valid, tf.math.log(tf.maximum(attention, _TINY)), 0.0)
    return -tf.reduce_sum(target * log_attention, axis=-1)


def re_construct_loss(
    reconstructed: tf.Tensor, items: tf.Tensor, positives: tf.Tensor
) -> tf.Tensor:
    """[B, F, L, d] squared error of interest k's reconstruction of e_l,
    kept where l is a positive of k (0 elsewhere)."""
    error = tf.square(reconstructed - items[:, None])
    return tf.where(positives[..., None], error, 0.0)


class Re4(ComiRecSA):
    """ComiRec-SA trained with Re4's re-contrast, re-attend, re-construct."""

    def __init__(self, num_items: int, config: ModelConfig, seed: int = 0, **kwargs):
        super().__init__(num_items, config, seed, **kwargs)
        self.reconstructor = InterestReconstructor(
            config.max_len, seed=weight_seed(seed, "re_construct"), name="re_construct"
        )
        # Built now: the decoder is only called by the training loss, and
        # checkpoints must find its weights before the first step.
        self.reconstructor.build(tf.TensorShape([None, None, config.embedding_dim]))

    def backward_flows(self, enc) -> dict[str, tf.Tensor]:
        """The three unweighted terms, each a scalar mean as Re4's code."""
        cfg = self.model_config
        positives = positive_items(enc.routing, enc.mask, cfg.own.threshold)
        contrast = re_contrast_loss(
            enc.interests, enc.items, positives, enc.mask, cfg.own.temperature
        )
        attend = re_attend_loss(enc.interests, enc.items, enc.routing, enc.mask)
        construct = re_construct_loss(
            self.reconstructor(enc.interests, enc.mask), enc.items, positives
        )
        return {
            "contrast": tf.reduce_mean(contrast),
            "attend": tf.reduce_mean(attend),
            "construct": tf.reduce_mean(construct),
        }

    def regularization(self, batch, enc, seed):
        del batch, seed
        cfg = self.model_config
        weights = {
            "contrast": cfg.own.contrast_weight,
            "attend": cfg.own.attend_weight,
            "construct": cfg.own.construct_weight,
        }
        if not any(weights.values()):
            return tf.constant(0.0)
        terms = self.backward_flows(enc)
        return tf.add_n([w * terms[k] for k, w in weights.items() if w])
