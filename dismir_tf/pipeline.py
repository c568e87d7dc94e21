"""tf.data input pipelines (docs/protocol.md, "Training examples" and
"Evaluation examples").

Training batches are sampled entirely inside TensorFlow from a seed and the
step number with stateless random ops: step ``s`` of a run always sees the
same batch, so a resumed run continues with exactly the batches it would have
seen, and the whole pipeline parallelises with ``num_parallel_calls``.

Evaluation examples are fixed NumPy arrays: each valid/test user's history
(the last ``max_len`` items of the first 80% of the sequence) and targets
(the remaining 20%).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np
import tensorflow as tf

from dismir_tf import types
from dismir_tf.data.dataset import SequenceDataset

# Targets are drawn at positions k >= MIN_TARGET_POSITION (ComiRec/REMI: the
# history always has at least four items).
MIN_TARGET_POSITION = 4

# From this many training users on, a batch's distinct users are the first B
# distinct of DISTINCT_DRAW_FACTOR * B uniform draws (O(B) work a step)
# instead of the top B of one uniform number per user (O(users): about 4 ms
# of a Books-size step's pipeline).  Both give a uniform B-subset; below the
# threshold the top-B draw stays, so every batch of the smaller data sets,
# and every result measured on them, is what it was.
REJECTION_DRAW_FROM_USERS = 100_000
DISTINCT_DRAW_FACTOR = 4

PositiveSampler = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


def _window_positions(
    starts: tf.Tensor, ends: tf.Tensor, max_len: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Absolute positions of the last ``max_len`` items of [starts, ends).

    Returns:
      lo [B] int64 (the window's first position), safe [B, L] int64
      positions (0 where padded) and valid [B, L] bool.
    """
    lo = tf.maximum(starts, ends - max_len)  # [B]
    pos = lo[:, None] + tf.range(max_len, dtype=tf.int64)[None]  # [B, L]
    valid = pos < ends[:, None]
    return lo, tf.where(valid, pos, tf.zeros_like(pos)), valid


