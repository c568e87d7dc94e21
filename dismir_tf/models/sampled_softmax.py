"""The training objective of the ComiRec/REMI reference code.

The reference baselines (REMI's repository: DNN, GRU4Rec, MIND, ComiRec-DR,
ComiRec-SA, REMI) all train the same way: a user vector is read out for the
target item, and a sampled softmax ranks the target above S negatives.

* Negatives: S items drawn uniformly once per step and shared by the whole
  batch (REMI's ``NCELoss`` with ``per_word=False``: one draw of shape
  [1, 1, S] expanded to the batch).  Accidental hits (a negative equal to
  the target) are not removed, as in the reference.
* log-Q correction: the reference subtracts log Q(i) from every logit, but
  with the uniform noise distribution (``sample_prob=0``, the default and
  the setting of docs/reference-runs.md) log Q is the same constant for
  every item and cancels in the softmax, so it is left out here.  With
  ``beta > 0`` the reference uses the uncorrected logits anyway.
* REMI's interest-aware hard negatives (IHN, ``beta > 0``): each negative
  is weighted by w_j = softmax_j(beta * s_j) over the S negatives, and the
  loss is

      -log( e^{s+} / (e^{s+} + S * sum_j w_j e^{s_j}) ),

  which is what REMI's ``sampled_softmax_loss`` computes as
  ``sum(imp * neg) / mean(imp)``.  With beta = 0, w_j = 1/S and it is the
  plain sampled softmax.  As in the reference, the weights are not
  detached: the gradient also flows through them.

:class:`SampledSoftmaxModel` is the base of every such model: a subclass
defines ``encode()`` and says whether its training readout against the
target is hard (ComiRec, REMI: the single interest closest to the target)
or soft (MIND's label-aware attention).
"""

from __future__ import annotations

import tensorflow as tf

from dismir_tf import types
from dismir_tf.config import ModelConfig, model_config_from_dict
from dismir_tf.initializers import he_normal, weight_seed
from dismir_tf.layers import LabelAwareAttention
from dismir_tf.models.base import Encoded, RetrievalModel


def sampled_softmax_logits(
    user: tf.Tensor, target: tf.Tensor, negatives: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """The target's and the shared negatives' logits.

    Args:
      user: [B, d] user vectors (the readout for each example's target).
      target: [B, d] target item embeddings.
      negatives: [S, d] embeddings of the negatives shared by the batch.

    Returns:
      (positive [B], negative [B, S]) inner products.
    """
    positive = tf.reduce_sum(user * target, axis=-1)
    negative = tf.matmul(user, negatives, transpose_b=True)
    return positive, negative


def sampled_softmax_loss(
    positive: tf.Tensor, negative: tf.Tensor, beta: float = 0.0
) -> tf.Tensor:
    """[B] -log of the target's (importance-weighted) sampled softmax.

    Args:
      positive: [B] target logits s+.
      negative: [B, S] negative logits s_j.
      beta: REMI's hard-negative temperature; 0 gives the plain sampled
        softmax -log(e^{s+} / (e^{s+} + sum_j e^{s_j})).

    Returns:
      [B] per-example loss.
    """
    if beta != 0.0:
        # log(S * w_j) with w = softmax(beta * s) over the S negatives.
        num = tf.cast(tf.shape(negative)[-1], negative.dtype)
        negative = (
            negative + tf.math.log(num) + tf.nn.log_softmax(beta * negative, axis=-1)
        )
    logits = tf.concat([positive[:, None], negative], axis=-1)
    return tf.reduce_logsumexp(logits, axis=-1) - positive


class SampledSoftmaxModel(RetrievalModel):
    """A model trained with the reference code's readout + sampled softmax.

    Class attributes:
      hard_readout: bool. Training readout of a multi-interest model: the
        interest with the largest m_f . e_target (True) or MIND's
        label-aware softmax weighting (False); the constructor's
        ``hard_readout`` overrides it.
      readout_power: float. MIND's exponent p on the readout logits.

    Subclasses set ``multi_interest`` and define ``encode()``; REMI sets
    :meth:`negative_beta`.
    """

    hard_readout = True
    readout_power = 1.0

    def __init__(
        self,
        num_items: int,
        config: ModelConfig,
        seed: int = 0,
        hard_readout: bool | None = None,
        **kwargs,
    ):
        super().__init__(num_items, config, seed, **kwargs)
        if hard_readout is not None:
            self.hard_readout = hard_readout
        d = config.embedding_dim
        # The reference initialises every weight, the item embeddings
        # included, with kaiming_normal_: N(0, 2/d) instead of the base
        # class's N(0, 1/d).  It matters for REMI's and ComiRec-SA's
        # agreement with the reference runs (docs/models.md).
        self.item_embedding = tf.keras.layers.Embedding(
            num_items + 1,
            d,
            name="item_embedding",
            embeddings_initializer=he_normal(d, weight_seed(seed, "item_embedding")),
        )
        self.label_attention = LabelAwareAttention(
            hard=self.hard_readout,
            power=self.readout_power,
            name="label_aware_attention",
        )

    @property
    def negative_beta(self) -> float:
        """REMI's beta; 0 (no hard-negative weighting) for the others."""
        return 0.0

    def get_config(self):
        config = super().get_config()
        config["hard_readout"] = self.hard_readout
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(
            num_items=config["num_items"],
            config=model_config_from_dict(config["config"]),
            seed=config["seed"],
            hard_readout=config.get("hard_readout"),
        )

    def readout(self, enc: Encoded, target: tf.Tensor) -> tf.Tensor:
        """[B, d] the user vector scored against the target [B, d]."""
        if not self.multi_interest:
            return enc.interests[:, 0]
        return self.label_attention(enc.interests, target)

    def rec_loss_per_example(self, batch, enc, seed):
        target = self.item_embedding(batch[types.TARGET])  # [B, d]
        user = self.readout(enc, target)
        negatives = self.item_embedding(
            self.sample_items([self.model_config.sampled_softmax_negatives], seed)
        )  # [S, d]
        positive, negative = sampled_softmax_logits(user, target, negatives)
        return sampled_softmax_loss(positive, negative, self.negative_beta)
