"""Raw interactions -> :class:`SequenceDataset`, exactly as the protocol.

The steps of docs/protocol.md, "Preprocessing and the user split", in order:

1. Sort each user's interactions by timestamp, ascending, with a stable
   sort: ties, and files that record only an order, keep file order.
2. Filter.  By default one pass, as the reference preprocessing
   (ComiRec/REMI ``data.py``) does it: keep items with at least
   ``min_item_count`` interactions over the whole file, then keep users with
   at least ``min_user_count`` of the remaining interactions.  With
   ``kcore=True`` the two filters are repeated until nothing changes, so
   every kept item also has ``min_item_count`` kept interactions.
3. Re-index the kept items 1..N by descending frequency over the kept
   interactions, ties in order of first appearance in the file; 0 is
   padding.
4. Split by user: the kept users in order of first appearance are shuffled
   with ``random.Random(split_seed).shuffle``; the first int(0.8 n) are
   train, the next up to int(0.9 n) valid, the rest test.  This reproduces
   the reference code's split (it seeds the global ``random`` with 1230 and
   shuffles the same first-appearance list), so the same file gives the same
   test users.

Everything is vectorised with NumPy except the id -> code dictionaries, so
a file with millions of interactions takes seconds.
"""

from __future__ import annotations

import random

import numpy as np

from dismir_tf.data.dataset import SequenceDataset
from dismir_tf.data.readers import RawInteractions
from dismir_tf.errors import UserInputError

TRAIN_FRACTION = 0.8
VALID_END_FRACTION = 0.9


def _codes(ids: list[str]) -> tuple[np.ndarray, list[str]]:
    """Dense codes in order of first appearance, and the code -> id table."""
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(x, len(index)) for x in ids),
                        dtype=np.int64, count=len(ids))
    return codes, list(index)


def filter_mask(user_codes: np.ndarray, item_codes: np.ndarray,
                num_users: int, num_items: int, min_item_count: int,
                min_user_count: int, kcore: bool) -> np.ndarray:
    """Which interactions survive the item and user filters.

    Args:
      user_codes, item_codes: [n] int64 dense codes of each interaction.
      num_users, num_items: the number of distinct codes.
      min_item_count: keep items with at least this many interactions.
      min_user_count: keep users with at least this many interactions left
        after the item filter.
      kcore: repeat both filters until a fixed point instead of one pass.

    Returns:
      [n] bool mask of the kept interactions.
    """
    mask = np.ones(len(user_codes), dtype=bool)
    while True:
        # Item counts are taken over the interactions still kept: in the
        # first pass that is the whole file, as in the reference code.
        item_count = np.bincount(item_codes[mask], minlength=num_items)
        new_mask = mask & (item_count >= min_item_count)[item_codes]
        user_count = np.bincount(user_codes[new_mask], minlength=num_users)
        new_mask &= (user_count >= min_user_count)[user_codes]
        changed = not np.array_equal(new_mask, mask)
        mask = new_mask
        if not kcore or not changed:
            return mask


def split_users(num_users: int, split_seed: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference user split of users 0..num_users-1.

    Users are numbered in order of first appearance, so shuffling
    ``range(num_users)`` permutes positions exactly as the reference code's
    shuffle of its first-appearance list of raw ids does (``shuffle`` only
    looks at the length of the list).

    Args:
      num_users: M, the number of kept users.
      split_seed: seed of ``random.Random``.

    Returns:
      (train, valid, test) int32 user indices, in shuffled order.
    """
    order = list(range(num_users))
    random.Random(split_seed).shuffle(order)
    end_train = int(num_users * TRAIN_FRACTION)
    end_valid = int(num_users * VALID_END_FRACTION)
    perm = np.asarray(order, dtype=np.int32)
    return perm[:end_train], perm[end_train:end_valid], perm[end_valid:]


def build_dataset(raw: RawInteractions, name: str, min_item_count: int = 5,
                  min_user_count: int = 5, kcore: bool = False,
                  split_seed: int = 1230) -> SequenceDataset:
    """Preprocesses raw interactions into a :class:`SequenceDataset`.

    Args:
      raw: interactions in file order.
      name: the data set's name (for logs and tables).
      min_item_count: item filter threshold (>= 1).
      min_user_count: user filter threshold (>= 1).
      kcore: iterate the filters to a fixed point (the iterative k-core)
        instead of the reference code's single pass.
      split_seed: seed of the user shuffle (1230 as the reference code).

    Returns:
      The processed data set.

    Raises:
      UserInputError: a threshold is below 1, or every user is filtered
        out.
    """
    if min_item_count < 1 or min_user_count < 1:
        raise UserInputError("min_item_count and min_user_count must be >= 1")
    n = len(raw)
    user_codes, user_table = _codes(raw.users)
    item_codes, item_table = _codes(raw.items)

    # 1. Group by user (codes are in first-appearance order) and sort each
    # user's interactions by time.  Both sorts are stable, so ties and
    # order-only files keep file order.
    if raw.timestamps is not None:
        # lexsort sorts by the last key first: user, then time.  The exact
        # order key when the reader gives one (integer times beyond 2**53,
        # long decimals), else the float seconds.
        key = (raw.time_order if raw.time_order is not None
               else np.asarray(raw.timestamps, np.float64))
        order = np.lexsort((key, user_codes))
    else:
        order = np.argsort(user_codes, kind="stable")
    user_codes = user_codes[order]
    item_codes = item_codes[order]

    # 2. Filter.
    mask = filter_mask(user_codes, item_codes, len(user_table),
                       len(item_table), min_item_count, min_user_count, kcore)
    if not mask.any():
        raise UserInputError(
            f"every user was filtered out ({len(user_table)} users, "
            f"{len(item_table)} items, {n} interactions before filtering; "
            f"min_item_count={min_item_count}, "
            f"min_user_count={min_user_count}"
            f"{', k-core' if kcore else ''}); lower the thresholds or use a "
            f"larger file", path=raw.source)
    kept_users = user_codes[mask]
    kept_items = item_codes[mask]

    # 3. Re-index items by descending kept frequency.  Item codes are in
    # order of first appearance in the file, so a stable sort of the kept
    # codes by descending count breaks ties by first appearance.
    item_count = np.bincount(kept_items, minlength=len(item_table))
    present = np.flatnonzero(item_count)
    by_count = present[np.argsort(-item_count[present], kind="stable")]
    item_index = np.zeros(len(item_table), dtype=np.int32)
    item_index[by_count] = np.arange(1, len(by_count) + 1, dtype=np.int32)

    # Users keep their first-appearance order; the sorted interactions are
    # therefore already grouped in the new user order.
    user_present = np.flatnonzero(
        np.bincount(kept_users, minlength=len(user_table)))
    user_index = np.full(len(user_table), -1, dtype=np.int64)
    user_index[user_present] = np.arange(len(user_present))
    lengths = np.bincount(user_index[kept_users], minlength=len(user_present))
    offsets = np.zeros(len(user_present) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])

    timestamps = None
    if raw.timestamps is not None:
        timestamps = np.asarray(raw.timestamps, np.float64)[order][mask]

    # 4. Split by user.
    train, valid, test = split_users(len(user_present), split_seed)

    item_ids = np.array([""] + [item_table[c] for c in by_count], dtype=str)
    user_ids = np.array([user_table[c] for c in user_present], dtype=str)
    return SequenceDataset(
        name=name,
        item_ids=item_ids,
        user_ids=user_ids,
        offsets=offsets,
        items=item_index[kept_items],
        timestamps=timestamps,
        train_users=train,
        valid_users=valid,
        test_users=test,
    )
