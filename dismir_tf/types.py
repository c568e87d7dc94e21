"""Names shared by the pipeline, the models, the evaluator and the export."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Keys of a training batch (all tensors have the per-example batch as their
# first dimension, so tf.distribute can split every one of them).
HISTORY = "history"  # [B, L] int32, right-padded with 0
HISTORY_MASK = "history_mask"  # [B, L] float32, 1 on real items
TARGET = "target"  # [B] int32
SEED = "seed"  # [B, 2] int64, the step's RNG seed
PARTITION_ANCHOR = "partition_anchor"  # [B, A] int32
PARTITION_POSITIVE = "partition_positive"  # [B, A] int32
PARTITION_MASK = "partition_mask"  # [B, A] float32
# Only for models that list it in ``input_features`` (PIMIRec): the time
# of each history item since the window's first item, in the model's time
# units (timestamps / time_unit), or its position in the window (0, 1, ...)
# when the data set has only an order; 0 on padding.
HISTORY_TIME = "history_time"  # [B, L] float32
# Evaluation batches (``model.evaluate`` with tfrs_metrics.ProtocolTopK):
# every target of the user, 0-padded.
TARGETS = "targets"  # [B, T] int32
# Evaluation only: each user's whole known sequence (the first 80%, of
# which HISTORY is the last max_len items), removed from the ranking with
# --exclude_history.
KNOWN_ITEMS = "known_items"  # [B, K] int32, right-padded with 0

# The dtype of each model input feature (``RetrievalModel.input_features``):
# what the evaluator's traced query function, the TFRS evaluation batches
# and a model's build take.
FEATURE_DTYPES = {HISTORY: "int32", HISTORY_TIME: "float32"}

# Retrieval readouts.
MERGE = "merge"
FUSED = "fused"

# The protocol's cut-offs N of Recall@N, HR@N and NDCG@N.
DEFAULT_KS = (20, 50)
# Items a served request returns by default (export.py, commands/export.py).
DEFAULT_K = 50


def as_features(inputs: Any) -> Mapping[str, Any]:
    """A model's input features: ``inputs`` itself when it is a mapping
    ({HISTORY: [B, L], ...}), else {HISTORY: inputs} (a bare history)."""
    if isinstance(inputs, Mapping):
        return inputs
    return {HISTORY: inputs}
