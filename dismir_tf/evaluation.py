"""Full-catalogue multi-interest retrieval and the metrics of docs/protocol.md.

Two readouts (docs/protocol.md, "Retrieval"):

* ``fused`` (DisMIR eq. 5): one query ``sum_f a_f m_f`` per user, one top-N.
* ``merge`` (ComiRec/REMI): every interest retrieves its own top-N, the F*N
  results are sorted by score, de-duplicated and cut to N.

The merged list equals the top-N of ``max_f m_f . e_i`` over the whole
catalogue: an item of that top-N has fewer than N items above it under its
best interest (each of them scores higher under max_f too), so it is in that
interest's own top-N; and de-duplication keeps an item's highest score.  The
default ``exact`` backend therefore scores every item with the max over the
user's query vectors and takes one ``tf.math.top_k``.  The ``tfrs`` backend
does literally what the reference code does, with a TensorFlow Recommenders
BruteForce index per interest and an explicit merge; the tests check that the
two agree.

Metrics are vectorised NumPy over a batch of users (no loop over items).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from dismir_tf.pipeline import EvalExamples
from dismir_tf.tfrs_metrics import brute_force_index, merge_top_k
from dismir_tf.types import DEFAULT_KS

if TYPE_CHECKING:
    from dismir_tf.config import RunConfig
    from dismir_tf.models import RetrievalModel

METRICS = ("recall", "ndcg", "hr")
_NEG_INF = -np.inf

QueryFn = Callable[[tf.Tensor], tf.Tensor]  # history [B, L] -> [B, Q, d]


def _score_and_top_k(queries: tf.Tensor, item_embeddings: tf.Tensor,
                     k: int, exclude: tf.Tensor | None
                     ) -> tuple[tf.Tensor, tf.Tensor]:
    """Top-k items by max_q q . e_i over items 1..N.

    Args:
      queries: [B, Q, d] query vectors.
      item_embeddings: [N + 1, d]; row 0 (padding) is never returned.
      k: list length.
      exclude: optional [B, L] item indices to remove (0 entries ignored).

    Returns:
      (scores [B, k], items [B, k] int32), best first.
    """
    values, indices = score_and_top_k_candidates(
        queries, item_embeddings[1:], k, exclude)
    return values, indices + 1


def score_and_top_k_candidates(queries: tf.Tensor, candidates: tf.Tensor,
                               k: int, exclude: tf.Tensor | None
                               ) -> tuple[tf.Tensor, tf.Tensor]:
    """Top-k rows of ``candidates`` [N, d] (items 1..N) by max_q q . c.

    The computation of :func:`_score_and_top_k` (which calls it with the
    item table's rows 1..N), shared with the export's TFRS index layer so
    that both give the same bits.

    Returns:
      (scores [B, k], 0-based candidate rows [B, k] int32), best first.
    """
    b = tf.shape(queries)[0]
    q = tf.shape(queries)[1]
    flat = tf.reshape(queries, [-1, tf.shape(queries)[2]])
    scores = tf.matmul(flat, candidates, transpose_b=True)
    scores = tf.reduce_max(tf.reshape(scores, [b, q, -1]), axis=1)  # [B, N]
    if exclude is not None:
        rows = tf.repeat(tf.range(b), tf.shape(exclude)[1])
        cols = tf.reshape(exclude, [-1]) - 1
        keep = cols >= 0
        idx = tf.stack([tf.boolean_mask(rows, keep),
                        tf.boolean_mask(cols, keep)], axis=1)
        scores = tf.tensor_scatter_nd_update(
            scores, idx, tf.fill([tf.shape(idx)[0]], float("-inf")))
    return exact_top_k(scores, k)


# Items per block of exact_top_k.
_TOP_K_BLOCK = 64


def exact_top_k(scores: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """``tf.math.top_k(scores, k)`` over the last axis, faster for large N.

    The items are cut into blocks of 64.  Every item of the top k lies in a
    block whose maximum is at least its score, and k blocks ranked above
    that block would hold k items ranked above the item; so the k blocks
    with the largest maxima (ties to the lower block) hold the whole top k.
    One top-k over the block maxima and one over their k * 64 items, kept in
    item order, give exactly tf.math.top_k's values and indices, ties (lower
    index first) included, while reading the N scores only once: on the CPU
    the top-k over N = 175k items is the larger part of a fused evaluation
    otherwise (docs/performance.md).

    Args:
      scores: [B, N] with a static N (smaller N falls back to top_k).
      k: list length, <= N.

    Returns:
      (values [B, k], indices [B, k] int32), best first.
    """
    n = scores.shape[-1]
    if n is None or n < 8 * k * _TOP_K_BLOCK:
        top = tf.math.top_k(scores, k=k, sorted=True)
        return top.values, top.indices
    num_blocks = -(-n // _TOP_K_BLOCK)
    rows = tf.shape(scores)[0]
    padded = tf.pad(scores, [[0, 0], [0, num_blocks * _TOP_K_BLOCK - n]],
                    constant_values=float("-inf"))
    blocks = tf.reshape(padded, [rows, num_blocks, _TOP_K_BLOCK])
    best = tf.sort(tf.math.top_k(tf.reduce_max(blocks, axis=2), k=k).indices,
                   axis=1)                                          # [B, k]
    candidates = tf.reshape(tf.gather(blocks, best, batch_dims=1),
                            [rows, k * _TOP_K_BLOCK])
    top = tf.math.top_k(candidates, k=k, sorted=True)
    block = tf.gather(best, top.indices // _TOP_K_BLOCK, batch_dims=1)
    return top.values, block * _TOP_K_BLOCK + top.indices % _TOP_K_BLOCK


_score_and_top_k_fn = tf.function(_score_and_top_k, reduce_retracing=True)


def contributors_of(queries, item_embeddings, top_items) -> np.ndarray:
    """[B] number of distinct queries that contribute to each top list.

    Args:
      queries: [B, Q, d] retrieval queries (tf or NumPy).
      item_embeddings: [N + 1, d].
      top_items: [B, k] the merged top-k items (ids 1..N) of the queries.

    Returns:
      [B] float64: each listed item is contributed by its highest-scoring
      query (the first on ties, as ``argmax``) and the distinct
      contributors are counted (the collapse diagnostics'
      ``top_k_interests``).  O(B Q k d): no catalogue scoring.
    """
    q = tf.convert_to_tensor(queries, tf.float32)
    e = tf.gather(tf.convert_to_tensor(item_embeddings, tf.float32),
                  tf.convert_to_tensor(top_items, tf.int32))      # [B, k, d]
    who = tf.argmax(tf.einsum("bqd,bkd->bqk", q, e), axis=1)     # [B, k]
    used = tf.reduce_max(tf.one_hot(who, tf.shape(q)[1]), axis=1)  # [B, Q]
    return tf.reduce_sum(used, axis=1).numpy().astype(np.float64)


def tfrs_top_k(queries: np.ndarray, item_embeddings: np.ndarray,
               k: int) -> np.ndarray:
    """The reference procedure through TFRS: a BruteForce index, each
    interest's top-k, and the merge (an item's score is its best
    interest's), with the project's one TFRS core
    (``dismir_tf.tfrs_metrics``: ``brute_force_index``, ``merge_top_k``).

    Args:
      queries: [B, Q, d]; item_embeddings: [N + 1, d] (row 0 padding).

    Returns:
      [B, k] int32 items, best first.
    """
    b, q, d = queries.shape
    index = brute_force_index(tf.constant(item_embeddings), k)
    scores, ids = index(tf.constant(queries.reshape(b * q, d)), k=k)
    if q == 1:
        return ids.numpy().reshape(b, k)
    return merge_top_k(tf.reshape(scores, [b, q * k]),
                       tf.reshape(tf.cast(ids, tf.int32), [b, q * k]),
                       k).numpy()


def _is_in_rows(values: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """[U, A] bool: values[u, a] is in sets[u, :] ([U, S]), row by row.

    One sort and one searchsorted over all rows at once (each row shifted
    into its own range), O(U (A + S) log(U S)) time and O(U (A + S))
    memory."""
    u = values.shape[0]
    if u == 0 or sets.shape[1] == 0:
        return np.zeros(values.shape, bool)
    lo = min(int(values.min()), int(sets.min()))
    span = max(int(values.max()), int(sets.max())) - lo + 1
    shift = (np.arange(u, dtype=np.int64) * span)[:, None]
    flat = np.sort((sets.astype(np.int64) - lo + shift).ravel())
    probe = (values.astype(np.int64) - lo + shift).ravel()
    pos = np.minimum(np.searchsorted(flat, probe), len(flat) - 1)
    return (flat[pos] == probe).reshape(values.shape)


def metrics_from_topk(topk: np.ndarray, targets: np.ndarray,
                      ks: Sequence[int] = DEFAULT_KS
                      ) -> dict[str, np.ndarray]:
    """Per-user Recall, HR and NDCG at each k (docs/protocol.md, "Metrics").

    Args:
      topk: [U, >= max(ks)] recommended items, best first.
      targets: [U, T] target items, 0-padded; repeats count in Recall.
      ks: cut-offs.

    Returns:
      {'recall@k', 'hr@k', 'ndcg@k'} -> [U] float64 arrays.
    """
    out: dict[str, np.ndarray] = {}
    is_target = targets > 0
    n_targets = np.maximum(is_target.sum(axis=1), 1)
    # Distinct targets per user (for the ideal DCG).
    srt = np.sort(np.where(is_target, targets, -1), axis=1)
    distinct = ((srt[:, 1:] != srt[:, :-1]) & (srt[:, 1:] > 0)).sum(axis=1)
    distinct += (srt[:, 0] > 0)
    kmax = max(ks)
    discount = 1.0 / np.log2(np.arange(kmax) + 2.0)
    cum_discount = np.concatenate([[0.0], np.cumsum(discount)])
    for k in ks:
        top = topk[:, :k]
        # [U, T] membership of each target in the top-k, without a
        # [U, T, k] array (a heavy user's T would multiply it).
        target_hit = _is_in_rows(targets, top) & is_target
        out[f"recall@{k}"] = target_hit.sum(axis=1) / n_targets
        out[f"hr@{k}"] = target_hit.any(axis=1).astype(np.float64)
        rel = _is_in_rows(top, np.where(is_target, targets, -1))  # [U, k]
        dcg = (rel * discount[:k]).sum(axis=1)
        idcg = cum_discount[np.minimum(distinct, k)]
        out[f"ndcg@{k}"] = np.where(idcg > 0, dcg / np.where(idcg > 0, idcg,
                                                             1.0), 0.0)
    return out


@dataclasses.dataclass
class EvalResult:
    """Averaged metrics and, on request, each user's top list and the
    number of queries contributing to it (``contributors_of``)."""

    metrics: dict[str, float]
    topk: np.ndarray | None = None
    contributors: np.ndarray | None = None


def evaluate(query_fn: QueryFn, item_embeddings: tf.Tensor | np.ndarray,
             examples: EvalExamples, ks: Sequence[int] = DEFAULT_KS,
             batch_size: int = 256, exclude_history: bool = False,
             keep_topk: bool = False, backend: str = "exact",
             progress: Callable[[int, int], None] | None = None,
             contributors: bool = False) -> EvalResult:
    """Evaluates a model over all users of ``examples``.

    Args:
      query_fn: history [B, L] int32 -> query vectors [B, Q, d] (Q = F for
        'merge', 1 for 'fused' or single-interest models).
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
        hist = tf.constant(examples.history[sl])
        if examples.times is None:
            queries = query_fn(hist)
        else:   # a model that takes the history times (PIMIRec)
            queries = query_fn(hist, tf.constant(examples.times[sl]))
        if backend == "exact":
            exclude = (tf.constant(examples.known_items(sl))
                       if exclude_history else None)
            _, items = _score_and_top_k_fn(queries, emb, kmax, exclude)
            top = items.numpy()
        else:
            top = tfrs_top_k(np.asarray(queries), emb.numpy(), kmax)
        for name, vals in metrics_from_topk(top, examples.targets[sl],
                                            ks).items():
            per_user.setdefault(name, []).append(vals)
        if keep_topk:
            tops.append(top)
        if contributors:
            contrib.append(contributors_of(queries, emb, top))
        if progress is not None:
            progress(sl.stop, examples.num_users)
    metrics = {name: float(np.concatenate(v).mean())
               for name, v in per_user.items()}
    return EvalResult(
        metrics=metrics, topk=np.concatenate(tops) if keep_topk else None,
        contributors=np.concatenate(contrib) if contributors else None)


