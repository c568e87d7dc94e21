"""Adam for embedding tables: the dense update (the reference's) and the
lazy update (only the rows a batch touched).

The item table's gradient is an ``IndexedSlices``: the rows a batch gathered,
with repeats.  Two ways to apply Adam to it:

* **dense** (:class:`DenseUpdateAdam`, the reference code's semantics:
  ``torch.optim.Adam`` on a dense ``nn.Embedding`` gradient): the rows are
  summed into a dense gradient and every row of the table, and both its
  moments, are decayed and moved at every step.  The cost of a step grows
  with the catalogue (three [N + 1, d] arrays read and written).
* **lazy** (:class:`LazyAdam`, as ``tf.contrib.opt.LazyAdamOptimizer`` and
  TensorFlow Addons' ``LazyAdam``): only the rows in the batch have their
  moments and values updated, with the usual bias-corrected step size; the
  other rows keep their moments until they next appear.  The cost of a
  step grows with the batch, not the catalogue.  The semantics differ from
  Adam's (a row's moments decay only when it is seen), so the results may
  differ: docs/performance.md compares the two over 3 seeds.

Both are XLA-compilable.  The lazy update sums repeated rows without
``tf.unique`` (whose output shape is dynamic and slow under XLA on the CPU):
it numbers every occurrence of a row id by the id's first occurrence (a
scatter-min into an int32 scratch row per table row), sums each id's rows
with a segment sum of static size, and gives every occurrence its id's sum,
so that the scatter of the new rows writes the same value at every repeat of
a row.
"""

from __future__ import annotations

import tensorflow as tf

EMBEDDING_UPDATES = ("dense", "lazy", "auto")
# --embedding_update auto: lazy for item tables of more rows than this (a
# paper-size catalogue, where the dense update dominates a step), dense
# below it (docs/performance.md, "Lazy or dense Adam").
LAZY_FROM_ROWS = 100_000


class DenseUpdateAdam(tf.keras.optimizers.Adam):
    """Adam that adds a sparse gradient into a dense one before the update.

    Keras de-duplicates an ``IndexedSlices`` gradient (tf.unique and a
    segment sum) and scatters it into both moments, and Adam then still
    decays and moves every row of the table.  Under XLA on the CPU the
    unique and the scatters cost more than the update itself; summing the
    rows into a dense gradient and running the dense update, one fused
    pass over the table, computes the same per-row sums and the same update
    (docs/performance.md).  Keras calls this after the cross-replica
    aggregation, so under tf.distribute the all-reduce still moves only the
    gathered rows.
    """

    def _deduplicate_sparse_grad(self, grads):
        return [
            tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
            for g in grads
        ]


def sum_repeated_rows(
    values: tf.Tensor, indices: tf.Tensor, num_rows: int
) -> tf.Tensor:
    """For each of the n rows of an IndexedSlices, the sum of all the rows
    that share its index.

    Args:
      values: [n, d] gradient rows.
      indices: [n] int32 or int64 row ids in [0, num_rows) (repeats allowed).
      num_rows: rows of the table the ids index (static).

    Returns:
      [n, d]: row k is ``sum_{j: indices[j] == indices[k]} values[j]``.
      Static shapes only (XLA): every occurrence of an id is numbered by the
      id's first occurrence (a scatter-min of positions into a [num_rows]
      int32 scratch array, then a gather), and a segment sum over those n
      numbers adds the rows up.  O(n) work and one [num_rows] int32 fill
      (1.5 MB for 368k rows); a sort, as XLA runs it on the CPU, cost four
      times as much at 15k rows (docs/performance.md).
    """
    n = tf.shape(indices)[0]
    ids = tf.cast(indices, tf.int32)
    first = tf.tensor_scatter_nd_min(tf.fill([num_rows], n), ids[:, None], tf.range(n))
    segment = tf.gather(first, ids)  # [n] in [0, n)
    sums = tf.math.unsorted_segment_sum(values, segment, n)  # [n, d]
    return tf.gather(sums, segment)


class LazyAdam(DenseUpdateAdam):
    """Adam whose sparse (embedding) updates touch only the rows a batch has.

    For an ``IndexedSlices`` gradient with rows g_r (repeats summed), for
    each row r in the batch only:

        m_r <- beta_1 m_r + (1 - beta_1) g_r
        v_r <- beta_2 v_r + (1 - beta_2) g_r^2
        w_r <- w_r - alpha_t m_r / (sqrt(v_r) + epsilon),
        alpha_t = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)

    (``tf.contrib.opt.LazyAdamOptimizer``; TensorFlow Addons' ``LazyAdam``).
    Dense gradients take Keras's Adam unchanged.  Shapes: any [N, d] table.
    amsgrad is not supported (ValueError).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("LazyAdam does not support amsgrad")

    def _deduplicate_sparse_grad(self, grads):
        # The repeats are summed in update_step, XLA-friendly.
        return grads

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        beta_1_power = tf.pow(beta_1, local_step)
        beta_2_power = tf.pow(beta_2, local_step)
        alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        epsilon_hat = (
            self.epsilon * tf.sqrt(1 - beta_2_power)
            if self.adaptive_epsilon
            else self.epsilon
        )
        var_key = self._var_key(variable)
        m = self._momentums[self._index_dict[var_key]]
        v = self._velocities[self._index_dict[var_key]]
        indices = gradient.indices
        g = sum_repeated_rows(gradient.values, indices, int(variable.shape[0]))
        m_rows = beta_1 * tf.gather(m, indices) + (1 - beta_1) * g
        v_rows = beta_2 * tf.gather(v, indices) + (1 - beta_2) * tf.square(g)
        w_rows = tf.gather(variable, indices) - alpha * m_rows / (
            tf.sqrt(v_rows) + epsilon_hat
        )
        # Repeated rows carry identical new values: the scatter is exact.
        m.scatter_update(tf.IndexedSlices(m_rows, indices))
        v.scatter_update(tf.IndexedSlices(v_rows, indices))
        variable.scatter_update(tf.IndexedSlices(w_rows, indices))


def resolve_embedding_update(mode: str, table_rows: int) -> str:
    """'dense' or 'lazy' for ``mode`` ('auto': lazy from
    ``LAZY_FROM_ROWS`` rows of the item table)."""
    if mode not in EMBEDDING_UPDATES:
        raise ValueError(
            f"embedding_update must be one of {EMBEDDING_UPDATES}, got {mode!r}"
        )
    if mode == "auto":
        return "lazy" if table_rows > LAZY_FROM_ROWS else "dense"
    return mode


def make_adam(
    learning_rate: float, update: str, jit_compile: bool
) -> tf.keras.optimizers.Optimizer:
    """Adam with the resolved embedding ``update`` ('dense' or 'lazy').

    With ``jit_compile`` its per-variable update is XLA-compiled, which
    Keras only does on GPUs by itself.  Without it, 'dense' is Keras's own
    Adam (its sparse path: de-duplicated rows, every row decayed and moved).
    """
    if update == "lazy":
        optimizer = LazyAdam(learning_rate)
    elif jit_compile:
        optimizer = DenseUpdateAdam(learning_rate)
    else:
        return tf.keras.optimizers.Adam(learning_rate)
    optimizer.jit_compile = jit_compile
    return optimizer