def _gather_windows(
    items: tf.Tensor, starts: tf.Tensor, ends: tf.Tensor, max_len: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """The last ``max_len`` items of ``items[starts:ends]``, right-padded.

    Args:
      items: [nnz] int32 flat item sequences.
      starts, ends: [B] int64 window bounds (absolute positions in items).
      max_len: L.

    Returns:
      history [B, L] int32 (0-padded on the right) and mask [B, L] float32.
    """
    _, safe, valid = _window_positions(starts, ends, max_len)
    hist = tf.where(valid, tf.gather(items, safe), 0)
    return hist, tf.cast(valid, tf.float32)


def _gather_window_times(
    timestamps: tf.Tensor | None,
    starts: tf.Tensor,
    ends: tf.Tensor,
    max_len: int,
    time_unit: float,
) -> tf.Tensor:
    """[B, L] float32 times of the windows of :func:`_gather_windows`.

    (t - t_first) / time_unit with t_first the window's first item, or the
    position in the window (0, 1, ...) when ``timestamps`` is None (order
    only: every interaction one unit after the previous); 0 on padding.
    """
    lo, safe, valid = _window_positions(starts, ends, max_len)
    if timestamps is None:
        rel = tf.cast(safe - lo[:, None], tf.float64)
    else:
        rel = (
            tf.gather(timestamps, safe) - tf.gather(timestamps, lo)[:, None]
        ) / time_unit
    return tf.cast(tf.where(valid, rel, tf.zeros_like(rel)), tf.float32)


@dataclasses.dataclass(frozen=True)
class TrainSampler:
    """Samples training batches (docs/protocol.md, "Training examples") from
    a step number.

    Attributes:
      dataset: the processed data set.
      max_len: history length L.
      batch_size: users per batch (the global batch).
      seed: run seed.
      positive_sampler: optional co-occurrence sampler (anchors, seed) ->
        (positives, has_positive); when given, every batch also carries the
        partition task's anchors and their positives.
      anchors: 'items' (each example's target and history items) or
        'targets' (the target only).
      time_unit: None (no time features, the default), or seconds per
        time unit: every batch then also carries ``types.HISTORY_TIME``
        (only models whose ``input_features`` list ``types.HISTORY_TIME``).
    """

    dataset: SequenceDataset
    max_len: int
    batch_size: int
    seed: int
    positive_sampler: PositiveSampler | None = None
    anchors: str = "items"
    time_unit: float | None = None
    # Set by __post_init__: the data set's tables as constants.
    _items: tf.Tensor = dataclasses.field(init=False, repr=False, compare=False)
    _starts: tf.Tensor = dataclasses.field(init=False, repr=False, compare=False)
    _lengths: tf.Tensor = dataclasses.field(init=False, repr=False, compare=False)
    _timestamps: tf.Tensor | None = dataclasses.field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        ds = self.dataset
        if self.time_unit is not None and not self.time_unit > 0:
            raise ValueError(f"time_unit must be > 0, got {self.time_unit}")
        users = ds.train_users.astype(np.int64)
        if len(users) == 0:
            raise ValueError("the data set has no training users")
        object.__setattr__(self, "_items", tf.constant(ds.items, tf.int32))
        object.__setattr__(self, "_starts", tf.constant(ds.offsets[users], tf.int64))
        object.__setattr__(self, "_lengths", tf.constant(ds.lengths[users], tf.int64))
        object.__setattr__(
            self,
            "_timestamps",
            None
            if self.time_unit is None or ds.timestamps is None
            else tf.constant(ds.timestamps, tf.float64),
        )

    def draw_users(self, seed: tf.Tensor) -> tf.Tensor:
        """[B] int64 rows of the training users of one batch.

        Distinct users within a batch, as ComiRec's and REMI's samplers
        do (with
        replacement only when B exceeds the number of users), a uniform
        B-subset in random order.  Up to REJECTION_DRAW_FROM_USERS users it
        is the top B of one uniform number per user; from there on, the
        first B distinct of DISTINCT_DRAW_FACTOR * B uniform draws (each new
        distinct user is uniform over the ones not yet drawn, so the subset
        is uniform too), falling back to the top-B draw in the vanishingly
        rare case of too few distinct draws.

        Args:
          seed: [2] int64 stateless seed.
        """
        b = self.batch_size
        n = int(self._starts.shape[0])
        if b > n:
            return tf.random.stateless_uniform([b], seed, 0, n, dtype=tf.int64)

        def top_b() -> tf.Tensor:
            noise = tf.random.stateless_uniform([n], seed)
            return tf.cast(tf.math.top_k(noise, b).indices, tf.int64)

        if n < REJECTION_DRAW_FROM_USERS:
            return top_b()
        draws = tf.random.stateless_uniform(
            [DISTINCT_DRAW_FACTOR * b], seed, 0, n, dtype=tf.int64
        )
        distinct = tf.unique(draws).y  # in order of first draw
        idx = tf.cond(tf.size(distinct) >= b, lambda: distinct[:b], top_b)
        return tf.ensure_shape(idx, [b])

    def sample(self, step: tf.Tensor) -> dict[str, tf.Tensor]:
        """The batch of training step ``step`` (a scalar int64 tensor)."""
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(step, tf.int64)])
        s_users, s_pos, s_model, s_part = tf.unstack(
            tf.random.experimental.stateless_split(seed, 4)
        )
        idx = self.draw_users(s_users)
        start = tf.gather(self._starts, idx)
        n = tf.gather(self._lengths, idx)
        # k uniform in {4, ..., n - 1}: the target is s[k], history s[:k].
        k = (
            tf.random.stateless_uniform(
                [self.batch_size], s_pos, minval=0, maxval=2**62, dtype=tf.int64
            )
            % (n - MIN_TARGET_POSITION)
            + MIN_TARGET_POSITION
        )
        hist, mask = _gather_windows(self._items, start, start + k, self.max_len)
        target = tf.gather(self._items, start + k)
        batch = {
            types.HISTORY: hist,
            types.HISTORY_MASK: mask,
            types.TARGET: target,
            types.SEED: tf.tile(s_model[None], [self.batch_size, 1]),
        }
        if self.time_unit is not None:
            batch[types.HISTORY_TIME] = _gather_window_times(
                self._timestamps, start, start + k, self.max_len, self.time_unit
            )
        if self.positive_sampler is not None:
            if self.anchors == "targets":
                anchors = target[:, None]  # [B, 1]
                anchor_mask = tf.ones([self.batch_size, 1])
            else:
                anchors = tf.concat([target[:, None], hist], 1)  # [B, 1+L]
                anchor_mask = tf.concat([tf.ones([self.batch_size, 1]), mask], axis=1)
            pos, has = self.positive_sampler(tf.reshape(anchors, [-1]), s_part)
            batch[types.PARTITION_ANCHOR] = anchors
            batch[types.PARTITION_POSITIVE] = tf.reshape(
                tf.cast(pos, tf.int32), tf.shape(anchors)
            )
            batch[types.PARTITION_MASK] = anchor_mask * tf.reshape(
                tf.cast(has, tf.float32), tf.shape(anchors)
            )
        return batch

    def dataset_from(
        self, start_step: int = 0, num_steps: int | None = None
    ) -> tf.data.Dataset:
        """Batches for steps start_step, start_step + 1, ... (prefetched)."""
        stop = -1 if num_steps is None else start_step + num_steps
        steps = (
            tf.data.Dataset.range(start_step, stop)
            if stop >= 0
            else tf.data.Dataset.range(start_step, 2**62)
        )
        return steps.map(
            self.sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        ).prefetch(tf.data.AUTOTUNE)


