"""Disentanglement measures on hand-made cases."""

import math

import numpy as np
import pytest

from dismir_tf.analysis import measures as analysis


def test_nmi_and_purity_hand_cases():
    a = np.array([0, 0, 1, 1])
    assert analysis.nmi(a, np.array([5, 5, 7, 7])) == pytest.approx(1.0)
    assert analysis.nmi(a, np.array([0, 1, 0, 1])) == pytest.approx(0.0)
    # pred [0,0,0,1] vs true [0,0,1,1]: cluster 0 majority 2 of 3, cluster 1
    # 1 of 1 -> purity 3/4.
    assert analysis.purity(np.array([0, 0, 0, 1]), a) == pytest.approx(0.75)
    # MI = 3/4 log(4/3)... computed by hand from the 2x2 table.
    p = np.array([[0.5, 0.25], [0.0, 0.25]])
    pa, pb = p.sum(1), p.sum(0)
    mi = sum(
        p[i, j] * math.log(p[i, j] / (pa[i] * pb[j]))
        for i in range(2)
        for j in range(2)
        if p[i, j] > 0
    )
    h = lambda q: -sum(x * math.log(x) for x in q if x > 0)  # noqa: E731
    assert analysis.nmi(np.array([0, 0, 0, 1]), a) == pytest.approx(
        2 * mi / (h(pa) + h(pb))
    )


def test_interest_similarity_and_partition_groups():
    m = np.array([[[1.0, 0.0], [0.0, 2.0]], [[1.0, 1.0], [2.0, 2.0]]])
    np.testing.assert_allclose(analysis.interest_similarity(m), [0.0, 1.0], atol=1e-9)
    np.testing.assert_array_equal(
        analysis.partition_groups(np.array([[0.1, 0.9], [3.0, -1.0]])), [1, 0]
    )


def test_kmeans_and_neighbours_on_separated_clusters():
    rng = np.random.RandomState(0)
    centres = np.eye(3) * 10
    labels = np.repeat(np.arange(3), 20)
    x = centres[labels] + rng.randn(60, 3)
    found = analysis.spherical_kmeans(x, 3, seed=1)
    assert analysis.nmi(found, labels) == pytest.approx(1.0)
    assert analysis.neighbour_agreement(x, labels, k=5) == 1.0
