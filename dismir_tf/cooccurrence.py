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
# trimmed copy this is about 0.4 GB of transient memory (at Amazon Books
# size the blocks' count hardly changes the build time; docs/performance.md).
DEFAULT_BLOCK_ENTRIES = 1 << 24

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
            raise ValueError(
                f"indptr has shape {self.indptr.shape}, "
                f"expected ({self.num_items + 2},)"
            )
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
        cumulative = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)])
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
        return sp.csr_array((self.counts, self.indices, self.indptr), shape=(n, n))


def _user_item_matrix(ds: SequenceDataset, users: np.ndarray) -> sp.csr_array:
    """[len(users), N + 1] binary int32 CSR: 1 where the user has the item."""
    starts = ds.offsets[users]
    lengths = ds.offsets[users + 1] - starts
    row_ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    # Position of every interaction of the selected users in ds.items.
    positions = np.arange(row_ptr[-1], dtype=np.int64) + np.repeat(
        starts - row_ptr[:-1], lengths
    )
    x = sp.csr_array(
        (np.ones(len(positions), np.int32), ds.items[positions], row_ptr),
        shape=(len(users), ds.num_items + 1),
    )
    x.sum_duplicates()  # A repeat visit counts once per pair.
    x.data[:] = 1
    return x


def _check_users(ds: SequenceDataset, users: np.ndarray | None) -> np.ndarray:
    if users is None:
        return np.asarray(ds.train_users, np.int64)
    users = np.asarray(users)
    if users.ndim != 1 or (users.size and not np.issubdtype(users.dtype, np.integer)):
        raise ValueError("users must be a 1-D integer array")
    users = users.astype(np.int64)
    if users.size and (users.min() < 0 or users.max() >= ds.num_users):
        raise ValueError(f"users must lie in 0..{ds.num_users - 1}")
    if len(np.unique(users)) != len(users):
        raise ValueError("users must be distinct")
    if not np.all(np.isin(users, ds.train_users)):
        raise ValueError(
            "users must be training users: valid and test "
            "users' items would leak into training"
        )
    return users


def _row_entry_bounds(x: sp.csr_array, x_t: sp.csr_array) -> np.ndarray:
    """[N + 1] int64 upper bounds on the entries of each row of X^T X."""
    distinct_per_user = np.diff(x.indptr).astype(np.int64)
    work = x_t @ distinct_per_user  # w_i = sum over users of i of n_u.
    return np.minimum(work, x.shape[1])


def _nnz_bound(bounds: np.ndarray, degree: np.ndarray, num_items: int) -> int:
    """``sum_i min(w_i - 1, N)`` over items with a user (minus the diagonal)."""
    return int(np.sum(np.minimum(bounds - (degree > 0), num_items)))


def cooccurrence_nnz_bound(ds: SequenceDataset, users: np.ndarray | None = None) -> int:
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
    return _nnz_bound(_row_entry_bounds(x, x_t), np.diff(x_t.indptr), ds.num_items)


def build_cooccurrence(
    ds: SequenceDataset,
    users: np.ndarray | None = None,
    log: Logger | None = None,
    *,
    block_entries: int = DEFAULT_BLOCK_ENTRIES,
    max_nnz: int | None = None,
) -> CooccurrenceGraph:
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

    x = _user_item_matrix(ds, users)  # [U, N + 1]
    x_t = x.T.tocsr()  # [N + 1, U]
    degree = np.diff(x_t.indptr)  # [N + 1] users per item.
    bounds = _row_entry_bounds(x, x_t)  # [N + 1] entries per row, bound.
    bound_cumsum = np.cumsum(bounds)
    emit(
        f"co-occurrence: {len(users)} users, {x.nnz} distinct "
        f"(user, item) pairs, at most "
        f"{_nnz_bound(bounds, degree, ds.num_items)} entries"
    )

    row_entries = np.zeros(num_rows, np.int64)
    block_indices: list[np.ndarray] = []
    block_counts: list[np.ndarray] = []
    total = 0
    row = 0
    while row < num_rows:
        before = bound_cumsum[row - 1] if row else 0
        end = int(np.searchsorted(bound_cumsum, before + block_entries, side="right"))
        end = max(end, row + 1)
        block = x_t[row:end] @ x  # [end - row, N + 1] int32 counts.
        block.sort_indices()
        entries = np.diff(block.indptr)
        # Every item with a user has its diagonal entry co(i, i) = degree.
        row_ids = np.repeat(np.arange(row, end, dtype=np.int32), entries)
        off_diagonal = block.indices != row_ids
        del row_ids
        block_indices.append(block.indices[off_diagonal].astype(np.int32, copy=False))
        block_counts.append(block.data[off_diagonal].astype(np.int32, copy=False))
        del block, off_diagonal
        row_entries[row:end] = entries - (degree[row:end] > 0)
        total += len(block_indices[-1])
        if max_nnz is not None and total > max_nnz:
            raise ValueError(
                f"the co-occurrence graph exceeds max_nnz={max_nnz} entries "
                f"(reached {total} by item {end - 1} of {ds.num_items})"
            )
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
        indices[position : position + len(part_indices)] = part_indices
        counts[position : position + len(part_counts)] = part_counts
        position += len(part_indices)
        del part_indices, part_counts

    graph = CooccurrenceGraph(
        num_items=ds.num_items, indptr=indptr, indices=indices, counts=counts
    )
    emit(
        f"co-occurrence: {graph.nnz} entries "
        f"({graph.nbytes / 2**20:.1f} MiB) in "
        f"{time.perf_counter() - start_time:.1f} s"
    )
    return graph


