"""The retrieval and metrics core (docs/protocol.md, "Retrieval", "Metrics").

Every evaluation path of the project goes through these functions: the
training-time evaluation and evaluate.py (``evaluation.evaluate``), the
TFRS metric (``tfrs_metrics.ProtocolTopK``) and the SavedModel's index
(``layers.MultiInterestBruteForce``).

* :func:`score_and_top_k` / :func:`score_and_top_k_candidates`: the exact
  top-N of ``max_q q . e_i`` over the whole catalogue (merge readout: the
  best interest's score; fused and single-interest models have Q = 1), with
  :func:`exact_top_k`, a block top-k equal to ``tf.math.top_k``.
* :func:`brute_force_index` and :func:`merge_top_k`: the reference
  procedure of ComiRec/REMI through a TFRS BruteForce index (each interest
  retrieves its own top-N, the F*N results are merged by score and
  de-duplicated); :func:`tfrs_top_k` runs it.  The two agree (an item of
  the merged top-N has fewer than N items above it under its best
  interest, so it is in that interest's own list).
* :func:`protocol_metrics`: per-user Recall, HR and NDCG at each cut-off,
  in O(B (T + k) log) time and memory (sorting and ``tf.searchsorted``, no
  [B, T, k] comparison), so a heavy user's hundreds of targets cost little.

tests/reference_metrics.py keeps the NumPy definition the tests compare
with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from dismir_tf.types import DEFAULT_KS

METRIC_NAMES = ("recall", "hr", "ndcg")


def score_and_top_k(
    queries: tf.Tensor, item_embeddings: tf.Tensor, k: int, exclude: tf.Tensor | None
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
        queries, item_embeddings[1:], k, exclude
    )
    return values, indices + 1


def score_and_top_k_candidates(
    queries: tf.Tensor, candidates: tf.Tensor, k: int, exclude: tf.Tensor | None
) -> tuple[tf.Tensor, tf.Tensor]:
    """Top-k rows of ``candidates`` [N, d] (items 1..N) by max_q q . c.

    The computation of :func:`score_and_top_k` (which calls it with the
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
        idx = tf.stack(
            [tf.boolean_mask(rows, keep), tf.boolean_mask(cols, keep)], axis=1
        )
        scores = tf.tensor_scatter_nd_update(
            scores, idx, tf.fill([tf.shape(idx)[0]], float("-inf"))
        )
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
    padded = tf.pad(
        scores,
        [[0, 0], [0, num_blocks * _TOP_K_BLOCK - n]],
        constant_values=float("-inf"),
    )
    blocks = tf.reshape(padded, [rows, num_blocks, _TOP_K_BLOCK])
    best = tf.sort(
        tf.math.top_k(tf.reduce_max(blocks, axis=2), k=k).indices, axis=1
    )  # [B, k]
    candidates = tf.reshape(
        tf.gather(blocks, best, batch_dims=1), [rows, k * _TOP_K_BLOCK]
    )
    top = tf.math.top_k(candidates, k=k, sorted=True)
    block = tf.gather(best, top.indices // _TOP_K_BLOCK, batch_dims=1)
    return top.values, block * _TOP_K_BLOCK + top.indices % _TOP_K_BLOCK


score_and_top_k_fn = tf.function(score_and_top_k, reduce_retracing=True)


def brute_force_index(
    item_embeddings: tf.Tensor, k: int
) -> tfrs.layers.factorized_top_k.BruteForce:
    """A TFRS BruteForce index over items 1..N of an [N + 1, d] table (row
    0 is padding), with the item indices as identifiers."""
    n = int(item_embeddings.shape[0]) - 1
    index = tfrs.layers.factorized_top_k.BruteForce(k=k)
    index.index(tf.convert_to_tensor(item_embeddings)[1:], tf.range(1, n + 1))
    return index


def merge_top_k(scores: tf.Tensor, ids: tf.Tensor, k: int) -> tf.Tensor:
    """The k best distinct items of each row of candidate lists.

    Args:
      scores: [B, M] float scores of M candidates (the Q interests' lists
        side by side, any order); -inf for a removed candidate.
      ids: [B, M] int32 item indices; an item may appear once per interest.

    Returns:
      [B, k] int32 items, best first; an item's score is its best one
      (ties: the earlier candidate).
    """
    order = tf.argsort(scores, axis=1, direction="DESCENDING", stable=True)
    s = tf.gather(scores, order, batch_dims=1)
    i = tf.gather(ids, order, batch_dims=1)
    m = tf.shape(i)[1]
    earlier = tf.linalg.band_part(tf.ones([m, m], tf.bool), -1, 0) & ~tf.eye(
        m, dtype=tf.bool
    )  # [m, j]: j < m
    repeat = tf.reduce_any(
        tf.equal(i[:, :, None], i[:, None, :]) & earlier[None], axis=2
    )
    s = tf.where(repeat, tf.constant(-float("inf"), s.dtype), s)
    top = tf.math.top_k(s, k=k, sorted=True).indices
    return tf.gather(i, top, batch_dims=1)


def tfrs_top_k(queries: np.ndarray, item_embeddings: np.ndarray, k: int) -> np.ndarray:
    """The reference procedure through TFRS: a BruteForce index, each
    interest's top-k, and the merge (an item's score is its best
    interest's), with :func:`brute_force_index` and :func:`merge_top_k`.

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
    return merge_top_k(
        tf.reshape(scores, [b, q * k]),
        tf.reshape(tf.cast(ids, tf.int32), [b, q * k]),
        k,
    ).numpy()


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
    e = tf.gather(
        tf.convert_to_tensor(item_embeddings, tf.float32),
        tf.convert_to_tensor(top_items, tf.int32),
    )  # [B, k, d]
    who = tf.argmax(tf.einsum("bqd,bkd->bqk", q, e), axis=1)  # [B, k]
    used = tf.reduce_max(tf.one_hot(who, tf.shape(q)[1]), axis=1)  # [B, Q]
    return tf.reduce_sum(used, axis=1).numpy().astype(np.float64)


def _is_in_rows(values: tf.Tensor, sets: tf.Tensor) -> tf.Tensor:
    """[B, A] bool: values[b, a] occurs in sets[b, :] ([B, S], S >= 1).

    One sort of each row of ``sets`` and a batched ``tf.searchsorted``:
    O(B (A + S) log S) time, O(B (A + S)) memory."""
    ordered = tf.sort(sets, axis=1)
    pos = tf.searchsorted(ordered, values, side="left")
    pos = tf.minimum(pos, tf.shape(ordered)[1] - 1)
    return tf.equal(tf.gather(ordered, pos, batch_dims=1), values)


def _discounts(kmax: int) -> tuple[np.ndarray, np.ndarray]:
    """1 / log2(rank + 1) for ranks 1..kmax and its cumulative sums (the
    ideal DCG of 0..kmax relevant items), float64."""
    discount = 1.0 / np.log2(np.arange(kmax) + 2.0)
    return discount, np.concatenate([[0.0], np.cumsum(discount)])


def protocol_metrics(
    top: tf.Tensor,
    targets: tf.Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    dtype: tf.DType = tf.float32,
) -> dict[str, tf.Tensor]:
    """Per-user Recall, HR and NDCG at each k (docs/protocol.md, "Metrics").

    Recall@k: the target entries (repeats count) found in the top k, over
    the number of target entries.  HR@k: 1 if any target is in the top k.
    NDCG@k: binary relevance of each listed item, over the ideal DCG of
    min(distinct targets, k) relevant items.

    Args:
      top: [B, >= max(ks)] int items (ids >= 1), best first.
      targets: [B, T] int targets, 0-padded (T may be 0); repeats count
        in Recall.
      ks: cut-offs.
      dtype: of the results (the evaluator asks for float64, the Keras
        metric for float32).

    Returns:
      {'recall@k', 'hr@k', 'ndcg@k'} -> [B] ``dtype``; a user without
      targets scores 0.

    Raises:
      ValueError: a cut-off longer than the lists.
    """
    if top.shape[1] is not None and max(ks) > top.shape[1]:
        raise ValueError(f"cut-off {max(ks)} exceeds the lists' length {top.shape[1]}")
    top = tf.cast(top, tf.int32)
    targets = tf.cast(targets, tf.int32)
    # At least one column (a batch of users without targets).
    targets = tf.pad(targets, [[0, 0], [0, tf.maximum(1 - tf.shape(targets)[1], 0)]])
    is_target = targets > 0
    n_targets = tf.maximum(tf.reduce_sum(tf.cast(is_target, dtype), axis=1), 1.0)
    # Distinct targets (for the ideal DCG): adjacent differences of the
    # sorted row, padding (-1) excluded.
    marked = tf.where(is_target, targets, -1)
    srt = tf.sort(marked, axis=1)
    distinct = tf.reduce_sum(
        tf.cast((srt[:, 1:] != srt[:, :-1]) & (srt[:, 1:] > 0), tf.int32), axis=1
    )
    distinct += tf.cast(srt[:, 0] > 0, tf.int32)
    discount, cum_discount = _discounts(max(ks))
    discount = tf.constant(discount, dtype)
    cum_discount = tf.constant(cum_discount, dtype)
    out = {}
    for k in ks:
        tk = top[:, :k]
        hit = _is_in_rows(targets, tk) & is_target  # [B, T]
        out[f"recall@{k}"] = tf.reduce_sum(tf.cast(hit, dtype), axis=1) / n_targets
        out[f"hr@{k}"] = tf.cast(tf.reduce_any(hit, axis=1), dtype)
        rel = _is_in_rows(tk, marked) & (tk > 0)  # [B, k]
        dcg = tf.reduce_sum(tf.cast(rel, dtype) * discount[:k], axis=1)
        idcg = tf.gather(cum_discount, tf.minimum(distinct, k))
        out[f"ndcg@{k}"] = tf.math.divide_no_nan(dcg, idcg)
    return out
