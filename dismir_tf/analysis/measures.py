"""Measures of disentanglement: partitions vs planted groups, interests.

* :func:`partition_groups`: the item partition read off the partition
  weights, argmax_k w_ik (section 4.1: e_i = w_i).
* :func:`nmi` and :func:`purity`: agreement of two labelings of the items
  (e.g. the partition vs the synthetic set's planted groups).
* :func:`interest_similarity`: mean pairwise cosine similarity of each
  user's F interest vectors (1 means the interests collapsed into one).
* :func:`group_recovery`: how well partition weights recover planted
  groups (the README's synthetic table and tests/test_disentanglement.py).
"""

from __future__ import annotations

import numpy as np


def partition_groups(weights: np.ndarray) -> np.ndarray:
    """[N, K] partition weights -> [N] group = argmax_k w_ik."""
    return np.argmax(weights, axis=1)


def _contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1), np.float64)
    np.add.at(table, (ai, bi), 1.0)
    return table


def nmi(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised mutual information (arithmetic mean normalisation)."""
    table = _contingency(np.asarray(a), np.asarray(b))
    n = table.sum()
    p = table / n
    pa, pb = p.sum(1), p.sum(0)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])).sum())
    ha = -float((pa[pa > 0] * np.log(pa[pa > 0])).sum())
    hb = -float((pb[pb > 0] * np.log(pb[pb > 0])).sum())
    if ha + hb == 0:
        return 1.0
    return 2.0 * mi / (ha + hb)


def purity(pred: np.ndarray, true: np.ndarray) -> float:
    """Share of items whose predicted group's majority true label is theirs."""
    table = _contingency(np.asarray(pred), np.asarray(true))
    return float(table.max(axis=1).sum() / table.sum())


def interest_similarity(interests: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """[U, F, d] -> [U] mean cosine similarity over pairs of interests."""
    unit = interests / (np.linalg.norm(interests, axis=-1, keepdims=True) + eps)
    sim = np.einsum("ufd,ugd->ufg", unit, unit)
    f = interests.shape[1]
    if f < 2:
        return np.ones(len(interests))
    iu = np.triu_indices(f, k=1)
    return sim[:, iu[0], iu[1]].mean(axis=1)


def spherical_kmeans(
    x: np.ndarray, k: int, seed: int = 0, iterations: int = 50
) -> np.ndarray:
    """[N, d] -> [N] cluster labels by cosine k-means (seeded, deterministic).

    The partition objective depends on the weights only through inner
    products w_i . w_j, so it is invariant to rotations of the K axes: the
    raw ``argmax_k w_ik`` is not an identifiable partition, while clusters
    of the weight vectors are.
    """
    unit = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    rng = np.random.RandomState(seed)
    centres = unit[rng.choice(len(unit), k, replace=False)].copy()
    labels = np.zeros(len(unit), np.int64)
    for _ in range(iterations):
        new = np.argmax(unit @ centres.T, axis=1)
        if np.array_equal(new, labels) and _ > 0:
            break
        labels = new
        for j in range(k):
            members = unit[labels == j]
            if len(members):
                c = members.sum(0)
                centres[j] = c / (np.linalg.norm(c) + 1e-12)
    return labels


def neighbour_agreement(x: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Share of each item's k nearest neighbours (cosine) with its label."""
    unit = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    nn = np.argpartition(-sim, k, axis=1)[:, :k]
    return float((labels[nn] == labels[:, None]).mean())


def group_recovery(weights: np.ndarray, groups: np.ndarray) -> dict:
    """How well item partition weights recover planted item groups.

    Args:
      weights: [N, K] partition weights w_i (the item embeddings, 4.1).
      groups: [N] planted group of each item, 0..G-1.

    Returns:
      {'kmeans_nmi', 'kmeans_purity'}: spherical k-means of the w_i (G
      clusters, seed 0) against the groups; 'knn_agreement': share of each
      item's 10 nearest items (cosine) in its own group; 'argmax_nmi': the
      non-overlapped reading argmax_k w_ik against the groups.
    """
    clusters = spherical_kmeans(weights, int(groups.max()) + 1)
    return {
        "kmeans_nmi": nmi(clusters, groups),
        "kmeans_purity": purity(clusters, groups),
        "knn_agreement": neighbour_agreement(weights, groups),
        "argmax_nmi": nmi(partition_groups(weights), groups),
    }
