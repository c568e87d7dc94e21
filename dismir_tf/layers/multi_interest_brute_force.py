"""TFRS's BruteForce index for multi-interest queries (the export's index)."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

from dismir_tf import retrieval


class MultiInterestBruteForce(tfrs.layers.factorized_top_k.BruteForce):
    """TFRS's BruteForce index, for the protocol's retrieval.

    ``index(item_embeddings[1:], raw_ids[1:])`` as TFRS's export guide
    does; ``call(queries, k, exclude)`` scores every candidate by its best
    query (merge retrieval; Q = 1 for fused and single-interest models),
    removes ``exclude`` item indices (runs trained with
    ``exclude_history``), and returns the top k.  The scores and the top-k
    are evaluate.py's own computation
    (``retrieval.score_and_top_k_candidates``), so the lists are the same.

    Args:
      k: int, default 10. The list length when ``call`` is given no k.

    Call args: queries [B, Q, d] float32; k (optional int); exclude
    (optional [B, L] int32 candidate rows + 1, i.e. item indices; 0 is
    padding).  Returns (scores [B, k] float32, identifiers [B, k]).

    Raises:
      ValueError: ``call`` before ``index``.

    Example:
      >>> import tensorflow as tf
      >>> index = MultiInterestBruteForce(k=2)
      >>> items = tf.constant([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> _ = index.index(items, tf.constant([b"a", b"b", b"c"]))
      >>> queries = tf.constant([[[1.0, 0.0], [0.0, 2.0]]])   # 2 interests
      >>> scores, ids = index(queries)
      >>> ids.numpy().tolist(), scores.numpy().tolist()
      ([[b'b', b'c']], [[2.0, 2.0]])
    """

    def call(
        self, queries: tf.Tensor, k: int | None = None, exclude: tf.Tensor | None = None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        if self._candidates is None:
            raise ValueError("call index() first")
        scores, rows = retrieval.score_and_top_k_candidates(
            queries, self._candidates, k or self._k, exclude
        )
        return scores, tf.gather(self._identifiers, rows)
