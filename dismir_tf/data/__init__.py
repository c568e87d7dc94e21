"""Interaction data: readers, preprocessing, named data sets and caching.

The one entry point the rest of the project needs is :func:`load_dataset`:
it turns a :class:`~dismir_tf.config.DataConfig` into a
:class:`SequenceDataset`, reading, preprocessing and caching as needed::

    from dismir_tf.config import DataConfig
    from dismir_tf.data import load_dataset
    ds = load_dataset(DataConfig(dataset_file="checkins.tsv.gz",
                                 dataset_format="user_item_time_tsv",
                                 dataset=""), log=print)

Nothing here imports TensorFlow, and importing the package does no I/O.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import zipfile
from collections.abc import Callable

import numpy as np

from dismir_tf.config import DataConfig
from dismir_tf.data import registry
from dismir_tf.data.dataset import SequenceDataset
from dismir_tf.data.download import check_gzip_stream, fetch
from dismir_tf.data.preprocess import build_dataset
from dismir_tf.data.readers import (
    FORMATS,
    RawInteractions,
    RecboleFields,
    check_format,
    check_readable,
    read_interactions,
)
from dismir_tf.errors import UserInputError
from dismir_tf.io_utils import atomic_write_json, read_json

__all__ = [
    "FORMATS",
    "RawInteractions",
    "RecboleFields",
    "SequenceDataset",
    "build_dataset",
    "cache_path",
    "dataset_fingerprint",
    "ensure_raw",
    "load_dataset",
    "read_interactions",
]

Log = Callable[[str], None]

# Part of every cache key: bump it whenever build_dataset's output for the
# same input changes, so stale caches are never read.
# 2: exact time order (integer / decimal times); 3: times in seconds
# whatever the file's unit (epoch milli/micro/nanoseconds noticed).
PREPROCESS_VERSION = 3


def _quiet(message: str) -> None:
    del message


def _options(cfg: DataConfig) -> dict[str, object]:
    return {
        "min_item_count": cfg.min_item_count,
        "min_user_count": cfg.min_user_count,
        "kcore": cfg.kcore,
        "split_seed": cfg.split_seed,
        "preprocess_version": PREPROCESS_VERSION,
        **{f"recbole_{k}_field": v for k, v in cfg.recbole_fields.items()
           if v is not None},
        **({"time_unit": cfg.time_unit} if cfg.time_unit != "auto" else {}),
    }


def _key(parts: dict[str, object]) -> str:
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _local_name(path: str) -> str:
    """A directory-safe name from a file name: 'a b.tsv.gz' -> 'a_b'."""
    stem = os.path.basename(path).split(".")[0]
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_") or "dataset"


def _file_identity(path: str) -> dict[str, object]:
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size,
            "mtime_ns": st.st_mtime_ns}


def cache_path(cfg: DataConfig) -> str:
    """Where the processed cache of ``cfg`` lives.

    Named data set: ``<data_dir>/<name>/processed-<key>.npz`` with the key
    hashing the name and the preprocessing options.  Local file:
    ``<data_dir>/<file stem>/processed-<key>.npz`` with the key hashing the
    absolute path, size, modification time and format as well, so an edited
    file or a changed option rebuilds.

    Args:
      cfg: the data configuration (not the synthetic data set).

    Returns:
      The cache path.

    Raises:
      UserInputError: the local file does not exist.
    """
    if cfg.dataset:
        parts: dict[str, object] = {"dataset": cfg.dataset, **_options(cfg)}
        directory = registry.dataset_dir(cfg.data_dir, cfg.dataset)
    else:
        check_readable(cfg.dataset_file)
        parts = {**_file_identity(cfg.dataset_file),
                 "format": cfg.dataset_format, **_options(cfg)}
        directory = os.path.join(cfg.data_dir,
                                 _local_name(cfg.dataset_file))
    return os.path.join(directory, f"processed-{_key(parts)}.npz")


def _sidecar(cache: str) -> str:
    return cache[:-len(".npz")] + ".json"


def _counts(ds: SequenceDataset) -> str:
    s = ds.stats()
    return (f"{s['users']:,} users ({s['train_users']:,} train, "
            f"{s['valid_users']:,} valid, {s['test_users']:,} test), "
            f"{s['items']:,} items, {s['interactions']:,} interactions")


def _try_load(cache: str, raw_path: str | None, say: Log
              ) -> SequenceDataset | None:
    """The cached data set, or None when absent, unreadable or stale."""
    if not os.path.isfile(cache):
        return None
    if raw_path is not None:
        # A named data set's key cannot include its raw file (the cache must
        # load even after the raw file is deleted), so the sidecar records
        # which file it was built from, and a replaced file rebuilds.  The
        # sidecar is written after the cache: a cache without one is what
        # a kill between the two writes leaves, and is rebuilt too.
        if not os.path.isfile(_sidecar(cache)):
            say(f"data: {cache} has no {os.path.basename(_sidecar(cache))}"
                f"; rebuilding")
            return None
        try:
            built_from = read_json(_sidecar(cache)).get("source", {})
        except (OSError, ValueError):
            built_from = {}
        now = _file_identity(raw_path)
        if any(built_from.get(k) != now[k]
               for k in ("path", "size", "mtime_ns")):
            say(f"data: {raw_path} changed since {cache} was built; "
                f"rebuilding")
            return None
    try:
        ds = SequenceDataset.load(cache)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        say(f"data: cannot read cache {cache} ({e}); rebuilding")
        return None
    say(f"data: loaded {cache}: {_counts(ds)}")
    try:
        notes = read_json(_sidecar(cache)).get("notes", [])
    except (OSError, ValueError):
        notes = []
    for note in notes:
        say(f"data: note: {note}")
    return ds


def ensure_raw(name: str, data_dir: str, log: Log | None = None,
               progress: bool = True) -> tuple[str, str]:
    """Makes sure the raw file of named data set ``name`` is on disk.

    Args:
      name: a named data set with a raw file (not 'synthetic').
      data_dir: the data directory.
      log: progress messages.
      progress: show a download progress bar on stderr.

    Returns:
      (path, format) of the raw file.

    Raises:
      UserInputError: unknown name, or the file is missing and cannot be
        downloaded (no automatic download, or the download failed); the
        message says what to fetch and where to put it.
    """
    say = log or _quiet
    spec = registry.get(name)
    if spec.synthetic:
        raise UserInputError(f"{name} is generated, it has no raw file")
    found = registry.find_raw(spec, data_dir)
    if found is not None:
        return found[0], found[1].fmt
    directory = registry.raw_dir(data_dir, name)
    if not spec.downloadable:
        raise UserInputError(
            f"the raw file of {name} is not in {os.path.abspath(directory)}"
            f". {registry.manual_instructions(spec, data_dir)}")
    source = spec.sources[0]
    dest = os.path.join(directory, source.filename)
    say(f"data: downloading {source.url} to {dest}")
    fetch(source.url, dest, expected_sha256=spec.expected_sha256,
          expected_size=spec.expected_size, progress=progress,
          check=check_gzip_stream if source.gzip else None)
    say(f"data: downloaded and verified {dest} "
        f"({os.path.getsize(dest) / 1e6:,.1f} MB)")
    return dest, source.fmt


def _check_cache_dir(cache: str) -> None:
    """Fails before reading anything if the cache cannot be written."""
    directory = os.path.abspath(os.path.dirname(cache))
    while not os.path.exists(directory):
        directory = os.path.dirname(directory)
    if not os.path.isdir(directory) or not os.access(directory,
                                                     os.W_OK | os.X_OK):
        raise UserInputError(
            f"not a writable directory, so the processed cache {cache} "
            f"cannot be written (check --data_dir)", path=directory)


def _build(path: str, fmt: str, name: str, cfg: DataConfig, say: Log
           ) -> tuple[SequenceDataset, tuple[str, ...]]:
    """The data set of ``path`` and the reader's notes (which order is used
    without times, a format that seems not to fit), which are printed and
    kept in the cache's sidecar to be printed again on every load."""
    say(f"data: reading {path} ({fmt})")
    start = time.monotonic()
    raw = read_interactions(path, fmt,
                            RecboleFields(**cfg.recbole_fields),
                            time_unit=cfg.time_unit)
    say(f"data: read {len(raw):,} interactions "
        f"({len(set(raw.users)):,} users, {len(set(raw.items)):,} items) "
        f"in {time.monotonic() - start:.1f} s")
    for note in raw.notes:
        say(f"data: note: {note}")
    start = time.monotonic()
    ds = build_dataset(raw, name=name, min_item_count=cfg.min_item_count,
                       min_user_count=cfg.min_user_count, kcore=cfg.kcore,
                       split_seed=cfg.split_seed)
    say(f"data: preprocessed in {time.monotonic() - start:.1f} s: "
        f"{_counts(ds)}")
    return ds, raw.notes


