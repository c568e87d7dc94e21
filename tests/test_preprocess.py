"""Tests of dismir_tf.data.preprocess against docs/protocol.md,
"Preprocessing and the user split"."""

from __future__ import annotations

import collections
import gzip
import random
from pathlib import Path

import numpy as np
import pytest

from dismir_tf.data.preprocess import build_dataset, split_users
from dismir_tf.data.readers import RawInteractions, read_interactions
from dismir_tf.errors import UserInputError
from tests.helpers import shared_file


def raw_from(rows: list[tuple], timed: bool = True) -> RawInteractions:
    return RawInteractions(
        users=[r[0] for r in rows],
        items=[r[1] for r in rows],
        timestamps=np.array([r[2] for r in rows], np.float64) if timed else None,
        source="hand-made",
    )


def sequences(ds) -> dict[str, list[str]]:
    """Raw user id -> raw item ids of its sequence."""
    return {
        str(ds.user_ids[u]): [str(ds.item_ids[i]) for i in ds.sequence(u)]
        for u in range(ds.num_users)
    }


# The hand-made log (user, item, time), in file order.  With thresholds 2:
# item counts over the file are A 2, B 2, C 3, D 2, E 1, so E goes; then
# alice 3, bob 3, carol 2, dave 1 (D), erin 0 remain, so dave and erin go.
# The one pass keeps D although only carol's D is left (the reference does
# the same); the k-core then drops D, hence carol, and stops.
HAND_MADE = [
    ("alice", "B", 30),
    ("bob", "A", 10),
    ("alice", "A", 10),
    ("carol", "C", 5),
    ("alice", "C", 20),
    ("bob", "B", 11),
    ("dave", "D", 1),
    ("bob", "C", 11),  # same time as bob's B two lines up: file order wins
    ("carol", "D", 7),
    ("erin", "E", 3),
]


def test_one_pass_filter_reindex_and_sort():
    ds = build_dataset(raw_from(HAND_MADE), "hand", min_item_count=2, min_user_count=2)
    assert list(ds.user_ids) == ["alice", "bob", "carol"]  # first appearance
    # Kept counts: C 3, A 2, B 2, D 1.  A and B tie; B comes first in the
    # file (line 1), although A is earlier in time: ties follow the file.
    assert list(ds.item_ids) == ["", "C", "B", "A", "D"]
    assert sequences(ds) == {
        "alice": ["A", "C", "B"],
        "bob": ["A", "B", "C"],
        "carol": ["C", "D"],
    }
    np.testing.assert_array_equal(ds.timestamps, [10, 20, 30, 10, 11, 11, 5, 7])
    np.testing.assert_array_equal(ds.offsets, [0, 3, 6, 8])
    assert ds.items.dtype == np.int32
    assert ds.stats()["interactions"] == 8


def test_kcore_iterates_to_a_fixed_point():
    ds = build_dataset(
        raw_from(HAND_MADE), "hand", min_item_count=2, min_user_count=2, kcore=True
    )
    assert list(ds.user_ids) == ["alice", "bob"]
    # A, B, C have 2 kept interactions each: first appearance B, A, C.
    assert list(ds.item_ids) == ["", "B", "A", "C"]
    assert sequences(ds) == {"alice": ["A", "C", "B"], "bob": ["A", "B", "C"]}
    counts = ds.item_counts()[1:]
    assert counts.min() >= 2 and ds.lengths.min() >= 2


def test_order_only_input_keeps_file_order_and_groups_users():
    rows = [
        ("u2", "x"),
        ("u1", "y"),
        ("u2", "y"),
        ("u1", "x"),
        ("u2", "z"),
        ("u1", "z"),
    ]
    raw = RawInteractions(
        users=[r[0] for r in rows],
        items=[r[1] for r in rows],
        timestamps=None,
        source="order-only",
    )
    ds = build_dataset(raw, "o", min_item_count=1, min_user_count=1)
    assert ds.timestamps is None
    assert list(ds.user_ids) == ["u2", "u1"]
    assert sequences(ds) == {"u2": ["x", "y", "z"], "u1": ["y", "x", "z"]}
    # All counts tie at 2: first appearance x, y, z.
    assert list(ds.item_ids) == ["", "x", "y", "z"]


def test_every_user_filtered_out():
    raw = raw_from([("a", "i", 1), ("b", "j", 2)])
    raw = RawInteractions(
        users=raw.users,
        items=raw.items,
        timestamps=raw.timestamps,
        source="/tmp/log.tsv",
    )
    with pytest.raises(UserInputError) as excinfo:
        build_dataset(raw, "tiny")
    assert "every user was filtered out" in str(excinfo.value)
    assert "/tmp/log.tsv" in str(excinfo.value)


def test_thresholds_below_one_are_rejected():
    with pytest.raises(UserInputError):
        build_dataset(raw_from(HAND_MADE), "hand", min_item_count=0)


def _population(num_users: int, seed: int) -> list[tuple]:
    """Users with 3..9 interactions over 4 items, interleaved in the file."""
    rng = random.Random(seed)
    rows = []
    for u in range(num_users):
        for _ in range(rng.randint(3, 9)):
            rows.append((f"user{u:03d}", f"item{rng.randint(0, 3)}", rng.random()))
    rng.shuffle(rows)  # users' rows are not contiguous in the file
    return rows


