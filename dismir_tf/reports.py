"""Outputs of a finished run in raw ids: metrics, top-k dumps, partitions."""

from __future__ import annotations

import numpy as np

from dismir_tf import pipeline
from dismir_tf.config import RunConfig
from dismir_tf.data.dataset import SequenceDataset
from dismir_tf.io_utils import atomic_write_text
from dismir_tf.models import RetrievalModel, time_unit

TOPK_DUMP_LENGTH = 50


def evaluate_split(config: RunConfig, ds: SequenceDataset,
                   model: RetrievalModel, split: str,
                   dump_topk: str | None = None) -> dict[str, float]:
    """Metrics of ``split``; optionally writes each user's top-50.

    The dump has one line per user, in split order:
    ``user_raw_id<TAB>top-50 raw item ids<TAB>target raw item ids``.
    """
    from dismir_tf.training import evaluate_model

    # With the history times for a model that takes them (PIMIRec), as in
    # training's own evaluation.
    examples = pipeline.eval_examples(ds, split, config.model.max_len,
                                      time_unit(config.model))
    result = evaluate_model(model, examples, config,
                            keep_topk=dump_topk is not None)
    if dump_topk is not None:
        lines = []
        for row, user in enumerate(examples.users):
            top = " ".join(ds.item_ids[result.topk[row, :TOPK_DUMP_LENGTH]])
            targets = examples.targets[row]
            tgt = " ".join(ds.item_ids[targets[targets > 0]])
            lines.append(f"{ds.user_ids[user]}\t{top}\t{tgt}\n")
        atomic_write_text(dump_topk, "".join(lines))
    return result.metrics


def dump_partition(ds: SequenceDataset, model: RetrievalModel,
                   path: str) -> None:
    """``item_raw_id<TAB>argmax_k w_ik<TAB>w_i1 ... w_iK`` for every item."""
    weights = model.item_embedding.embeddings.numpy()[1:]
    groups = np.argmax(weights, axis=1)
    lines = [
        f"{ds.item_ids[i + 1]}\t{groups[i]}\t"
        + " ".join(f"{w:.6g}" for w in weights[i]) + "\n"
        for i in range(len(weights))
    ]
    atomic_write_text(path, "".join(lines))
