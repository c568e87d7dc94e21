"""Exports a trained model as a SavedModel that TensorFlow Serving serves.

    python export.py --run_dir RUN [--export_dir DIR] [--k 50]
        [--version N]

writes ``DIR/<version>/`` (DIR defaults to RUN/export; the version is by
default one more than the largest version
already there, or 1), the layout TensorFlow Serving's ``--model_base_path``
expects.  The version is built in a hidden temporary directory beside it and
renamed into place, so a server watching DIR never sees half a model.

Requests and responses speak raw item ids: the vocabulary travels inside the
SavedModel as a ``tf.lookup.StaticHashTable`` (raw id -> index) and a string
constant (index -> raw id).  Loading the model needs TensorFlow only: the
signatures are concrete functions traced from the model's TF ops, and the
module saved holds the model's variables, not the Keras model.

Signatures (``B`` requests, ``L`` any history length, ``k`` fixed at export):

* ``serving_default``: ``history`` string [B, L] raw ids, right-padded with
  '' (and, for a model that reads times, PIMIRec, ``history_times``
  float64 [B, L] times in the training file's unit (Unix seconds for the
  shared files), or [B, 0] when the times are unknown: then
  the positions, which for a timestamped run are not what evaluate.py
  used; see ``ServingModule``) -> ``item_ids`` string [B, k], ``scores``
  float32 [B, k].  The same
  retrieval as evaluation (``merge``: max over the interests of m_f . e_i;
  ``fused``: (sum_f a_f m_f) . e_i) over the whole catalogue, the same
  ``tf.math.top_k`` (ties: lower item index first), and the same history
  exclusion if the run was trained with ``exclude_history``.
* ``user_interests``: ``history`` (``history_times``) -> ``interests``
  float32 [B, F, d],
  ``attention`` float32 [B, F] (1/F each when the model has no attention),
  ``fused`` float32 [B, d], ``history_length`` int32 [B] (known items used).
* ``item_embeddings``: no input -> ``item_ids`` string [N], ``embeddings``
  float32 [N, d].  TensorFlow Serving's REST API and ``saved_model_cli run``
  cannot call a signature without inputs, so the same table is also written
  beside the model, in ``assets.extra/`` (which TensorFlow Serving ignores):
  ``items.tsv`` (header ``item_id<TAB>train_count``, then one line per item
  in index order) and ``item_embeddings.npy`` (float32 [N, d], row i is line
  i + 1 of items.tsv).  ``export.json`` there records the export's settings.

History rules (applied inside the SavedModel):

* '' and ids not in the training vocabulary are dropped; the remaining items
  keep their order (they are left-compacted);
* of more than ``max_len`` known items, the last ``max_len`` are used;
* a history with no known item gets the ``k`` items most often interacted
  with by the training users, with their interaction counts as scores.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable

import numpy as np
import tensorflow as tf

import dismir_tf
from dismir_tf import types
from dismir_tf.config import RunConfig
from dismir_tf.data.dataset import SequenceDataset
from dismir_tf.errors import ConfigError
from dismir_tf.layers import MultiInterestBruteForce
from dismir_tf.models import RetrievalModel, time_unit

DEFAULT_K = types.DEFAULT_K
SERVING_DEFAULT = "serving_default"
USER_INTERESTS = "user_interests"
ITEM_EMBEDDINGS = "item_embeddings"
ITEMS_FILE = "items.tsv"
EMBEDDINGS_FILE = "item_embeddings.npy"
METADATA_FILE = "export.json"
EXTRA_DIR = "assets.extra"

Log = Callable[[str], None]
_HISTORY_SPEC = tf.TensorSpec([None, None], tf.string, name="history")
# Models that read the history times (PIMIRec) also take these: Unix
# seconds of each history entry, parallel to ``history``.
_TIMES_SPEC = tf.TensorSpec([None, None], tf.float64, name="history_times")
# Requests are computed in whole blocks of this many rows (padded with empty
# histories, which are then dropped).  CPU matmul kernels round differently
# for small batches and ragged row tails, so the same user could get scores
# that differ in the last bits (and near-tied items in another order) from
# one batch size to another.  With whole blocks of 16 (tested on x86-64 with
# oneDNN), every batch size gives the scores the evaluator computes in its
# batches of 512.
ROW_BLOCK = 16


def _noop(msg: str) -> None:
    del msg


def compact_history(
    indices: tf.Tensor, max_len: int, times: tf.Tensor | None = None
) -> tuple[tf.Tensor, ...]:
    """Drops index 0 entries, keeps the last ``max_len`` of the rest.

    Args:
      indices: [B, L] int32 item indices; 0 marks '' or an unknown id.
      max_len: the model's history length.
      times: optional [B, L] float64 times parallel to ``indices``,
        compacted the same way.

    Returns:
      (history [B, max_len] int32, the known items in order, right-padded
      with 0 — the evaluator's layout; n [B] int32 known items used), and
      with ``times`` also their times [B, max_len] float64 (0 on padding).
    """
    known = indices > 0
    known_int = tf.cast(known, tf.int32)
    total = tf.reduce_sum(known_int, axis=1)  # [B]
    first = tf.maximum(total - max_len, 0)  # dropped
    position = tf.cumsum(known_int, axis=1) - 1 - first[:, None]
    keep = known & (position >= 0)
    rows = tf.broadcast_to(tf.range(tf.shape(indices)[0])[:, None], tf.shape(indices))
    coords = tf.stack(
        [tf.boolean_mask(rows, keep), tf.boolean_mask(position, keep)], axis=1
    )
    shape = tf.stack([tf.shape(indices)[0], max_len])
    history = tf.scatter_nd(coords, tf.boolean_mask(indices, keep), shape)
    if times is None:
        return history, tf.minimum(total, max_len)
    return (
        history,
        tf.minimum(total, max_len),
        tf.scatter_nd(coords, tf.boolean_mask(times, keep), shape),
    )


def relative_times(times: tf.Tensor, history: tf.Tensor, time_unit: float) -> tf.Tensor:
    """The model's history times, exactly as the training and evaluation
    pipeline computes them (``pipeline._gather_window_times``): (t -
    t_first) / time_unit in float64, then float32, 0 on padding.

    Args:
      times: [B, L] float64 seconds of a compacted history.
      history: [B, L] int32, 0 on padding.
      time_unit: seconds per time unit.

    Returns:
      [B, L] float32.
    """
    rel = (times - times[:, :1]) / time_unit
    return tf.cast(tf.where(history > 0, rel, tf.zeros_like(rel)), tf.float32)


class ServingModule(tf.Module):
    """What the SavedModel holds: variables, vocabulary, three functions.

    The Keras model is captured by the traced functions, never tracked
    itself, so nothing Keras-specific is saved.

    Args:
      model: a built RetrievalModel with the weights to export.
      item_ids: [N + 1] raw ids, '' at index 0.
      train_counts: [N + 1] interactions per item over the training users.
      max_len: the history length the model was trained with.
      k: the length of the returned lists.
      exclude_history: remove every item the request carries from the
        ranking (the evaluator removes the user's whole known sequence for
        runs trained with ``exclude_history``: send it to get its lists).
      time_unit: for a model that reads the history times (PIMIRec):
        seconds per time unit; ``serving_default`` and ``user_interests``
        then also take ``history_times`` [B, L] float64 times in the
        training file's unit (the reader keeps it: Unix seconds for the
        shared files; milliseconds for a file in milliseconds),
        parallel to ``history``.  Given with the same shape as ``history``
        the SavedModel computes what evaluate.py computed; given empty
        ([B, 0]: no times known) it falls back to the positions 0, 1, ...,
        as for a data set without timestamps (other lists than evaluate.py
        for a timestamped run).
    """

    def __init__(
        self,
        model: RetrievalModel,
        item_ids: np.ndarray,
        train_counts: np.ndarray,
        max_len: int,
        k: int = DEFAULT_K,
        exclude_history: bool = False,
        time_unit: float | None = None,
    ):
        super().__init__(name="dismir_serving")
        n = len(item_ids) - 1
        if not 1 <= k <= n:
            raise ConfigError(
                f"k must be between 1 and the catalogue size {n}, got {k}"
            )
        self.model_variables = list(model.variables)
        self.vocabulary = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(item_ids[1:]), tf.string),
                tf.range(1, n + 1, dtype=tf.int64),
            ),
            default_value=0,
            name="item_vocabulary",
        )
        raw_ids = tf.constant(list(item_ids), tf.string)
        counts = tf.constant(np.asarray(train_counts[1:], np.float32))
        top = tf.math.top_k(counts, k=k, sorted=True)
        popular_ids = tf.gather(raw_ids, top.indices + 1)  # [k]
        popular_scores = top.values  # [k]
        embeddings = model.item_embedding.embeddings

        def to_history(
            history: tf.Tensor, times: tf.Tensor | None = None
        ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | None, tf.Tensor]:
            """Compacted indices [B', max_len] padded to whole row blocks,
            known items used [B], B, the model's times [B', max_len]
            (None for a model without times), and every item index of the
            request [B', W] (0 for unknown ids and padding)."""
            indices = tf.cast(self.vocabulary.lookup(history), tf.int32)
            rel = None
            if time_unit is None:
                hist, length = compact_history(indices, max_len)
            else:
                tf.debugging.assert_equal(
                    tf.logical_or(
                        tf.equal(tf.shape(times)[1], 0),
                        tf.reduce_all(tf.equal(tf.shape(times), tf.shape(history))),
                    ),
                    True,
                    message="history_times must have the shape of "
                    "history, or no columns (no times: positions)",
                )
                given = tf.shape(times)[1] > 0
                # Empty times: positions, the order-only fallback.
                times = tf.cond(
                    given,
                    lambda: times,
                    lambda: tf.cast(
                        tf.broadcast_to(
                            tf.range(tf.shape(history)[1]), tf.shape(history)
                        ),
                        tf.float64,
                    ),
                )
                hist, length, kept = compact_history(indices, max_len, times)
                rel = tf.cond(
                    given,
                    lambda: relative_times(kept, hist, time_unit),
                    lambda: tf.where(
                        hist > 0,
                        tf.cast(
                            tf.broadcast_to(tf.range(max_len), tf.shape(hist)),
                            tf.float32,
                        ),
                        0.0,
                    ),
                )
            batch = tf.shape(hist)[0]
            rows = tf.maximum(-(-batch // ROW_BLOCK), 1) * ROW_BLOCK
            pad = [[0, rows - batch], [0, 0]]
            # Every known item the request carries, not only the last
            # max_len the model reads: what --exclude_history removes.
            carried = tf.pad(indices, pad)
            return (
                tf.pad(hist, pad),
                length,
                batch,
                None if rel is None else tf.pad(rel, pad),
                carried,
            )

        specs = [_HISTORY_SPEC] + ([] if time_unit is None else [_TIMES_SPEC])

        def features_of(
            hist: tf.Tensor, times: tf.Tensor | None
        ) -> dict[str, tf.Tensor]:
            """The model's features of compacted histories (and times)."""
            if times is None:
                return {types.HISTORY: hist}
            return {types.HISTORY: hist, types.HISTORY_TIME: times}

        # Retrieval through a TFRS index layer over the item table, with
        # the raw ids as identifiers (TFRS's export guide).
        self.index = MultiInterestBruteForce(k=k)
        self.index.index(tf.convert_to_tensor(embeddings)[1:], raw_ids[1:])

        @tf.function(input_signature=specs)
        def serve(history, history_times=None):
            hist, length, batch, times, carried = to_history(history, history_times)
            queries = model.query_vectors(features_of(hist, times))
            scores, ids = self.index(queries, k, carried if exclude_history else None)
            empty = (length == 0)[:, None]
            return {
                "item_ids": tf.where(
                    empty, tf.broadcast_to(popular_ids, [batch, k]), ids[:batch]
                ),
                "scores": tf.where(
                    empty, tf.broadcast_to(popular_scores, [batch, k]), scores[:batch]
                ),
            }

        @tf.function(input_signature=specs)
        def user_interests(history, history_times=None):
            hist, length, batch, times, _ = to_history(history, history_times)
            enc = model.encode(features_of(hist, times), training=False)
            interests = enc.interests[:batch]
            if enc.weights is None:
                f = tf.shape(interests)[1]
                attention = tf.fill(
                    tf.shape(interests)[:2], 1.0 / tf.cast(f, interests.dtype)
                )
            else:
                attention = enc.weights[:batch]
            return {
                "interests": interests,
                "attention": attention,
                "fused": enc.fused()[:batch],
                "history_length": length,
            }

        @tf.function(input_signature=[])
        def item_embeddings():
            return {
                "item_ids": raw_ids[1:],
                "embeddings": tf.convert_to_tensor(embeddings)[1:],
            }

        self.serve = serve
        self.user_interests = user_interests
        self.item_embeddings = item_embeddings

    def signatures(self) -> dict:
        return {
            SERVING_DEFAULT: self.serve.get_concrete_function(),
            USER_INTERESTS: self.user_interests.get_concrete_function(),
            ITEM_EMBEDDINGS: self.item_embeddings.get_concrete_function(),
        }


# ------------------------------------------------------------------ layout
def existing_versions(export_dir: str) -> list[int]:
    """The numbered versions in ``export_dir`` (ascending)."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(
        int(name)
        for name in os.listdir(export_dir)
        if re.fullmatch(r"[0-9]+", name)
        and os.path.isdir(os.path.join(export_dir, name))
    )


def _taken(export_dir: str, number: int) -> str | None:
    """The directory of ``export_dir`` that is version ``number`` whatever
    its zero padding (TF Serving parses version names as integers, so
    ``1`` and ``0000001`` are one version), or None."""
    if not os.path.isdir(export_dir):
        return None
    for name in os.listdir(export_dir):
        if re.fullmatch(r"[0-9]+", name) and int(name) == number:
            return os.path.join(export_dir, name)
    return None


def _check_version(export_dir: str, version: int | None) -> None:
    """Fails early (before the export's work) on a bad --version."""
    if version is None:
        return
    if version < 1:
        raise ConfigError(f"--version must be >= 1, got {version}")
    taken = _taken(export_dir, version)
    if taken is not None:
        raise ConfigError(
            f"{taken} already is version {version} (TF "
            "Serving reads version names as numbers); choose "
            "another --version"
        )


def _items_tsv(item_ids: np.ndarray, counts: np.ndarray) -> str:
    lines = ["item_id\ttrain_count\n"]
    lines += [f"{item_ids[i]}\t{int(counts[i])}\n" for i in range(1, len(item_ids))]
    return "".join(lines)


def _num_interests(module: ServingModule) -> int | None:
    """F, from the traced user_interests (None if it is not static)."""
    spec = module.user_interests.get_concrete_function().structured_outputs
    f = spec["interests"].shape[1]
    return int(f) if f is not None else None


def export_model(
    model: RetrievalModel,
    ds: SequenceDataset,
    config: RunConfig,
    export_dir: str,
    k: int = DEFAULT_K,
    version: int | None = None,
    log: Log = _noop,
    source: str = "",
) -> str:
    """Writes ``export_dir/<version>/`` atomically; returns its path.

    Args:
      model: the model to export (a RetrievalModel with its weights).
      ds: its data set (vocabulary and training counts).
      config: its run configuration (max_len, exclude_history).
      export_dir: TensorFlow Serving's model base path.
      k: list length of ``serving_default``.
      version: the version number; default: one more than the largest one
        in ``export_dir``, or 1.  An existing version is never overwritten.
      log: progress messages.
      source: recorded in export.json (e.g. the run directory).
    """
    _check_version(export_dir, version)
    if not 1 <= k <= ds.num_items:
        raise ConfigError(
            f"--k must be between 1 and the catalogue size {ds.num_items}, got {k}"
        )
    counts = ds.item_counts(ds.train_users)
    module = ServingModule(
        model,
        ds.item_ids,
        counts,
        config.model.max_len,
        k,
        config.train.exclude_history,
        time_unit=time_unit(config.model),
    )
    os.makedirs(export_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=export_dir, prefix=".export-")
    try:
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        extra = os.path.join(tmp, EXTRA_DIR)
        os.makedirs(extra, exist_ok=True)
        emb = model.item_embedding.embeddings.numpy()
        with open(os.path.join(extra, ITEMS_FILE), "w", encoding="utf-8") as f:
            f.write(_items_tsv(ds.item_ids, counts))
        np.save(os.path.join(extra, EMBEDDINGS_FILE), emb[1:])
        metadata = {
            "model": config.model.name,
            "retrieval": (model.retrieval if model.multi_interest else "single"),
            "k": k,
            "max_len": config.model.max_len,
            "num_items": ds.num_items,
            "embedding_dim": int(emb.shape[1]),
            "num_interests": _num_interests(module),
            "exclude_history": config.train.exclude_history,
            "index": "tfrs BruteForce (MultiInterestBruteForce, exact)",
            "history_times": time_unit(config.model) is not None,
            "time_unit_seconds": time_unit(config.model),
            "dataset": ds.name,
            "source": source,
            "dismir_tf_version": dismir_tf.__version__,
            "tensorflow_version": tf.__version__,
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
        }
        with open(os.path.join(extra, METADATA_FILE), "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o755)
        path = _rename_into_place(tmp, export_dir, version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"exported {config.model.name} (top-{k}, {ds.num_items:,} items) to {path}")
    return path


def _rename_into_place(tmp: str, export_dir: str, version: int | None) -> str:
    """Renames ``tmp`` to the next (or the given) version directory."""
    for _ in range(100):
        number = (
            version
            if version is not None
            else (max(existing_versions(export_dir), default=0) + 1)
        )
        final = os.path.join(export_dir, str(number))
        taken = _taken(export_dir, number)
        if taken is not None or os.path.exists(final):
            if version is not None:
                raise ConfigError(
                    f"{taken or final} already is version "
                    f"{number}; choose another --version"
                )
            continue
        try:
            os.rename(tmp, final)
            return final
        except OSError:
            # Another exporter took this number first (rename onto a
            # non-empty directory fails): try the next one.
            if version is not None or not os.path.exists(final):
                raise
    raise ConfigError(f"could not find a free version number in {export_dir}")


def export_run(
    run_dir: str,
    export_dir: str,
    k: int = DEFAULT_K,
    version: int | None = None,
    log: Log = _noop,
) -> str:
    """Exports the best checkpoint of a finished run (see export_model)."""
    from dismir_tf.runs import load_run

    _check_version(export_dir, version)
    config, ds, model = load_run(run_dir, log=log)
    return export_model(
        model,
        ds,
        config,
        export_dir,
        k=k,
        version=version,
        log=log,
        source=os.path.abspath(run_dir),
    )


# --------------------------------------------------------------------- CLI
if __name__ == "__main__":
    # The command lives in dismir_tf/commands/export.py (which imports this
    # module, not the other way round).
    raise SystemExit(
        "the export command is `python export.py --run_dir RUN "
        "...` (or `dismir-export`), with the same flags"
    )
