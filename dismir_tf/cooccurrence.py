"""The item-confidence graph S of DisMIR (section 4.1) and its sampler.

``co(i, j)`` is the number of training users who interacted with both item
i and item j (i != j), and ``S_ij = co(i, j) / sum_j' co(i, j')``.  Theorem
4 turns the item-partition objective into a contrastive loss whose positive
for an anchor item i is drawn from the multinomial ``M(S_i)``;
:class:`PositiveSampler` draws those positives inside ``tf.data``.

Only training users count: the valid and test users' histories and targets
must not leak into anything the model is trained on.

Memory.  ``co = X^T X`` (X the binary user x item matrix) has at most
``sum_u n_u (n_u - 1)`` off-diagonal entries (n_u: distinct items of user
u), so a few very long histories dominate its size quadratically.  The
product is computed in blocks of item rows; the rows of different blocks
are disjoint, so no partial results are ever merged.  Row i of the product
needs exactly ``w_i = sum_{u owns i} n_u`` multiply-adds and has at most
``min(w_i, N + 1)`` entries, which sizes each block before it is computed
and gives an upper bound on the whole graph (:func:`cooccurrence_nnz_bound`)
before any of it is built.  Peak memory is the final graph (8 bytes per
entry) plus one block.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from dismir_tf.data.dataset import PAD, SequenceDataset

# Upper bound on the stored entries of one block of item rows of X^T X.  At
# 8 bytes an entry (int32 column, int32 count) plus the diagonal mask and the
# trimmed copy this is about 1.5 GB of transient memory.
DEFAULT_BLOCK_ENTRIES = 1 << 26

# Keeps 63 random bits of a full-range int64 draw, i.e. a uniform value in
# [0, 2^63).  Reducing it modulo a row's total weight W biases the draw by at
# most W / 2^63 relative (< 1e-9 for any W below 2^33); TF's own bounded
# integer sampler reduces 64 random bits modulo the range the same way.
_NONNEGATIVE_INT64_MASK = (1 << 63) - 1

Logger = Callable[[str], None]


@dataclasses.dataclass(frozen=True, eq=False)
class CooccurrenceGraph:
    """The co-occurrence counts co(i, j) as a CSR matrix over rows 0..N.

    Row 0 (padding) and items that share no training user with another item
    are empty.  ``S_ij = co(i, j) / sum_j' co(i, j')`` is implied.

    Attributes:
      num_items: N; rows and columns are item indices 0..N.
      indptr: [N + 2] int64. Row i is ``indices[indptr[i]:indptr[i + 1]]``.
      indices: [nnz] int32. Column item indices, ascending within a row,
        never equal to the row (no diagonal).
      counts: [nnz] int32. co(i, j) >= 1 for the matching entry.
    """

    num_items: int
    indptr: np.ndarray
    indices: np.ndarray
    counts: np.ndarray

    def __post_init__(self) -> None:
        if self.indptr.shape != (self.num_items + 2,):
            raise ValueError(f"indptr has shape {self.indptr.shape}, "
                             f"expected ({self.num_items + 2},)")
        if self.indptr.dtype != np.int64:
            raise ValueError(f"indptr must be int64, got {self.indptr.dtype}")
        if self.indices.dtype != np.int32 or self.counts.dtype != np.int32:
            raise ValueError("indices and counts must be int32")
        if self.indptr[0] != 0 or self.indptr[-1] != len(self.indices):
            raise ValueError("indptr must start at 0 and end at nnz")
        if len(self.counts) != len(self.indices):
            raise ValueError("indices and counts differ in length")

    @property
    def nnz(self) -> int:
        """The number of stored (i, j) pairs with co(i, j) > 0."""
        return len(self.indices)

    @property
    def nbytes(self) -> int:
        """Bytes held by ``indptr``, ``indices`` and ``counts``."""
        return self.indptr.nbytes + self.indices.nbytes + self.counts.nbytes

    def row_totals(self) -> np.ndarray:
        """[N + 1] int64: ``sum_j co(i, j)`` per row (0 for empty rows)."""
        cumulative = np.concatenate(
            [[0], np.cumsum(self.counts, dtype=np.int64)])
        return np.diff(cumulative[self.indptr])

    def row(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        """The co-occurring items of ``item`` and their counts.

        Args:
          item: An item index in 0..N.

        Returns:
          (neighbours [n] int32, counts [n] int32), ascending by neighbour.

        Raises:
          IndexError: ``item`` is outside 0..N.
        """
        if not 0 <= item <= self.num_items:
            raise IndexError(f"item {item} is outside 0..{self.num_items}")
        lo, hi = self.indptr[item], self.indptr[item + 1]
        return self.indices[lo:hi], self.counts[lo:hi]

    def row_probabilities(self, item: int) -> np.ndarray:
        """Row ``item`` of S as a dense distribution.

        Args:
          item: An item index in 0..N.

        Returns:
          [N + 1] float64 ``S_item,j``; it sums to 1, or is all zeros when
          the row is empty.

        Raises:
          IndexError: ``item`` is outside 0..N.
        """
        neighbours, counts = self.row(item)
        probabilities = np.zeros(self.num_items + 1, np.float64)
        if len(counts):
            probabilities[neighbours] = counts / counts.sum(dtype=np.int64)
        return probabilities

    def to_scipy(self) -> sp.csr_array:
        """co as a SciPy [N + 1, N + 1] int32 CSR array (shares memory)."""
        n = self.num_items + 1
        return sp.csr_array((self.counts, self.indices, self.indptr),
                            shape=(n, n))


def _user_item_matrix(ds: SequenceDataset,
                      users: np.ndarray) -> sp.csr_array:
    """[len(users), N + 1] binary int32 CSR: 1 where the user has the item."""
    starts = ds.offsets[users]
    lengths = ds.offsets[users + 1] - starts
    row_ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    # Position of every interaction of the selected users in ds.items.
    positions = (np.arange(row_ptr[-1], dtype=np.int64)
                 + np.repeat(starts - row_ptr[:-1], lengths))
    x = sp.csr_array(
        (np.ones(len(positions), np.int32), ds.items[positions], row_ptr),
        shape=(len(users), ds.num_items + 1))
    x.sum_duplicates()  # A repeat visit counts once per pair.
    x.data[:] = 1
    return x


def _check_users(ds: SequenceDataset, users: np.ndarray | None) -> np.ndarray:
    if users is None:
        return np.asarray(ds.train_users, np.int64)
    users = np.asarray(users)
    if users.ndim != 1 or (users.size and not np.issubdtype(
            users.dtype, np.integer)):
        raise ValueError("users must be a 1-D integer array")
    users = users.astype(np.int64)
    if users.size and (users.min() < 0 or users.max() >= ds.num_users):
        raise ValueError(f"users must lie in 0..{ds.num_users - 1}")
    if len(np.unique(users)) != len(users):
        raise ValueError("users must be distinct")
    if not np.all(np.isin(users, ds.train_users)):
        raise ValueError("users must be training users: valid and test "
                         "users' items would leak into training")
    return users


def _row_entry_bounds(x: sp.csr_array,
                      x_t: sp.csr_array) -> np.ndarray:
    """[N + 1] int64 upper bounds on the entries of each row of X^T X."""
    distinct_per_user = np.diff(x.indptr).astype(np.int64)
    work = x_t @ distinct_per_user  # w_i = sum over users of i of n_u.
    return np.minimum(work, x.shape[1])


def _nnz_bound(bounds: np.ndarray, degree: np.ndarray,
               num_items: int) -> int:
    """``sum_i min(w_i - 1, N)`` over items with a user (minus the diagonal)."""
    return int(np.sum(np.minimum(bounds - (degree > 0), num_items)))


def cooccurrence_nnz_bound(ds: SequenceDataset,
                           users: np.ndarray | None = None) -> int:
    """An upper bound on ``build_cooccurrence(ds, users).nnz``, cheaply.

    The bound is ``sum_i min(w_i - 1, N)`` over items with a user, where
    ``w_i = sum_{u owns i} n_u``; it costs O(interactions) and lets a caller
    refuse a graph that would not fit before building it.

    Args:
      ds: The data set.
      users: [U] int user indices, a subset of ``ds.train_users`` (the
        default).

    Returns:
      The bound, an int.

    Raises:
      ValueError: ``users`` is not a 1-D array of distinct training users.
    """
    x = _user_item_matrix(ds, _check_users(ds, users))
    x_t = x.T.tocsr()
    return _nnz_bound(_row_entry_bounds(x, x_t), np.diff(x_t.indptr),
                      ds.num_items)


def build_cooccurrence(ds: SequenceDataset,
                       users: np.ndarray | None = None,
                       log: Logger | None = None,
                       *,
                       block_entries: int = DEFAULT_BLOCK_ENTRIES,
                       max_nnz: int | None = None) -> CooccurrenceGraph:
    """Counts co(i, j) over ``users`` (default: the training users).

    co(i, j) is the number of those users whose sequence holds both i and j
    (once per user, whatever the repeat visits); the diagonal is dropped.

    Args:
      ds: The data set.
      users: [U] int user indices, a subset of ``ds.train_users`` (the
        default); valid and test users are refused, as their targets would
        leak into training.
      log: Called with one-line progress messages; None is silent.
      block_entries: Upper bound on the stored entries of one block of item
        rows of X^T X (a single row of up to N + 1 entries is always
        allowed); bounds the transient memory.
      max_nnz: Stop with an error once the graph has more entries than
        this, before memory runs out; None is no limit.

    Returns:
      The :class:`CooccurrenceGraph`.

    Raises:
      ValueError: ``users`` is not a 1-D array of distinct training users,
        ``block_entries`` < 1, or the graph exceeds ``max_nnz``.
    """
    if block_entries < 1:
        raise ValueError("block_entries must be >= 1")
    emit = log if log is not None else (lambda message: None)
    start_time = time.perf_counter()
    users = _check_users(ds, users)
    num_rows = ds.num_items + 1

    x = _user_item_matrix(ds, users)      # [U, N + 1]
    x_t = x.T.tocsr()                     # [N + 1, U]
    degree = np.diff(x_t.indptr)          # [N + 1] users per item.
    bounds = _row_entry_bounds(x, x_t)    # [N + 1] entries per row, bound.
    bound_cumsum = np.cumsum(bounds)
    emit(f"co-occurrence: {len(users)} users, {x.nnz} distinct "
         f"(user, item) pairs, at most "
         f"{_nnz_bound(bounds, degree, ds.num_items)} entries")

    row_entries = np.zeros(num_rows, np.int64)
    block_indices: list[np.ndarray] = []
    block_counts: list[np.ndarray] = []
    total = 0
    row = 0
    while row < num_rows:
        before = bound_cumsum[row - 1] if row else 0
        end = int(np.searchsorted(bound_cumsum, before + block_entries,
                                  side="right"))
        end = max(end, row + 1)
        block = x_t[row:end] @ x          # [end - row, N + 1] int32 counts.
        block.sort_indices()
        entries = np.diff(block.indptr)
        # Every item with a user has its diagonal entry co(i, i) = degree.
        row_ids = np.repeat(np.arange(row, end, dtype=np.int32), entries)
        off_diagonal = block.indices != row_ids
        del row_ids
        block_indices.append(
            block.indices[off_diagonal].astype(np.int32, copy=False))
        block_counts.append(
            block.data[off_diagonal].astype(np.int32, copy=False))
        del block, off_diagonal
        row_entries[row:end] = entries - (degree[row:end] > 0)
        total += len(block_indices[-1])
        if max_nnz is not None and total > max_nnz:
            raise ValueError(
                f"the co-occurrence graph exceeds max_nnz={max_nnz} entries "
                f"(reached {total} by item {end - 1} of {ds.num_items})")
        row = end

    indptr = np.zeros(num_rows + 1, np.int64)
    np.cumsum(row_entries, out=indptr[1:])
    # Move the blocks into the final arrays one at a time, so that peak
    # memory is the graph plus one block rather than twice the graph.
    indices = np.empty(total, np.int32)
    counts = np.empty(total, np.int32)
    position = 0
    block_indices.reverse()
    block_counts.reverse()
    while block_indices:
        part_indices = block_indices.pop()
        part_counts = block_counts.pop()
        indices[position:position + len(part_indices)] = part_indices
        counts[position:position + len(part_counts)] = part_counts
        position += len(part_indices)
        del part_indices, part_counts

    graph = CooccurrenceGraph(num_items=ds.num_items, indptr=indptr,
                              indices=indices, counts=counts)
    emit(f"co-occurrence: {graph.nnz} entries "
         f"({graph.nbytes / 2**20:.1f} MiB) in "
         f"{time.perf_counter() - start_time:.1f} s")
    return graph


class PositiveSampler:
    """Draws Theorem 4's positive ``j ~ M(S_i)`` for a batch of anchors.

    The counts of all rows are laid end to end into one int64 cumulative
    sum; row i owns the integer interval ``[low_i, high_i)`` of that
    axis, and item j owns a sub-interval of length co(i, j).  A uniform
    integer in row i's interval, located with ``tf.searchsorted``, is j with
    probability exactly ``co(i, j) / sum_j' co(i, j')`` (up to the modulo
    bias described at ``_NONNEGATIVE_INT64_MASK``).  Everything is
    vectorised, so it runs eagerly and inside ``tf.data.Dataset.map``.

    Build it eagerly (not inside a ``tf.function``): its tables are eager
    tensors that a traced function captures by reference rather than
    embedding them as constants into the graph.

    Memory: 12 bytes per graph entry (int64 cumulative counts, int32
    neighbours) plus 16 bytes per item; building it briefly needs another
    8 bytes per entry.
    """

    def __init__(self, graph: CooccurrenceGraph):
        """Builds the lookup tables.

        Args:
          graph: The co-occurrence graph.
        """
        self.num_items = graph.num_items
        # [nnz] int64 inclusive cumulative counts: entry k owns the integers
        # [cumulative[k] - counts[k], cumulative[k]).  An empty graph gets
        # one dummy entry so that every gather below has a valid index.
        if graph.nnz:
            cumulative = graph.counts.astype(np.int64)
            np.cumsum(cumulative, out=cumulative)  # In place: no temporary.
            neighbours = graph.indices
        else:
            cumulative = np.zeros(1, np.int64)
            neighbours = np.full(1, PAD, np.int32)
        # [N + 2] int64: the cumulative count before row i's first entry.
        row_bounds = np.zeros(graph.num_items + 2, np.int64)
        nonempty_prefix = graph.indptr > 0
        row_bounds[nonempty_prefix] = cumulative[
            graph.indptr[nonempty_prefix] - 1]
        # [N + 1] int64 each: row i owns [row_low[i], row_high[i]).
        self._row_low = tf.constant(row_bounds[:-1])
        self._row_high = tf.constant(row_bounds[1:])
        self._last_entry = len(cumulative) - 1
        # TF copies NumPy arrays; free each copy before making the next so
        # that the transient peak is one table, not all of them.
        self._cumulative = tf.constant(cumulative)
        del cumulative
        self._neighbours = tf.constant(neighbours)  # [nnz] int32.

    def positives_at(self, anchors: tf.Tensor,
                     offsets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The deterministic half of the sampler: unit ``offset`` of a row.

        Enumerating ``offsets`` over ``0..sum_j co(i, j) - 1`` yields every
        neighbour j of i exactly co(i, j) times, so it pins down S_i exactly.

        Args:
          anchors: [...] int32/int64 item indices in 0..N.
          offsets: [...] int64, same shape; offsets into the anchor's row
            weight, in ``[0, sum_j co(i, j))`` for non-empty rows (ignored
            for empty rows).

        Returns:
          (positives [...] int32, has_positive [...] bool); positives is
          PAD (0) where the anchor's row is empty.
        """
        anchors = tf.convert_to_tensor(anchors)
        return self._locate(tf.gather(self._row_low, anchors),
                            tf.gather(self._row_high, anchors),
                            tf.cast(offsets, tf.int64))

    def _locate(self, low: tf.Tensor, high: tf.Tensor,
                offsets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Finds the entry owning ``low + offsets``; all int64, same shape."""
        has_positive = high > low
        target = low + offsets
        shape = tf.shape(target)
        # The entry k with cumulative[k - 1] <= target < cumulative[k].
        entry = tf.searchsorted(self._cumulative, tf.reshape(target, [-1]),
                                side="right", out_type=tf.int64)
        # Only an empty row's (ignored) target can fall past the last entry.
        entry = tf.minimum(entry, self._last_entry)
        positives = tf.reshape(tf.gather(self._neighbours, entry), shape)
        positives = tf.where(has_positive, positives, tf.zeros_like(positives))
        return positives, has_positive

    def __call__(self, anchors: tf.Tensor,
                 seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Draws one positive per anchor, ``j ~ S_anchor``.

        Args:
          anchors: [B] (or any shape) int32/int64 item indices in 0..N;
            out-of-range indices raise InvalidArgumentError.
          seed: [2] int32/int64 stateless seed; the same seed and anchors
            give the same positives.

        Returns:
          (positives [B] int32, has_positive [B] bool); anchors with an
          empty row (PAD, or items that co-occur with nothing) get
          has_positive False and positive PAD (0).
        """
        anchors = tf.convert_to_tensor(anchors)
        low = tf.gather(self._row_low, anchors)
        high = tf.gather(self._row_high, anchors)
        bits = tf.random.stateless_uniform(
            tf.shape(anchors), seed=seed, minval=None, maxval=None,
            dtype=tf.int64)
        bits = tf.bitwise.bitwise_and(
            bits, tf.constant(_NONNEGATIVE_INT64_MASK, tf.int64))
        offsets = tf.math.floormod(bits, tf.maximum(high - low, 1))
        return self._locate(low, high, offsets)


def sample_positives_numpy(
        graph: CooccurrenceGraph, anchors: np.ndarray,
        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A plain NumPy reference of :class:`PositiveSampler`, one row at a time.

    Args:
      graph: The co-occurrence graph.
      anchors: [B] int item indices in 0..N.
      rng: The random generator.

    Returns:
      (positives [B] int32, has_positive [B] bool), with the same meaning as
      :meth:`PositiveSampler.__call__` (not the same random stream).
    """
    anchors = np.asarray(anchors)
    positives = np.zeros(anchors.shape, np.int32)
    has_positive = np.zeros(anchors.shape, bool)
    for n, anchor in enumerate(anchors):
        neighbours, counts = graph.row(int(anchor))
        if len(neighbours):
            # One slot per co-occurring user: uniform slot = j ~ S_anchor.
            slots = np.repeat(neighbours, counts)
            positives[n] = slots[rng.integers(len(slots))]
            has_positive[n] = True
    return positives, has_positive
