"""The default DisMIR is multi-interest on real data (the collapse issue).

A short run on beauty (the shared real data set with short histories) is
read with the collapse diagnostics' own figures.  The capsule that was the
default before (prototype logits with a dot product, the routing softmax
over interests, squashed interests, the fused eq. 5 readout: "legacy"
below) fails the same thresholds after the same steps: on real data it
ranks as mean pooling of the history.  600 steps is early in training;
the thresholds are tighter than the issue's full-budget bar (interest
cosine <= 0.9, query~history-mean cosine <= 0.95; README.md,
results/capsules/), and every one of them separates the two.
"""

import os

import pytest

from dismir_tf import pipeline, training
from dismir_tf.capsule_config import LEGACY_CAPSULE as LEGACY  # noqa: E402
from dismir_tf.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from dismir_tf.diagnostics import collapse_diagnostics
from tests.conftest import require_shared_data


def _run(tmp_path, shared_data, name, **capsule):
    cfg = RunConfig(
        data=DataConfig(
            dataset="",
            dataset_file=os.path.join(shared_data, "beauty", "Beauty.txt.gz"),
            dataset_format="seq_lines",
            data_dir=str(tmp_path / "data"),
        ),
        model=ModelConfig.from_settings(
            name="dismir", partition_weight=0.1, max_len=20, **capsule
        ),
        train=TrainConfig(
            output_dir=str(tmp_path / name),
            max_steps=600,
            eval_every=300,
            batch_size=128,
            seed=0,
        ),
    )
    training.run(cfg, log=lambda m: None, verbose=0)
    config, ds, model = training.load_run(cfg.train.output_dir, log=lambda m: None)
    test = pipeline.eval_examples(ds, "test", config.model.max_len)
    return collapse_diagnostics(model, test)


@pytest.fixture(scope="module")
def beauty_runs(tmp_path_factory):
    shared_data = require_shared_data()
    tmp = tmp_path_factory.mktemp("beauty-collapse")
    return {
        "default": _run(tmp, shared_data, "default"),
        "legacy": _run(tmp, shared_data, "legacy", **LEGACY),
    }


def test_default_dismir_is_multi_interest_on_beauty(beauty_runs):
    # After 600 steps (measured with the default of routing temperature
    # 0.02 and learned recency weights: interest cosine 0.215 (0.168 among
    # the live interests, 3.67 of 4 live), query~history-mean 0.599, 2.76
    # interests in the top-50, routing max share 0.895; the default before
    # the recency weights (T = 0.1) gave 0.934, 0.974, 2.23, 0.336 here).
    d = beauty_runs["default"]
    print("default:", d.summary())
    assert d.interest_cosine <= 0.6
    # Not flattered by empty (zero) interests.
    assert d.live_interest_cosine <= 0.6
    assert d.live_interests >= 3.0
    assert d.query_history_cosine <= 0.8
    # Several interests retrieve: more than one contributes to the top-50.
    assert d.top_k_interests >= 2.0
    # Items are routed, not spread evenly over the interests.
    assert d.routing_max >= 0.6


def test_the_old_default_fails_the_same_bar(beauty_runs):
    # Measured: 0.992 (live 0.992, 4.00 live), 1.000, 1.00, 0.276 (uniform
    # routing is 0.25).
    old = beauty_runs["legacy"]
    print("legacy:", old.summary())
    assert old.interest_cosine > 0.6
    assert old.live_interest_cosine > 0.6
    assert old.query_history_cosine > 0.8
    assert old.top_k_interests < 2.0
    assert old.routing_max < 0.6