def _row_cumulative(
    counts: np.ndarray, indptr: np.ndarray, in_place: bool
) -> np.ndarray:
    """Inclusive cumulative counts within each row: entry k of row i holds
    ``sum_{k' in row i, k' <= k} counts[k']``.

    int32 (``in_place``: written over ``counts``) while every row total
    fits, else a new int64 array.  Worked in blocks of rows, so the
    temporaries stay small whatever the graph's size.
    """
    num_rows = len(indptr) - 1
    lengths = np.diff(indptr)
    fits = np.iinfo(np.int32).max
    out = counts if in_place else np.empty_like(counts)
    wide = None
    row = 0
    block = 1 << 24
    while row < num_rows:
        end = int(np.searchsorted(indptr, indptr[row] + block, side="right")) - 1
        end = min(max(end, row + 1), num_rows)
        lo, hi = int(indptr[row]), int(indptr[end])
        if hi > lo:
            seg = counts[lo:hi].astype(np.int64)
            np.cumsum(seg, out=seg)
            starts = indptr[row:end] - lo
            base = np.where(starts > 0, seg[np.maximum(starts - 1, 0)], 0)
            seg -= np.repeat(base, lengths[row:end])
            if wide is None and seg.size and int(seg.max()) > fits:
                # A row total past int32: the whole table goes int64.
                wide = np.empty(len(counts), np.int64)
                wide[:lo] = out[:lo]
            if wide is not None:
                wide[lo:hi] = seg
            else:
                out[lo:hi] = seg
        row = end
    return wide if wide is not None else out


# Entries copied into a sampler table per step.
_TABLE_CHUNK = 1 << 24


def _table(array: np.ndarray) -> tf.Variable:
    """``array`` as a non-trainable variable, filled in place in chunks.

    Not ``tf.constant``: that holds two copies of a NumPy array while it
    converts it, and a ``tf.data`` function (the training pipeline draws
    its positives in one) captures a constant by value, a third copy; a
    variable is captured by reference and read with ``tf.gather`` (a
    resource gather, no copy).  So the table costs its own size once.
    """
    table = tf.Variable(lambda: tf.zeros(array.shape, array.dtype), trainable=False)
    for lo in range(0, len(array), _TABLE_CHUNK):
        hi = min(lo + _TABLE_CHUNK, len(array))
        tf.raw_ops.ResourceStridedSliceAssign(
            ref=table.handle, begin=[lo], end=[hi], strides=[1], value=array[lo:hi]
        )
    return table


