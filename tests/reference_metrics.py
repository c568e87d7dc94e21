"""The NumPy reference of the protocol's metrics (docs/protocol.md,
"Metrics"), the literal [U, T, k] broadcast definition the tests compare the
package's TF core (``dismir_tf.retrieval.protocol_metrics``) with."""

import numpy as np

from dismir_tf.types import DEFAULT_KS


def metrics_from_topk(topk, targets, ks=DEFAULT_KS):
    """Per-user Recall, HR and NDCG at each k.

    Args:
      topk: [U, >= max(ks)] recommended items, best first.
      targets: [U, T] target items, 0-padded; repeats count in Recall.
      ks: cut-offs.

    Returns:
      {'recall@k', 'hr@k', 'ndcg@k'} -> [U] float64 arrays.
    """
    topk, targets = np.asarray(topk), np.asarray(targets)
    out = {}
    is_target = targets > 0
    n_targets = np.maximum(is_target.sum(axis=1), 1)
    distinct = np.array([len(set(t[t > 0])) for t in targets])
    for k in ks:
        top = topk[:, :k]
        hit = (targets[:, :, None] == top[:, None, :]).any(axis=2) & is_target
        out[f"recall@{k}"] = hit.sum(axis=1) / n_targets
        out[f"hr@{k}"] = hit.any(axis=1).astype(np.float64)
        rel = ((top[:, :, None] == targets[:, None, :]) & is_target[:, None, :]).any(
            axis=2
        )
        discount = 1.0 / np.log2(np.arange(k) + 2.0)
        dcg = (rel * discount).sum(axis=1)
        idcg = np.array([discount[: min(n, k)].sum() for n in distinct])
        out[f"ndcg@{k}"] = np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1), 0.0)
    return out
