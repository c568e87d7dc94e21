"""The processed data set: re-indexed item sequences and the user split.

A :class:`SequenceDataset` is what every other part of the project reads:
the pipeline samples training examples from it, the evaluator takes the
valid/test users' histories and targets from it, and the export maps its
indices back to raw ids.  It is saved as a plain ``.npz`` (no pickle) so
that loading a cached or user-supplied file can never execute code.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from dismir_tf.io_utils import atomic_write

PAD = 0  # item index 0 is padding and never a candidate.
_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True, eq=False)
class SequenceDataset:
    """Item sequences of all kept users, re-indexed, with the user split.

    Attributes:
      name: A short name used in logs and tables.
      item_ids: [N + 1] str. ``item_ids[i]`` is the raw id of item index i;
        ``item_ids[0]`` is the empty string (padding).
      user_ids: [M] str. Raw user ids, in order of first appearance.
      offsets: [M + 1] int64. User u's sequence is
        ``items[offsets[u]:offsets[u + 1]]``.
      items: [nnz] int32. Item indices in 1..N, each user's in time order.
      timestamps: [nnz] float64 or None when the source has only an order.
      train_users, valid_users, test_users: int32 user indices (into
        ``user_ids``), disjoint, in split order.
    """

    name: str
    item_ids: np.ndarray
    user_ids: np.ndarray
    offsets: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray | None
    train_users: np.ndarray
    valid_users: np.ndarray
    test_users: np.ndarray

    def __post_init__(self) -> None:
        m = len(self.user_ids)
        if self.offsets.shape != (m + 1,):
            raise ValueError(
                f"offsets has shape {self.offsets.shape}, expected ({m + 1},)")
        if int(self.offsets[-1]) != len(self.items):
            raise ValueError("offsets[-1] must equal len(items)")
        if self.timestamps is not None and len(self.timestamps) != len(
                self.items):
            raise ValueError("timestamps and items differ in length")
        if len(self.items) and (self.items.min() < 1
                                or self.items.max() > self.num_items):
            raise ValueError("item indices must lie in 1..N")

    @property
    def num_items(self) -> int:
        """N, the number of real items (index 0 is padding)."""
        return len(self.item_ids) - 1

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_interactions(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> np.ndarray:
        """[M] int64 sequence lengths."""
        return np.diff(self.offsets)

    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user]:self.offsets[user + 1]]

    def split_users(self, split: str) -> np.ndarray:
        """The user indices of ``split`` ('train', 'valid' or 'test')."""
        try:
            return {"train": self.train_users, "valid": self.valid_users,
                    "test": self.test_users}[split]
        except KeyError:
            raise ValueError(
                f"unknown split {split!r}; expected train, valid or test"
            ) from None

    def item_counts(self, users: np.ndarray | None = None) -> np.ndarray:
        """[N + 1] interaction counts per item, over ``users`` (default all)."""
        if users is None:
            flat = self.items
        else:
            flat = np.concatenate([self.sequence(u) for u in users]) if len(
                users) else np.zeros(0, np.int32)
        return np.bincount(flat, minlength=self.num_items + 1)

    def stats(self) -> dict[str, int]:
        return {
            "users": self.num_users,
            "items": self.num_items,
            "interactions": self.num_interactions,
            "train_users": len(self.train_users),
            "valid_users": len(self.valid_users),
            "test_users": len(self.test_users),
        }

    # ---------------------------------------------------------------- I/O
    def save(self, path: str) -> None:
        """Writes the data set to ``path`` (.npz) atomically."""
        arrays = {
            "item_ids": self.item_ids.astype(str),
            "user_ids": self.user_ids.astype(str),
            "offsets": self.offsets.astype(np.int64),
            "items": self.items.astype(np.int32),
            "train_users": self.train_users.astype(np.int32),
            "valid_users": self.valid_users.astype(np.int32),
            "test_users": self.test_users.astype(np.int32),
            "meta": np.array(json.dumps(
                {"name": self.name, "version": _FORMAT_VERSION})),
        }
        if self.timestamps is not None:
            arrays["timestamps"] = self.timestamps.astype(np.float64)

        def write(tmp_path: str) -> None:
            with open(tmp_path, "wb") as f:
                # numpy's stub may map **arrays onto savez's allow_pickle
                # (NumPy >= 2.1); object arrays are never written here.
                np.savez(f, **arrays)  # type: ignore[arg-type]

        atomic_write(path, write)

    @classmethod
    def load(cls, path: str) -> SequenceDataset:
        """Reads a data set written by :meth:`save` (never unpickles)."""
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("version") != _FORMAT_VERSION:
                raise ValueError(f"{path}: unsupported cache version")
            return cls(
                name=meta["name"],
                item_ids=z["item_ids"],
                user_ids=z["user_ids"],
                offsets=z["offsets"],
                items=z["items"],
                timestamps=z["timestamps"] if "timestamps" in z else None,
                train_users=z["train_users"],
                valid_users=z["valid_users"],
                test_users=z["test_users"],
            )

    def item_index(self) -> dict[str, int]:
        """Raw item id -> index."""
        return {str(r): i for i, r in enumerate(self.item_ids) if i != PAD}


def exists(path: str) -> bool:
    return os.path.isfile(path)