@pytest.mark.parametrize("split_seed", [1230, 0, 7])
def test_split_reproduces_the_reference_shuffle(split_seed):
    rows = _population(41, seed=3)
    ds = build_dataset(raw_from(rows), "pop", split_seed=split_seed)
    # Independently: users with >= 5 interactions (every item is frequent),
    # in order of first appearance, shuffled by random.Random(seed).
    counts = collections.Counter(r[0] for r in rows)
    first_seen = list(dict.fromkeys(r[0] for r in rows))
    kept = [u for u in first_seen if counts[u] >= 5]
    assert list(ds.user_ids) == kept
    random.Random(split_seed).shuffle(kept)
    n = len(kept)
    assert list(ds.user_ids[ds.train_users]) == kept[: int(0.8 * n)]
    assert list(ds.user_ids[ds.valid_users]) == kept[int(0.8 * n) : int(0.9 * n)]
    assert list(ds.user_ids[ds.test_users]) == kept[int(0.9 * n) :]


@pytest.mark.parametrize("n", [1, 2, 5, 9, 10, 11, 19, 100])
def test_split_sizes(n):
    train, valid, test = split_users(n, 1230)
    assert (len(train), len(valid), len(test)) == (
        int(n * 0.8),
        int(n * 0.9) - int(n * 0.8),
        n - int(n * 0.9),
    )
    assert sorted(np.concatenate([train, valid, test]).tolist()) == list(range(n))
    assert train.dtype == np.int32


# ------------------------------------------------------- the shared files
def _one_pass(rows: list[tuple[str, str]], k: int = 5) -> tuple[int, int, int]:
    """A plain-Python recount of the one-pass filter: users, items, inters."""
    item_count = collections.Counter(i for _, i in rows)
    per_user = collections.defaultdict(int)
    for u, i in rows:
        if item_count[i] >= k:
            per_user[u] += 1
    users = {u for u, c in per_user.items() if c >= k}
    kept = [(u, i) for u, i in rows if u in users and item_count[i] >= k]
    return len(users), len({i for _, i in kept}), len(kept)


def _read_rows(path: Path, skip_header: bool = False) -> list[list[str]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()[int(skip_header) :]
    return [line.split() for line in lines if line]


def test_shared_gowalla_lbsn_counts_split_and_order():
    path = shared_file("gowalla-lbsn/gowalla_lbsn1000_checkins.tsv.gz")
    ds = build_dataset(
        read_interactions(str(path), "user_item_time_tsv"), "gowalla-lbsn"
    )
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (997, 8_254, 123_022)
    rows = _read_rows(path)
    assert _one_pass([(r[0], r[1]) for r in rows]) == (997, 8_254, 123_022)
    # The file is newest first; every processed sequence is ascending.
    for u in range(0, ds.num_users, 50):
        t = ds.timestamps[ds.offsets[u] : ds.offsets[u + 1]]
        assert np.all(np.diff(t) >= 0)
    # The reference split: kept users in order of first appearance,
    # random.Random(1230).shuffle, 80/10/10.
    item_count = collections.Counter(r[1] for r in rows)
    per_user = collections.Counter(r[0] for r in rows if item_count[r[1]] >= 5)
    kept = [u for u in dict.fromkeys(r[0] for r in rows) if per_user[u] >= 5]
    random.Random(1230).shuffle(kept)
    assert list(ds.user_ids[ds.test_users]) == kept[int(0.9 * 997) :]
    assert list(ds.user_ids[ds.train_users]) == kept[: int(0.8 * 997)]
    assert (len(ds.train_users), len(ds.valid_users), len(ds.test_users)) == (
        797,
        100,
        100,
    )


def test_shared_gowalla_lbsn_kcore_is_a_core():
    path = shared_file("gowalla-lbsn/gowalla_lbsn1000_checkins.tsv.gz")
    ds = build_dataset(
        read_interactions(str(path), "user_item_time_tsv"), "gowalla-lbsn", kcore=True
    )
    assert ds.item_counts()[1:].min() >= 5
    assert ds.lengths.min() >= 5
    assert ds.num_interactions <= 123_022


def test_shared_ml100k_counts():
    path = shared_file("ml-100k/ml-100k.inter.gz")
    ds = build_dataset(read_interactions(str(path), "recbole_inter"), "ml-100k")
    rows = _read_rows(path, skip_header=True)
    expected = _one_pass([(r[0], r[1]) for r in rows])
    assert expected == (943, 1_349, 99_287)
    assert (ds.num_users, ds.num_items, ds.num_interactions) == expected


def test_shared_beauty_counts():
    path = shared_file("beauty/Beauty.txt.gz")
    ds = build_dataset(read_interactions(str(path), "seq_lines"), "beauty")
    rows = _read_rows(path)
    expected = _one_pass([(r[0], i) for r in rows for i in r[1:]])
    # Already a 5-core: nothing is filtered.
    assert expected == (22_363, 12_101, 198_502)
    assert (ds.num_users, ds.num_items, ds.num_interactions) == expected
    # Order-only file: each sequence is the line's items, in order.
    first = rows[0]
    assert [str(ds.item_ids[i]) for i in ds.sequence(0)] == first[1:]


def test_shared_video_games_counts():
    path = shared_file("video-games/Video.txt.gz")
    ds = build_dataset(read_interactions(str(path), "user_item_lines"), "video-games")
    rows = _read_rows(path)
    expected = _one_pass([(r[0], r[1]) for r in rows])
    assert expected == (25_253, 12_109, 240_745)
    assert (ds.num_users, ds.num_items, ds.num_interactions) == expected
