"""Outputs of a finished run in raw ids: metrics, top-k dumps, partitions.

Raw ids can contain spaces, quotes and any printable character (the readers
refuse only control characters, ``readers.UNSAFE_ID_CHARACTERS``), so the
top-k dump is JSON lines and the partition dump puts the id alone in the
first tab-separated field: both give back every id exactly
(``read_topk_dump``, ``read_partition_dump``).
"""

from __future__ import annotations

import json

import numpy as np

from dismir_tf import pipeline
from dismir_tf.config import RunConfig
from dismir_tf.data.dataset import SequenceDataset
from dismir_tf.io_utils import atomic_write_text
from dismir_tf.models import RetrievalModel, time_unit

TOPK_DUMP_LENGTH = 50


def evaluate_split(
    config: RunConfig,
    ds: SequenceDataset,
    model: RetrievalModel,
    split: str,
    dump_topk: str | None = None,
) -> dict[str, float]:
    """Metrics of ``split``; optionally writes each user's top-50.

    The dump is JSON lines, one object per user in split order:
    ``{"user": raw id, "top50": [50 raw item ids, best first], "targets":
    [raw item ids]}`` (read it with :func:`read_topk_dump`).
    """
    from dismir_tf.evaluation import evaluate_model

    # With the history times for a model that takes them (PIMIRec), as in
    # training's own evaluation.
    examples = pipeline.eval_examples(
        ds, split, config.model.max_len, time_unit(config.model)
    )
    result = evaluate_model(model, examples, config, keep_topk=dump_topk is not None)
    if dump_topk is not None and result.topk is not None:
        lines = []
        for row, user in enumerate(examples.users):
            targets = examples.targets[row]
            lines.append(
                json.dumps(
                    {
                        "user": str(ds.user_ids[user]),
                        "top50": ds.item_ids[
                            result.topk[row, :TOPK_DUMP_LENGTH]
                        ].tolist(),
                        "targets": ds.item_ids[targets[targets > 0]].tolist(),
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
        atomic_write_text(dump_topk, "".join(lines))
    return result.metrics


def read_topk_dump(path: str) -> list[dict]:
    """The records of a ``--dump_topk`` file: dicts with ``user`` (str),
    ``top50`` (list of str) and ``targets`` (list of str)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def dump_partition(ds: SequenceDataset, model: RetrievalModel, path: str) -> None:
    """``item_raw_id<TAB>argmax_k w_ik<TAB>w_i1 ... w_iK`` for every item.

    The argmax k is 0-based (0 .. K-1, K = d); the weights are separated by
    spaces.  Read it with :func:`read_partition_dump`."""
    weights = model.item_embedding.embeddings.numpy()[1:]
    groups = np.argmax(weights, axis=1)
    lines = [
        f"{ds.item_ids[i + 1]}\t{groups[i]}\t"
        + " ".join(f"{w:.6g}" for w in weights[i])
        + "\n"
        for i in range(len(weights))
    ]
    atomic_write_text(path, "".join(lines))


def read_partition_dump(path: str) -> list[tuple[str, int, np.ndarray]]:
    """The rows of a ``--dump_partition`` file: (raw item id, 0-based argmax
    group, weights [K] float64)."""
    rows = []
    with open(path, encoding="utf-8", newline="\n") as f:
        for line in f:
            item, group, weights = line.rstrip("\n").split("\t")
            rows.append((item, int(group), np.array(weights.split(), np.float64)))
    return rows