class PositiveSampler:
    """Draws Theorem 4's positive ``j ~ M(S_i)`` for a batch of anchors.

    Row i's counts are laid end to end as the integer interval ``[0,
    sum_j co(i, j))``, item j owning a sub-interval of length co(i, j); a
    uniform integer in that interval is j with probability exactly ``co(i,
    j) / sum_j' co(i, j')`` (up to the modulo bias described at
    ``_NONNEGATIVE_INT64_MASK``).  The owner is found by a binary search
    over the row's inclusive cumulative counts, vectorised over the batch
    with a fixed number of halvings (log2 of the longest row), so it runs
    eagerly and inside ``tf.data.Dataset.map``.

    Build it eagerly (not inside a ``tf.function``): its tables are eager
    tensors that a traced function captures by reference rather than
    embedding them as constants into the graph.

    Memory: 8 bytes per graph entry (int32 cumulative counts within a row,
    int32 neighbours; int64 counts if a row's total passes 2^31) plus 8
    bytes per item.  :func:`build_positive_sampler` builds it from a data
    set without ever holding more than the graph and one table copy (12
    bytes per entry).
    """

    def __init__(self, graph: CooccurrenceGraph, *, _consume: bool = False):
        """Builds the lookup tables.

        Args:
          graph: The co-occurrence graph (left unchanged).
        """
        self.num_items = graph.num_items
        lengths = np.diff(graph.indptr)
        longest = int(lengths.max()) if len(lengths) else 0
        # Halvings of the binary search: enough for the longest row.
        self._steps = max(int(longest).bit_length(), 1)
        self._indptr = tf.constant(graph.indptr)  # [N + 2] int64
        indices, counts, indptr = graph.indices, graph.counts, graph.indptr
        if _consume:
            # The caller gave up the graph: its arrays are reused and
            # released one at a time (build_positive_sampler).
            object.__setattr__(graph, "indices", None)
            object.__setattr__(graph, "counts", None)
        del graph
        self.num_entries = len(indices)
        if len(indices):
            within = _row_cumulative(counts, indptr, in_place=_consume)
            del counts
        else:
            # One dummy entry so that every gather below has a valid index.
            within = np.zeros(1, np.int32)
            indices = np.full(1, PAD, np.int32)
        self._last_entry = len(within) - 1
        # One table at a time, each NumPy array freed once copied: the
        # transient peak is one table, not both.
        self._within = _table(within)  # [nnz] cumulative
        del within
        self._neighbours = _table(indices)  # [nnz] int32
        del indices

    def _row_bounds(self, anchors: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        anchors = tf.cast(anchors, tf.int64)
        return (tf.gather(self._indptr, anchors), tf.gather(self._indptr, anchors + 1))

    def _row_totals(self, lo: tf.Tensor, hi: tf.Tensor) -> tf.Tensor:
        last = tf.clip_by_value(hi - 1, 0, self._last_entry)
        return tf.where(
            hi > lo, tf.cast(tf.gather(self._within, last), tf.int64), tf.zeros_like(lo)
        )

    def positives_at(
        self, anchors: tf.Tensor, offsets: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
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
        lo, hi = self._row_bounds(anchors)
        return self._locate(lo, hi, tf.cast(offsets, tf.int64))

    def _locate(
        self, lo: tf.Tensor, hi: tf.Tensor, offsets: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """The entry k of [lo, hi) with within[k - 1] <= offset < within[k]
        (the first whose inclusive cumulative count passes the offset);
        all int64, same shape."""
        has_positive = hi > lo
        shape = tf.shape(offsets)
        lo, hi = tf.reshape(lo, [-1]), tf.reshape(hi, [-1])
        offsets = tf.reshape(offsets, [-1])
        for _ in range(self._steps):
            active = lo < hi
            mid = (lo + hi) // 2
            count = tf.cast(
                tf.gather(self._within, tf.clip_by_value(mid, 0, self._last_entry)),
                tf.int64,
            )
            right = active & (count <= offsets)
            lo = tf.where(right, mid + 1, lo)
            hi = tf.where(active & ~right, mid, hi)
        entry = tf.minimum(lo, self._last_entry)
        positives = tf.reshape(tf.gather(self._neighbours, entry), shape)
        positives = tf.where(has_positive, positives, tf.zeros_like(positives))
        return positives, has_positive

    def __call__(
        self, anchors: tf.Tensor, seed: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
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
        lo, hi = self._row_bounds(anchors)
        total = self._row_totals(lo, hi)
        bits = tf.random.stateless_uniform(
            tf.shape(anchors), seed=seed, minval=None, maxval=None, dtype=tf.int64
        )
        bits = tf.bitwise.bitwise_and(
            bits, tf.constant(_NONNEGATIVE_INT64_MASK, tf.int64)
        )
        offsets = tf.math.floormod(bits, tf.maximum(total, 1))
        return self._locate(lo, hi, offsets)


def build_positive_sampler(
    ds: SequenceDataset,
    users: np.ndarray | None = None,
    log: Logger | None = None,
    **kwargs,
) -> PositiveSampler:
    """The co-occurrence graph of ``ds`` (:func:`build_cooccurrence`, same
    arguments) turned into a :class:`PositiveSampler`, its arrays reused in
    place and released as the sampler's tables are made: peak memory is the
    graph plus one table (12 bytes per entry), not the graph plus the
    sampler."""
    graph = build_cooccurrence(ds, users, log, **kwargs)
    return PositiveSampler(graph, _consume=True)
