"""The built-in synthetic data set with planted multi-interest structure.

Items are split into G groups (the planted "true" interests), with a Zipf
popularity skew inside each group.  Every user holds 2 to 4 of the groups as
interests; the sequence dwells in its current interest (each next item stays
in it with ``stay_probability``) and otherwise switches to another of the
user's interests.  The item -> group map is kept, so tests can measure how
well a model's item partition recovers the planted groups.

The log goes through the same preprocessing as a real file (filter,
popularity re-indexing, the reference user split), so the default run
exercises exactly the code path of a real data set.
"""

from __future__ import annotations

import numpy as np

from dismir_tf.config import SyntheticConfig
from dismir_tf.data.dataset import SequenceDataset


def generate_log(cfg: SyntheticConfig) -> tuple[list[str], list[str],
                                                  dict[str, int]]:
    """Generates the raw interaction log.

    Returns:
      (users, items, group_of): parallel lists of raw user and item ids in
      file order (each user's interactions contiguous and in time order),
      and the planted group of every raw item id.
    """
    rng = np.random.RandomState(cfg.seed)
    # Assign items to groups at random (so group is not readable from the id),
    # then give each group its own Zipf popularity over its members.
    item_group = rng.permutation(np.arange(cfg.num_items) % cfg.num_groups)
    members = [np.flatnonzero(item_group == g) for g in range(cfg.num_groups)]
    probs = []
    for m in members:
        rng.shuffle(m)
        w = 1.0 / np.arange(1, len(m) + 1) ** cfg.popularity_exponent
        probs.append(w / w.sum())

    lengths = rng.randint(cfg.min_length, cfg.max_length + 1, cfg.num_users)
    num_int = rng.randint(cfg.min_interests, cfg.max_interests + 1,
                          cfg.num_users)
    users: list[str] = []
    all_groups = []
    for u in range(cfg.num_users):
        interests = rng.choice(cfg.num_groups, num_int[u], replace=False)
        n = lengths[u]
        # Interest trajectory: stay with probability p, else switch to one of
        # the user's other interests.
        stay = rng.rand(n) < cfg.stay_probability
        hop = rng.randint(1, max(len(interests), 2), n)
        current = rng.randint(len(interests))
        idx = np.empty(n, np.int64)
        for t in range(n):
            if t > 0 and not stay[t] and len(interests) > 1:
                # A hop of 1..F-1 positions always lands on another interest.
                current = (current + hop[t]) % len(interests)
            idx[t] = current
        all_groups.append(interests[idx])
        users.extend([f"u{u}"] * n)
    seq_groups = np.concatenate(all_groups)
    # Draw every item of a group at once from the group's popularity CDF.
    item_idx = np.empty(len(seq_groups), np.int64)
    uniform = rng.rand(len(seq_groups))
    for g in range(cfg.num_groups):
        at = np.flatnonzero(seq_groups == g)
        cdf = np.cumsum(probs[g])
        pick = np.minimum(np.searchsorted(cdf, uniform[at], side="right"),
                          len(cdf) - 1)
        item_idx[at] = members[g][pick]
    items = [f"i{i}" for i in item_idx]
    group_of = {f"i{i}": int(item_group[i]) for i in range(cfg.num_items)}
    return users, items, group_of


def generate(cfg: SyntheticConfig,
             split_seed: int = 1230) -> tuple[SequenceDataset, np.ndarray]:
    """Builds the synthetic :class:`SequenceDataset`.

    Returns:
      (dataset, groups) where ``groups`` is [N + 1] int64, the planted group
      of each item index (-1 for padding).
    """
    from dismir_tf.data.preprocess import build_dataset
    from dismir_tf.data.readers import RawInteractions

    users, items, group_of = generate_log(cfg)
    raw = RawInteractions(users=users, items=items, timestamps=None,
                          source="synthetic")
    ds = build_dataset(raw, name="synthetic", split_seed=split_seed)
    groups = np.array([-1] + [group_of[str(r)] for r in ds.item_ids[1:]],
                      np.int64)
    return ds, groups