def _save(ds: SequenceDataset, cache: str, raw_path: str, fmt: str,
          cfg: DataConfig, say: Log, notes: tuple[str, ...] = ()) -> None:
    ds.save(cache)
    atomic_write_json(_sidecar(cache), {
        "notes": list(notes),
        "source": {**_file_identity(raw_path), "format": fmt},
        "options": _options(cfg),
        "stats": ds.stats(),
        "fingerprint": dataset_fingerprint(ds),
    })
    say(f"data: saved {cache}")


def load_dataset(cfg: DataConfig, log: Log | None = None) -> SequenceDataset:
    """The processed data set described by ``cfg``.

    'synthetic' is generated every time.  A named data set is loaded from
    its processed cache when there is one; otherwise its raw file is found
    in (or downloaded to) ``<data_dir>/<name>/raw/``, read, preprocessed
    and cached.  A local file (``dataset_file`` + ``dataset_format``) is
    cached under ``<data_dir>/<file stem>/`` with a key that changes when
    the file or an option does.

    Args:
      cfg: the data configuration.
      log: called with one line per stage; None for silence.

    Returns:
      The data set.

    Raises:
      UserInputError: unknown data set or format, missing file that cannot
        be downloaded, a file that does not parse (DataFormatError), or
        preprocessing that leaves no user.
    """
    say = log or _quiet
    if cfg.dataset == "synthetic":
        # Imported here: the generator is only needed for this data set.
        from dismir_tf.data import synthetic
        say("data: generating the synthetic data set")
        generated, _ = synthetic.generate(cfg.synthetic,
                                          split_seed=cfg.split_seed)
        say(f"data: synthetic: {_counts(generated)}")
        return generated

    if cfg.dataset:
        spec = registry.get(cfg.dataset)
        cache = cache_path(cfg)
        found = registry.find_raw(spec, cfg.data_dir)
        cached = _try_load(cache, found[0] if found else None, say)
        if cached is not None:
            return cached
        _check_cache_dir(cache)
        path, fmt = ensure_raw(cfg.dataset, cfg.data_dir, log=say)
        ds, notes = _build(path, fmt, cfg.dataset, cfg, say)
        default = (cfg.min_item_count, cfg.min_user_count, cfg.kcore,
                   cfg.split_seed) == (5, 5, False, 1230)
        warning = registry.count_mismatch(spec, ds.stats()) if default \
            else None
        if warning:
            say(f"data: {warning}")
        _save(ds, cache, path, fmt, cfg, say, notes)
        return ds

    check_format(cfg.dataset_format)
    cache = cache_path(cfg)
    cached = _try_load(cache, None, say)
    if cached is not None:
        return cached
    _check_cache_dir(cache)
    ds, notes = _build(cfg.dataset_file, cfg.dataset_format,
                       cfg.display_name, cfg, say)
    _save(ds, cache, cfg.dataset_file, cfg.dataset_format, cfg, say, notes)
    return ds


def dataset_fingerprint(ds: SequenceDataset) -> str:
    """A SHA-256 over the sequences and the split of ``ds``.

    Runs store it so that resuming or evaluating against a data set that
    has changed (other file, other options) is detected.  It covers the item
    indices, the offsets and the three user lists, in fixed little-endian
    dtypes, each prefixed by its name and length.

    Args:
      ds: the data set.

    Returns:
      64 hex digits.
    """
    h = hashlib.sha256()
    for label, values, dtype in (("items", ds.items, "<i4"),
                                 ("offsets", ds.offsets, "<i8"),
                                 ("train", ds.train_users, "<i4"),
                                 ("valid", ds.valid_users, "<i4"),
                                 ("test", ds.test_users, "<i4")):
        a = np.ascontiguousarray(values, dtype=dtype)
        h.update(f"{label}:{a.size};".encode("ascii"))
        h.update(a.tobytes())
    return h.hexdigest()
