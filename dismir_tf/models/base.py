"""The base retrieval model: one custom train_step for every model.

A model says how it turns a history into interests (:meth:`encode`) and, if
it differs from DisMIR's, how it scores a training example
(:meth:`rec_loss_per_example`) and what regulariser it adds
(:meth:`regularization`).  The base class owns the rest, once:

* the item embeddings, which are also the partition weights
  (e_i = w_i, d = K);
* the item-partition task (Theorem 4), added with weight lambda to any model
  (``partition_weight`` > 0), which is what makes it a plugin;
* the train_step, which reports every loss term separately and scales the
  loss for tf.distribute (per-replica sums divided by the global batch, so
  that the replicas' summed gradients are the gradient of the global mean);
* the retrieval queries used by the evaluator and the export.

All randomness of a step (hard-negative candidates, sampled negatives,
partition negatives) is drawn with stateless ops from the seed the pipeline
puts in the batch, folded with the replica id, so a step is reproducible and
a resumed run continues exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import tensorflow as tf

from dismir_tf import types
from dismir_tf.config import ModelConfig, model_config_from_dict
from dismir_tf.initializers import weight_seed
from dismir_tf.partition_task import PartitionTask
from dismir_tf.types import as_features

_NEG_INF = -1e9


@dataclasses.dataclass
class Encoded:
    """What a model extracts from a batch of histories.

    Attributes:
      interests: [B, F, d] interest vectors (F = 1 for single-interest).
      weights: [B, F] attention over interests, or None (equal weights).
      routing: [B, F, L] item-to-interest routing weights, or None.
      items: [B, L, d] the history embeddings.
      mask: [B, L] float mask.
      routed_items: [B, L, d] what the interests are pooled from, when it
        is not ``items`` (DisMIR with a learned transformation: W e_i), or
        None.  The collapse diagnostics compare the query with its mean.
      sequence: [B, L, d] a sequential encoder's output at every position
        (SASRec, whose loss reads every position), or None.
    """

    interests: tf.Tensor
    weights: tf.Tensor | None
    routing: tf.Tensor | None
    items: tf.Tensor
    mask: tf.Tensor
    routed_items: tf.Tensor | None = None
    sequence: tf.Tensor | None = None

    def fused(self) -> tf.Tensor:
        """[B, d] sum_f a_f m_f (the mean over f when there are no weights)."""
        if self.weights is None:
            return tf.reduce_mean(self.interests, axis=1)
        return tf.einsum("bf,bfd->bd", self.weights, self.interests)


class RetrievalModel(tf.keras.Model):
    """Base class of all models of the project.

    Args:
      num_items: N (item indices 1..N; 0 is padding).
      config: the model configuration.
      seed: seeds every initialiser.
    """

    default_retrieval = types.MERGE
    multi_interest = True
    # The input features encode() reads, keys of ``dismir_tf.types`` (a new
    # input is a new key: the pipeline, the evaluator and the export give
    # a model the keys it lists).
    input_features: tuple[str, ...] = (types.HISTORY,)

    def __init__(self, num_items: int, config: ModelConfig, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.num_items = num_items
        self.model_config = config
        self.seed = seed
        d = config.embedding_dim
        self.item_embedding = tf.keras.layers.Embedding(
            num_items + 1,
            d,
            name="item_embedding",
            embeddings_initializer=tf.keras.initializers.RandomNormal(
                stddev=1.0 / d**0.5, seed=weight_seed(seed, "item_embedding")
            ),
        )
        self.retrieval = config.retrieval or self.default_retrieval
        self.loss_trackers = {
            name: tf.keras.metrics.Mean(name=name)
            for name in ("loss", "rec_loss", "partition_loss", "reg_loss")
        }

    # ------------------------------------------------------------ to override
    def encode(
        self,
        features: Mapping[str, tf.Tensor],
        training: bool = False,
        seed: tf.Tensor | None = None,
    ) -> Encoded:
        """Features -> :class:`Encoded`.

        Args:
          features: {``types.HISTORY``: [B, L] int32, right-padded with 0}
            and whatever else the model lists in ``input_features`` (e.g.
            ``types.HISTORY_TIME`` [B, L] float32); a training batch (which
            holds more keys) is passed as it is.
          training: training mode (dropout).
          seed: the step's [2] stateless seed in training, None in
            evaluation and serving; a model with its own random draws
            (DisMIR's per-call routing logits, SASRec's dropout) takes them
            from it.
        """
        raise TypeError(f"{type(self).__name__} does not define encode()")

    def encode_with(
        self, extractor: tf.keras.layers.Layer, history: tf.Tensor
    ) -> Encoded:
        """Encodes through a layer (items [B,L,d], mask [B,L]) ->
        (interests [B,F,d], routing [B,F,L]); no attention weights."""
        mask = tf.cast(history > 0, tf.float32)
        items = self.item_embedding(history)
        interests, routing = extractor(items, mask)
        return Encoded(
            interests=interests, weights=None, routing=routing, items=items, mask=mask
        )

    def rec_loss_per_example(
        self, batch: dict[str, tf.Tensor], enc: Encoded, seed: tf.Tensor
    ) -> tf.Tensor:
        """[B] recommendation loss; default: DisMIR's eq. 5 pairwise loss.

        score(u, i) = sum_f a_uf m_uf . e_i.  The negative j is the
        highest-scoring of C uniformly drawn candidates (a candidate equal to
        the target is skipped); the loss is -log sigmoid(s_ui - s_uj).
        """
        user = enc.fused()  # [B, d]
        target = batch[types.TARGET]
        pos = tf.reduce_sum(user * self.item_embedding(target), -1)
        hard = self.hard_negative_scores(user, target, seed)
        return tf.nn.softplus(hard - pos)

    def regularization(
        self, batch: dict[str, tf.Tensor], enc: Encoded, seed: tf.Tensor
    ) -> tf.Tensor:
        """A scalar added to the loss (per replica, already averaged)."""
        del batch, enc, seed
        return tf.constant(0.0)

    # ------------------------------------------------------------- shared maths
    def sample_items(self, shape, seed: tf.Tensor) -> tf.Tensor:
        """Uniform item indices in 1..N."""
        # Philox by name: it is what 'auto_select' picks on the CPU, and
        # under XLA (TrainConfig.jit_compile) 'auto_select' may pick another
        # generator, which would change the negatives a step draws.
        return tf.random.stateless_uniform(
            shape, seed, 1, self.num_items + 1, dtype=tf.int32, alg="philox"
        )

    def hard_negative_scores(
        self, user: tf.Tensor, target: tf.Tensor, seed: tf.Tensor
    ) -> tf.Tensor:
        """[B] score of the hardest of C uniform candidates for each user."""
        c = self.model_config.hard_negative_candidates
        cand = self.sample_items([tf.shape(user)[0], c], seed)  # [B, C]
        scores = tf.einsum("bd,bcd->bc", user, self.item_embedding(cand))
        scores = tf.where(cand == target[:, None], _NEG_INF, scores)
        return tf.reduce_max(scores, axis=1)

    @property
    def partition_task(self) -> PartitionTask:
        """The model's item-partition task (Theorem 4, eq. 6) over its item
        table: ``dismir_tf.partition_task.PartitionTask``, the same task a
        TFRS model adds as a plugin.  It holds no variables of its own and
        is not tracked (checkpoints are unchanged); it is rebuilt if a
        subclass replaces ``item_embedding``."""
        task = self.__dict__.get("_partition_task")
        if task is None or task.item_embedding is not self.item_embedding:
            task = PartitionTask(
                self.item_embedding, self.model_config.partition_negatives
            )
            self.__dict__["_partition_task"] = task
        return task

    def partition_loss(self, batch: dict[str, tf.Tensor], seed: tf.Tensor) -> tf.Tensor:
        """[B] the item-partition loss of each example's anchors.

        Anchors are the example's target and history items; positives were
        drawn by the pipeline from S_i; N_o negatives are drawn uniformly
        per replica (from ``seed``, as ``sample_items`` draws) and shared by
        its anchors.
        """
        return self.partition_task.per_example(
            batch[types.PARTITION_ANCHOR],
            batch[types.PARTITION_POSITIVE],
            batch[types.PARTITION_MASK],
            seed,
        )

    # ------------------------------------------------------------------ Keras
    def query_vectors(
        self,
        features: Mapping[str, tf.Tensor] | tf.Tensor,
        retrieval: str | None = None,
    ) -> tf.Tensor:
        """[B, Q, d] retrieval queries: F interests ('merge') or 1 ('fused').

        ``features``: as :meth:`encode` takes them, or the history [B, L]
        alone (:func:`as_features`)."""
        enc = self.encode(as_features(features), training=False)
        return self.retrieval_queries(enc, retrieval)

    def retrieval_queries(
        self, enc: Encoded, retrieval: str | None = None
    ) -> tf.Tensor:
        """[B, Q, d] the retrieval queries of encoded histories (see
        :meth:`query_vectors`)."""
        mode = retrieval or self.retrieval
        if mode == types.FUSED or not self.multi_interest:
            return enc.fused()[:, None]
        return enc.interests

    def call(self, inputs, training=False):
        return self.query_vectors(inputs)

    # A tfrs_metrics.ProtocolTopK for model.evaluate() on evaluation
    # batches ({history, targets}); set by tfrs_metrics.evaluate_with_tfrs.
    # Kept out of Keras' tracking (object.__setattr__): the index is not
    # part of the model's weights or checkpoints.
    _protocol = (None, False)

    def set_protocol_metric(self, metric, exclude_history: bool = False) -> None:
        """Evaluation batches ({history, targets}) in ``evaluate()`` update
        ``metric`` (a tfrs_metrics.ProtocolTopK; None to remove it)."""
        object.__setattr__(self, "_protocol", (metric, exclude_history))

    @property
    def protocol_metric(self):
        return self._protocol[0]

    @property
    def metrics(self):
        extra = self.protocol_metric.means if self.protocol_metric else []
        return list(self.loss_trackers.values()) + extra

    def _step_seeds(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        seed = batch[types.SEED][0]
        ctx = tf.distribute.get_replica_context()
        replica = ctx.replica_id_in_sync_group if ctx is not None else 0
        # alg="philox" as in sample_items: the same seeds with and without
        # XLA.
        seed = tf.random.experimental.stateless_fold_in(
            seed, tf.cast(replica, tf.int32), alg="philox"
        )
        return tf.random.experimental.stateless_split(seed, 3, alg="philox")

    def compute_losses(
        self, batch: dict[str, tf.Tensor], training: bool = True
    ) -> dict[str, tf.Tensor]:
        """Each loss term, scaled for the global batch under tf.distribute."""
        s_rec, s_reg, s_part = tf.unstack(self._step_seeds(batch))
        # The encoder's own draws (DisMIR's per-call routing logits), from
        # a seed folded out of the recommendation one, so the three seeds
        # above stay what they were.
        s_enc = tf.random.experimental.stateless_fold_in(s_rec, 1, alg="philox")
        enc = self.encode(batch, training, seed=s_enc if training else None)
        rec = tf.nn.compute_average_loss(self.rec_loss_per_example(batch, enc, s_rec))
        reg = self.regularization(batch, enc, s_reg)
        num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
        reg = reg / tf.cast(num_replicas, reg.dtype)
        lam = self.model_config.partition_lambda
        if lam > 0 and types.PARTITION_ANCHOR in batch:
            part = tf.nn.compute_average_loss(self.partition_loss(batch, s_part))
        else:
            part = tf.constant(0.0)
        return {
            "rec_loss": rec,
            "partition_loss": part,
            "reg_loss": reg,
            "loss": rec + reg + lam * part,
        }

    def train_step(self, batch):
        with tf.GradientTape() as tape:
            losses = self.compute_losses(batch, training=True)
        grads = tape.gradient(losses["loss"], self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        # Report global means: the scaled per-replica values sum to them.
        num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for name, value in losses.items():
            self.loss_trackers[name].update_state(
                value * tf.cast(num_replicas, value.dtype)
            )
        return {name: t.result() for name, t in self.loss_trackers.items()}

    def test_step(self, batch):
        if types.TARGETS in batch:
            # An evaluation batch: the protocol's metrics through TFRS.
            if self.protocol_metric is None:
                raise ValueError(
                    "evaluation batches (with 'targets') need "
                    "model.protocol_metric, a tfrs_metrics."
                    "ProtocolTopK (tfrs_metrics."
                    "evaluate_with_tfrs sets one)"
                )
            queries = self.query_vectors(batch)
            known = batch.get(types.KNOWN_ITEMS, batch[types.HISTORY])
            self.protocol_metric.update_state(
                queries,
                None,
                batch[types.TARGETS],
                history=known if self._protocol[1] else None,
            )
            return {m.name: m.result() for m in self.protocol_metric.means}
        losses = self.compute_losses(batch, training=False)
        num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for name, value in losses.items():
            self.loss_trackers[name].update_state(
                value * tf.cast(num_replicas, value.dtype)
            )
        return {name: t.result() for name, t in self.loss_trackers.items()}

    def build_for(self, max_len: int) -> None:
        """Creates all weights by running a dummy history."""
        self(
            {
                key: tf.zeros([1, max_len], types.FEATURE_DTYPES[key])
                for key in self.input_features
            }
        )

    def get_config(self):
        return {
            "num_items": self.num_items,
            "config": dataclasses.asdict(self.model_config),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(
            num_items=config["num_items"],
            config=model_config_from_dict(config["config"]),
            seed=config["seed"],
        )
