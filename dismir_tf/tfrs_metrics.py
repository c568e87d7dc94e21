"""The protocol's metrics (docs/protocol.md, "Metrics") as a TFRS metric.

TFRS's ``FactorizedTopK`` counts one positive per query and takes one query
vector per row.  The protocol has F query vectors per user (merge
retrieval: the best score over the interests) or one (fused), and a list of
targets per user, repeats included.  :class:`ProtocolTopK` is built on
TFRS's own metric base (``tfrs.metrics.Factorized``): it retrieves through
a TFRS index (``BruteForce`` by default; any ``TopK`` layer whose
identifiers are the item indices 1..N), merges the F interests' lists as
REMI's evaluator does (an item's score is its best interest's), and keeps
the per-user means of Recall, HR and NDCG at each cut-off.

With it, ``model.evaluate()`` on the evaluation examples reports
``recall@20``, ``recall@50``, ... like any TFRS model
(:func:`evaluate_with_tfrs`); tests/test_tfrs_metrics.py checks that they
equal the project's exact evaluator (up to exact score ties between
interests, which the merge breaks by interest and the exact top-k by item
index) (``dismir_tf.evaluation``), which stays
the fast default of train.py.  Index, merge and metrics are the project's
one retrieval core (``dismir_tf.retrieval``).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs

from dismir_tf import types
from dismir_tf.retrieval import (
    METRIC_NAMES,
    brute_force_index,
    merge_top_k,
    protocol_metrics,
)
from dismir_tf.types import DEFAULT_KS


class ProtocolTopK(tfrs.metrics.Factorized):
    """Recall, HR and NDCG@k of the protocol, retrieved through a TFRS index.

    Args:
      candidates: a TFRS ``TopK`` layer (``BruteForce``, ``ScaNN``,
        ``Streaming``) indexed with the item indices 1..N as identifiers
        (:func:`brute_force_index`).
      ks: cut-offs (default 20 and 50).
      name: the metric's name.

    ``update_state(query_embeddings, true_candidate_embeddings,
    true_candidate_ids, sample_weight=None, history=None)``:
    query_embeddings [B, Q, d] (merge: Q = F interests) or [B, d];
    true_candidate_embeddings is not used (the protocol's positives are
    ids); true_candidate_ids [B, T] the targets, 0-padded; history [B, L]
    the items to remove from the lists (runs trained with
    ``exclude_history``: each user's known items, 0-padded).
    ``max_exclude``: the most items a user may have removed (the index is
    asked for max(ks) + max_exclude candidates); default: the width of the
    ``history`` given, which must then be static.
    """

    def __init__(
        self,
        candidates: tfrs.layers.factorized_top_k.TopK,
        ks: Sequence[int] = DEFAULT_KS,
        name: str = "protocol",
        max_exclude: int | None = None,
    ):
        super().__init__(name=name)
        self._candidates = candidates
        self._ks = tuple(ks)
        self._max_exclude = max_exclude
        self._means = [
            tf.keras.metrics.Mean(name=f"{m}@{k}")
            for k in self._ks
            for m in METRIC_NAMES
        ]

    @property
    def means(self) -> list[tf.keras.metrics.Mean]:
        """The Keras metrics behind :meth:`result`, named 'recall@20', ..."""
        return self._means

    def update_state(
        self,
        query_embeddings: tf.Tensor,
        true_candidate_embeddings: tf.Tensor | None = None,
        true_candidate_ids: tf.Tensor | None = None,
        sample_weight: tf.Tensor | None = None,
        history: tf.Tensor | None = None,
    ) -> tf.Operation:
        if true_candidate_ids is None:
            raise ValueError(
                "ProtocolTopK needs true_candidate_ids (the "
                "targets, [B, T] item indices, 0-padded)"
            )
        queries = query_embeddings
        if queries.shape.rank == 2:
            queries = queries[:, None]
        b, q = tf.shape(queries)[0], tf.shape(queries)[1]
        kmax = max(self._ks)
        extra = (
            0
            if history is None
            else (
                self._max_exclude
                if self._max_exclude is not None
                else int(history.shape[1])
            )
        )
        k = kmax + extra  # room for the history items removed below
        size = getattr(getattr(self._candidates, "_candidates", None), "shape", [None])[
            0
        ]
        if size is not None:
            k = min(k, int(size))
        scores, ids = self._candidates(
            tf.reshape(queries, [b * q, tf.shape(queries)[2]]), k=k
        )
        ids = tf.reshape(tf.cast(ids, tf.int32), [b, q * k])
        scores = tf.reshape(scores, [b, q * k])
        if history is not None:
            in_history = tf.reduce_any(
                tf.equal(ids[:, :, None], tf.cast(history, tf.int32)[:, None])
                & (history > 0)[:, None],
                axis=2,
            )
            scores = tf.where(
                in_history, tf.constant(-float("inf"), scores.dtype), scores
            )
        top = merge_top_k(scores, ids, kmax)
        values = protocol_metrics(top, true_candidate_ids, self._ks)
        updates = [
            mean.update_state(values[mean.name], sample_weight) for mean in self._means
        ]
        return tf.group(updates)

    def result(self) -> list[tf.Tensor]:
        return [mean.result() for mean in self._means]

    def reset_states(self) -> None:
        for mean in self._means:
            mean.reset_states()


def eval_dataset(examples, batch_size: int) -> tf.data.Dataset:
    """The evaluation examples (``pipeline.EvalExamples``) as batches of
    {history, targets, known_items, and the examples' other features} for
    ``model.evaluate``.  Targets and known items are padded per batch, so
    memory follows the batch, not the split's heaviest user."""
    spec = {
        types.TARGETS: tf.TensorSpec([None, None], tf.int32),
        types.KNOWN_ITEMS: tf.TensorSpec([None, None], tf.int32),
    }
    spec.update(
        {
            k: tf.TensorSpec([None, None], types.FEATURE_DTYPES[k])
            for k in (types.HISTORY, *examples.features)
        }
    )

    def batches():
        for sl in examples.batches(batch_size):
            yield {
                **examples.inputs(sl),
                types.TARGETS: examples.targets[sl],
                types.KNOWN_ITEMS: examples.known_items(sl),
            }

    return tf.data.Dataset.from_generator(batches, output_signature=spec)


def _max_known(examples) -> int:
    """The most known items of one user of ``examples``."""
    if examples.known is None:
        return int(examples.history.shape[1])
    return max(int(examples.known.lengths.max()) if len(examples.known) else 0, 1)


def evaluate_with_tfrs(
    model,
    examples,
    batch_size: int = 512,
    ks: Sequence[int] = DEFAULT_KS,
    exclude_history: bool = False,
    candidates: tfrs.layers.factorized_top_k.TopK | None = None,
) -> dict[str, float]:
    """``model.evaluate()`` with a :class:`ProtocolTopK` metric over the
    model's current item embeddings (a BruteForce index unless
    ``candidates`` is given); returns {'recall@20': .., ...}."""
    if candidates is None:
        n = int(model.item_embedding.embeddings.shape[0]) - 1
        candidates = brute_force_index(
            model.item_embedding.embeddings,
            min(n, max(ks) + (_max_known(examples) if exclude_history else 0)),
        )
    if getattr(model, "optimizer", None) is None:
        model.compile()  # a loaded model: evaluate() needs a compiled one
    model.set_protocol_metric(
        ProtocolTopK(
            candidates,
            ks,
            max_exclude=_max_known(examples) if exclude_history else None,
        ),
        exclude_history,
    )
    # Keras keeps the traced test function, which holds the metric and
    # index of an earlier call: trace it again for this one.
    model.test_function = None
    try:
        out = model.evaluate(
            eval_dataset(examples, batch_size), verbose=0, return_dict=True
        )
    finally:
        model.set_protocol_metric(None)
        model.test_function = None
    return {k: float(v) for k, v in out.items()}
