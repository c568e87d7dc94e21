"""Evaluation over a split's users (docs/protocol.md, "Retrieval").

Two readouts:

* ``fused`` (DisMIR eq. 5): one query ``sum_f a_f m_f`` per user, one top-N.
* ``merge`` (ComiRec/REMI): every interest retrieves its own top-N, the F*N
  results are sorted by score, de-duplicated and cut to N.

:func:`evaluate` runs the users in batches through the retrieval and
metrics core (``dismir_tf.retrieval``): the ``exact`` backend (default)
takes one top-N of ``max_f m_f . e_i`` over the whole catalogue, which
equals the merged list; the ``tfrs`` backend does literally what the
reference code does, a TFRS BruteForce index per interest and the merge.
The per-user metrics come from ``retrieval.protocol_metrics`` in float64
and are averaged over users.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from dismir_tf import types
from dismir_tf.pipeline import EvalExamples, feature_tensors
from dismir_tf.retrieval import (
    contributors_of,
    protocol_metrics,
    score_and_top_k_fn,
    tfrs_top_k,
)
from dismir_tf.types import DEFAULT_KS

if TYPE_CHECKING:
    from dismir_tf.config import RunConfig
    from dismir_tf.models import RetrievalModel

# Features ({types.HISTORY: [B, L], ...}, or the history alone) -> [B, Q, d].
QueryFn = Callable[[Any], tf.Tensor]


# Per-user metrics in float64, as the recorded figures were computed.
_metrics_fn = tf.function(
    lambda top, targets, ks: protocol_metrics(top, targets, ks, tf.float64),
    reduce_retracing=True,
)


@dataclasses.dataclass
class EvalResult:
    """Averaged metrics and, on request, each user's top list and the
    number of queries contributing to it (``contributors_of``)."""

    metrics: dict[str, float]
    topk: np.ndarray | None = None
    contributors: np.ndarray | None = None


def evaluate(
    query_fn: QueryFn,
    item_embeddings: tf.Tensor | np.ndarray,
    examples: EvalExamples,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 256,
    exclude_history: bool = False,
    keep_topk: bool = False,
    backend: str = "exact",
    progress: Callable[[int, int], None] | None = None,
    contributors: bool = False,
) -> EvalResult:
    """Evaluates a model over all users of ``examples``.

    Args:
      query_fn: features {types.HISTORY: [B, L] int32, and the examples'
        other ``features``} -> query vectors [B, Q, d] (Q = F for 'merge',
        1 for 'fused' or single-interest models); :func:`make_query_fn`.
      item_embeddings: [N + 1, d].
      examples: the split's histories and targets.
      ks: cut-offs; the top list has length max(ks).
      batch_size: users per batch (bounds memory: B x N scores).
      exclude_history: remove each user's known items from the ranking:
        the whole known sequence (``examples.known``; the option of
        docs/protocol.md, "Retrieval"), not only the last max_len items
        the model reads.
      keep_topk: also return the [U, max(ks)] top lists.
      backend: 'exact' (one top_k of the max over queries) or 'tfrs'
        (BruteForce per query and the reference merge).
      progress: called with (users done, users total) after each batch.
      contributors: also return, per user, how many of its queries
        contribute to its top-max(ks) list (the collapse diagnostics'
        ``top_k_interests``, from the lists already computed).

    Returns:
      EvalResult with metrics averaged over users.
    """
    if backend not in ("exact", "tfrs"):
        raise ValueError(f"unknown backend {backend!r}")
    if backend == "tfrs" and exclude_history:
        raise ValueError("the tfrs backend does not exclude history")
    kmax = max(ks)
    emb = tf.convert_to_tensor(item_embeddings, tf.float32)
    if kmax > int(emb.shape[0]) - 1:
        raise ValueError(f"k={kmax} exceeds the catalogue size")
    per_user: dict[str, list[np.ndarray]] = {}
    tops, contrib = [], []
    for sl in examples.batches(batch_size):
        queries = query_fn(feature_tensors(examples.inputs(sl)))
        if backend == "exact":
            exclude = tf.constant(examples.known_items(sl)) if exclude_history else None
            _, top = score_and_top_k_fn(queries, emb, kmax, exclude)
        else:
            top = tfrs_top_k(np.asarray(queries), emb.numpy(), kmax)
        for name, vals in _metrics_fn(
            top, tf.constant(examples.targets[sl]), tuple(ks)
        ).items():
            per_user.setdefault(name, []).append(vals.numpy())
        if keep_topk:
            tops.append(np.asarray(top))
        if contributors:
            contrib.append(contributors_of(queries, emb, top))
        if progress is not None:
            progress(sl.stop, examples.num_users)
    metrics = {name: float(np.concatenate(v).mean()) for name, v in per_user.items()}
    return EvalResult(
        metrics=metrics,
        topk=np.concatenate(tops) if keep_topk else None,
        contributors=np.concatenate(contrib) if contributors else None,
    )


def make_query_fn(model: RetrievalModel, retrieval: str | None = None) -> QueryFn:
    """A compiled features -> queries [B, Q, d], cached per model.

    The function takes the features a model reads (``model.input_features``;
    the other keys given are ignored, a bare history [B, L] is accepted) and
    is traced once per set of keys present: a PIMIRec model given no
    ``types.HISTORY_TIME`` falls back to the positions, as its export's
    history-only signature does."""
    cache = model.__dict__.setdefault("_query_fns", {})

    def query(features):
        features = types.as_features(features)
        keys = tuple(k for k in model.input_features if k in features)
        fn = cache.get((retrieval, keys))
        if fn is None:
            signature = {
                k: tf.TensorSpec([None, None], types.FEATURE_DTYPES[k]) for k in keys
            }

            @tf.function(input_signature=[signature])
            def fn(inputs):
                return model.query_vectors(inputs, retrieval)

            cache[(retrieval, keys)] = fn
        return fn({k: features[k] for k in keys})

    return query


def evaluate_model(
    model: RetrievalModel,
    examples: EvalExamples,
    config: RunConfig,
    keep_topk: bool = False,
    ks=DEFAULT_KS,
    contributors: bool = False,
) -> EvalResult:
    return evaluate(
        make_query_fn(model),
        model.item_embedding.embeddings,
        examples,
        ks=ks,
        batch_size=config.train.eval_batch_size,
        exclude_history=config.train.exclude_history,
        keep_topk=keep_topk,
        contributors=contributors,
    )