class Targets:
    """Each user's target items, stored ragged (one flat array and row
    offsets), so that memory follows the number of targets, not the
    longest list times the number of users.

    Indexing gives right-padded rows: ``targets[slice or index array]`` ->
    [B, T_batch] int32 padded with 0 to the longest list *of that batch*;
    ``targets[row]`` -> that user's [T_row] targets; ``np.asarray(targets)``
    -> [U, T] padded to the longest list of all (for small splits only).
    Targets may repeat items.
    """

    def __init__(self, values: np.ndarray, offsets: np.ndarray):
        self.values = np.asarray(values, np.int32)
        self.offsets = np.asarray(offsets, np.int64)
        if (
            self.offsets.ndim != 1
            or self.offsets[0] != 0
            or self.offsets[-1] != len(self.values)
        ):
            raise ValueError("offsets must start at 0 and end at len(values)")

    @classmethod
    def from_padded(cls, padded: np.ndarray) -> Targets:
        """From a [U, T] 0-padded array (the padding must be trailing)."""
        padded = np.asarray(padded, np.int32)
        if padded.ndim != 2:
            raise ValueError("padded targets must be [U, T]")
        lengths = (padded > 0).sum(axis=1)
        return cls(padded[padded > 0], np.concatenate([[0], np.cumsum(lengths)]))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, (int, np.integer)):
            return self.values[self.offsets[rows] : self.offsets[rows + 1]]
        rows = np.arange(len(self))[rows]
        starts = self.offsets[rows]
        lengths = self.offsets[rows + 1] - starts
        width = max(int(lengths.max()) if len(rows) else 0, 1)
        pos = starts[:, None] + np.arange(width)[None]
        ok = np.arange(width)[None] < lengths[:, None]
        return np.where(ok, self.values[np.where(ok, pos, 0)], 0).astype(np.int32)

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), max(int(self.lengths.max()) if len(self) else 0, 1))


def feature_tensors(features) -> dict[str, tf.Tensor]:
    """NumPy model features ({types.HISTORY: [B, L], ...}, or a history
    alone) as tensors of their ``types.FEATURE_DTYPES``."""
    return {
        k: tf.constant(v, types.FEATURE_DTYPES[k])
        for k, v in types.as_features(features).items()
    }


