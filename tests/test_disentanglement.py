"""Evidence that the partition does what the paper claims (issue: DisMIR).

On a small synthetic set with planted item groups, DisMIR (lambda > 0)
recovers the groups far better than MIR (lambda = 0) at the same budget,
and a trained model's F interests are distinct.
"""

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import pipeline, training, types
from dismir_tf.analysis import measures as analysis
from dismir_tf.config import (
    DataConfig,
    ModelConfig,
    RunConfig,
    SyntheticConfig,
    TrainConfig,
)
from dismir_tf.data.synthetic import generate
from dismir_tf.diagnostics import collapse_diagnostics

SYN = SyntheticConfig(
    num_users=1500, num_items=400, num_groups=8, min_length=10, max_length=30, seed=5
)


def _train(tmp_path, lam):
    cfg = RunConfig(
        data=DataConfig(dataset="synthetic", synthetic=SYN),
        model=ModelConfig.from_settings(
            name="dismir",
            partition_weight=lam,
            embedding_dim=16,
            num_interests=3,
            max_len=10,
            partition_negatives=20,
        ),
        train=TrainConfig(
            output_dir=str(tmp_path / f"lam{lam}"),
            max_steps=1000,
            eval_every=500,
            batch_size=64,
            seed=0,
        ),
    )
    metrics = training.run(cfg, log=lambda m: None)
    _, ds, model = training.load_run(cfg.train.output_dir, log=lambda m: None)
    return metrics, ds, model


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("disentangle")
    _, groups = generate(SYN)
    return groups[1:], {lam: _train(tmp, lam) for lam in (0.0, 2.0)}


def _scores(model, groups):
    return analysis.group_recovery(model.item_embedding.embeddings.numpy()[1:], groups)


def test_partition_recovers_planted_groups_better_than_lambda_zero(runs):
    groups, by_lam = runs
    mir = _scores(by_lam[0.0][2], groups)
    dismir = _scores(by_lam[2.0][2], groups)
    print("lambda=0:", mir, "\nlambda=2:", dismir)
    # Measured (default capsule, seed 0): NMI 0.771 vs 0.049, purity 0.802
    # vs 0.220, kNN 0.841 vs 0.237, argmax NMI 0.307 vs 0.081, Recall@50
    # 0.626 vs 0.402 (results/synthetic/groups.md).
    assert dismir["kmeans_nmi"] > mir["kmeans_nmi"] + 0.4
    assert dismir["kmeans_purity"] > mir["kmeans_purity"] + 0.3
    assert dismir["knn_agreement"] > 2 * mir["knn_agreement"]
    # The raw argmax partition is weaker (docs/results.md) but still better.
    assert dismir["argmax_nmi"] > mir["argmax_nmi"]
    # And the recommendation improves at the same budget.
    assert by_lam[2.0][0]["test"]["recall@50"] > by_lam[0.0][0]["test"]["recall@50"]


def test_trained_interests_are_distinct(runs):
    """The collapse diagnostics' own figures on the test users; the first
    default capsule (mean pooling on real data) had interest cosine 0.956
    here and query~history-mean cosine 1.0."""
    _, by_lam = runs
    _, ds, model = by_lam[2.0]
    ex = pipeline.eval_examples(ds, "test", 10)
    d = collapse_diagnostics(model, ex)
    print("test collapse:", d.summary())
    # Measured with the default capsule (T 0.02, recency weights): interest
    # cosine 0.323 (0.318 among live interests, 2.68 of 3 live), query~
    # history-mean 0.690 (over live queries), 1.91 of the F = 3 interests
    # in the top-50, routing max share 0.975 (T 0.1 without recency
    # weights: 0.444, 0.727, 1.93, 0.877).
    assert d.interest_cosine <= 0.7
    assert d.live_interest_cosine <= 0.7
    assert d.live_interests >= 2.3
    assert d.query_history_cosine <= 0.9
    assert d.top_k_interests >= 1.5
    assert d.routing_max >= 0.6
    # No two non-empty interests of any user coincide.  With the nearly
    # hard routing of the default (temperature 0.02) an interest that
    # collects no item of a user is the zero vector (b_if ~ e^-30), so two
    # empty interests of one user are equal; they score 0 for every item.
    m = model.encode({types.HISTORY: tf.constant(ex.history)}).interests.numpy()
    norms = np.linalg.norm(m, axis=-1)  # [U, F]
    assert (norms > 1e-3).sum(1).min() >= 1  # never all empty
    for f in range(m.shape[1]):
        for g in range(f + 1, m.shape[1]):
            both = (norms[:, f] > 1e-3) & (norms[:, g] > 1e-3)
            gap = np.abs(m[both, f] - m[both, g]).max(axis=1)
            assert gap.size == 0 or gap.min() > 1e-4