def make_query_fn(model: RetrievalModel, retrieval: str | None = None):
    """A compiled history [B, L] -> queries [B, Q, d], cached per model.

    For a model with ``uses_time`` (PIMIRec) it is history, times=None ->
    queries, times [B, L] being the examples' history times."""
    cache = model.__dict__.setdefault("_query_fns", {})
    if retrieval not in cache:
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
        def query(history):
            return model.query_vectors(history, retrieval)
        cache[retrieval] = query
        if getattr(model, "uses_time", False):
            @tf.function(input_signature=[
                tf.TensorSpec([None, None], tf.int32),
                tf.TensorSpec([None, None], tf.float32)])
            def timed_query(history, times):
                return model.query_vectors(history, retrieval, times=times)

            def query_with_times(history, times=None):
                if times is None:
                    return query(history)
                return timed_query(history, times)
            cache[retrieval] = query_with_times
    return cache[retrieval]


def evaluate_model(model: RetrievalModel, examples: EvalExamples,
                   config: RunConfig, keep_topk: bool = False,
                   ks=DEFAULT_KS,
                   contributors: bool = False) -> EvalResult:
    return evaluate(
        make_query_fn(model), model.item_embedding.embeddings, examples,
        ks=ks, batch_size=config.train.eval_batch_size,
        exclude_history=config.train.exclude_history, keep_topk=keep_topk,
        contributors=contributors)