@dataclasses.dataclass(frozen=True)
class EvalExamples:
    """Evaluation examples of one split (docs/protocol.md, "Evaluation
    examples").

    Attributes:
      users: [U] int32 user indices.
      history: [U, L] int32, right-padded with 0.
      targets: :class:`Targets`, each user's target items; a [U, T]
        0-padded array is accepted and converted.  ``targets[batch]`` is
        padded to the longest list of the batch, so evaluation memory
        follows the batch size, not the heaviest user of the split.
      features: each user's model inputs besides the history (which
        ``inputs(rows)`` adds to give a model's whole features), by key of
        ``dismir_tf.types`` ([U, L] arrays: ``types.HISTORY_TIME`` float32
        when the examples were built with a time unit); empty by default.
      known: :class:`Targets`-like ragged rows of each user's whole known
        sequence (the first 80%; ``history`` is its last L items): what
        ``--exclude_history`` removes from the ranking.  None: the history.
    """

    users: np.ndarray
    history: np.ndarray
    targets: Targets
    features: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    known: Targets | None = None

    def inputs(self, rows) -> dict[str, np.ndarray]:
        """The model inputs of ``rows`` (a slice or indices):
        {``types.HISTORY``: [B, L], every key of ``features``: [B, L]}."""
        return {
            types.HISTORY: self.history[rows],
            **{k: v[rows] for k, v in self.features.items()},
        }

    def select(self, rows) -> EvalExamples:
        """The examples of ``rows`` (indices), every field cut alike."""
        return EvalExamples(
            users=self.users[rows],
            history=self.history[rows],
            targets=Targets.from_padded(self.targets[rows]),
            features={k: v[rows] for k, v in self.features.items()},
            known=None if self.known is None else Targets.from_padded(self.known[rows]),
        )

    def known_items(self, rows) -> np.ndarray:
        """[B, K] the known items of ``rows`` (a slice), 0-padded to the
        batch's longest (the history when ``known`` is None)."""
        return self.history[rows] if self.known is None else self.known[rows]

    def __post_init__(self) -> None:
        if not isinstance(self.targets, Targets):
            object.__setattr__(self, "targets", Targets.from_padded(self.targets))

    @property
    def num_users(self) -> int:
        return len(self.users)

    def batches(self, batch_size: int):
        for lo in range(0, self.num_users, batch_size):
            yield slice(lo, min(lo + batch_size, self.num_users))


def eval_examples(
    ds: SequenceDataset, split: str, max_len: int, time_unit: float | None = None
) -> EvalExamples:
    """History and targets of every user of ``split`` ('valid' or 'test');
    with a ``time_unit`` (seconds), also the history times, as the
    training batches of a :class:`TrainSampler` with that unit."""
    users = ds.split_users(split).astype(np.int64)
    starts = ds.offsets[users]
    n = ds.lengths[users]
    k = (0.8 * n).astype(np.int64)  # int(0.8 * n), as the reference code.
    lo = np.maximum(starts, starts + k - max_len)
    pos = lo[:, None] + np.arange(max_len)[None]
    valid = pos < (starts + k)[:, None]
    history = np.where(valid, ds.items[np.where(valid, pos, 0)], 0)
    t_len = n - k
    # Ragged: the targets of user r are items[starts + k : starts + n].
    t_offsets = np.concatenate([[0], np.cumsum(t_len)]).astype(np.int64)
    t_pos = np.arange(t_offsets[-1], dtype=np.int64) + np.repeat(
        starts + k - t_offsets[:-1], t_len
    )
    targets = Targets(ds.items[t_pos], t_offsets)
    # Ragged: the known items of user r are items[starts : starts + k].
    k_offsets = np.concatenate([[0], np.cumsum(k)]).astype(np.int64)
    k_pos = np.arange(k_offsets[-1], dtype=np.int64) + np.repeat(
        starts - k_offsets[:-1], k
    )
    known = Targets(ds.items[k_pos], k_offsets)
    features = {}
    if time_unit is not None:
        # The training batches' own function, so both see the same times.
        timestamps = (
            None if ds.timestamps is None else tf.constant(ds.timestamps, tf.float64)
        )
        features[types.HISTORY_TIME] = _gather_window_times(
            timestamps,
            tf.constant(starts, tf.int64),
            tf.constant(starts + k, tf.int64),
            max_len,
            time_unit,
        ).numpy()
    return EvalExamples(
        users=users.astype(np.int32),
        history=history.astype(np.int32),
        targets=targets,
        features=features,
        known=known,
    )
