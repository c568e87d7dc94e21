"""TFRS at the centre, item 1: model.evaluate() reports the protocol's
metrics through a TFRS index, equal to the exact evaluator."""

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import pipeline, retrieval, tfrs_metrics, training
from tests.helpers import tiny_run_config
from tests.reference_metrics import metrics_from_topk


@pytest.fixture(
    scope="module",
    params=[
        ("dismir", {}),  # merge (max readout)
        ("dismir", {"readout": "fused"}),  # one fused query
        ("remi", {}),  # a baseline, merge
        ("dnn", {"exclude_history": True}),  # single, exclusion
    ],
    ids=["dismir-merge", "dismir-fused", "remi", "dnn-exclude"],
)
def trained(request, tmp_path_factory):
    name, overrides = request.param
    out = str(tmp_path_factory.mktemp("run") / name)
    config = tiny_run_config(out, model=name, max_steps=40, eval_every=40, **overrides)
    training.run(config, log=lambda m: None, verbose=0)
    return training.load_run(out, log=lambda m: None)


def test_model_evaluate_reports_the_exact_evaluators_metrics(trained):
    config, ds, model = trained
    test = pipeline.eval_examples(ds, "test", config.model.max_len)
    exact = training.evaluate_model(model, test, config).metrics
    got = tfrs_metrics.evaluate_with_tfrs(
        model, test, batch_size=64, exclude_history=config.train.exclude_history
    )
    for key in ("recall@20", "recall@50", "hr@20", "hr@50", "ndcg@20", "ndcg@50"):
        assert got[key] == pytest.approx(exact[key], abs=1e-6), key
    # The metric is not part of the model afterwards.
    assert model.protocol_metric is None
    assert not any(
        "protocol" in w.name or "brute" in w.name.lower() for w in model.weights
    )


def test_merge_keeps_each_items_best_score_once():
    scores = tf.constant([[0.9, 0.5, 0.8, 0.7, 0.1, 0.6]])
    ids = tf.constant([[3, 4, 3, 5, 4, 6]])
    top = retrieval.merge_top_k(scores, ids, 4).numpy()
    assert top.tolist() == [[3, 5, 6, 4]]


def test_protocol_metrics_match_the_numpy_definition():
    rng = np.random.default_rng(0)
    top = rng.integers(1, 30, size=(50, 50)).astype(np.int32)
    targets = rng.integers(0, 30, size=(50, 7)).astype(np.int32)
    targets[:, 0] = np.maximum(targets[:, 0], 1)  # >= 1 target each
    targets[:5, 1] = targets[:5, 0]  # repeated targets
    want = metrics_from_topk(top, targets)
    got = retrieval.protocol_metrics(tf.constant(top), tf.constant(targets))
    for key, value in want.items():
        np.testing.assert_allclose(got[key].numpy(), value, atol=1e-6, err_msg=key)


def test_evaluate_py_backends_agree(tmp_path):
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = str(tmp_path / "run")
    training.run(
        tiny_run_config(out, max_steps=20, eval_every=20), log=lambda m: None, verbose=0
    )
    got = {}
    for backend in ("exact", "tfrs"):
        proc = subprocess.run(
            [sys.executable, "evaluate.py", "--run_dir", out, "--backend", backend],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        got[backend] = json.loads(proc.stdout.strip().splitlines()[-1])
    for key, value in got["exact"]["test"].items():
        assert got["tfrs"]["test"][key] == pytest.approx(value, abs=1e-6)
    refused = subprocess.run(
        [
            sys.executable,
            "evaluate.py",
            "--run_dir",
            out,
            "--backend",
            "tfrs",
            "--dump_topk",
            "t.jsonl",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2
    assert "--dump_topk needs --backend exact" in refused.stderr


def test_a_second_evaluation_sees_the_current_weights(trained):
    config, ds, model = trained
    test = pipeline.eval_examples(ds, "test", config.model.max_len)
    tfrs_metrics.evaluate_with_tfrs(
        model, test, exclude_history=config.train.exclude_history
    )
    old = model.item_embedding.embeddings.numpy()
    try:
        model.item_embedding.embeddings.assign(old[::-1].copy())
        exact = training.evaluate_model(model, test, config).metrics
        got = tfrs_metrics.evaluate_with_tfrs(
            model, test, exclude_history=config.train.exclude_history
        )
        assert got["recall@50"] == pytest.approx(exact["recall@50"], abs=1e-6)
    finally:
        model.item_embedding.embeddings.assign(old)


def test_eval_dataset_pads_per_batch():
    # One heavy user (1,000 targets, 900 known items) widens only its own
    # batch, in the TFRS path too.
    from dismir_tf import types
    from dismir_tf.pipeline import EvalExamples, Targets

    t_len = np.array([1, 2, 1000, 3])
    k_len = np.array([5, 4, 900, 6])

    def ragged(lengths):
        return Targets(
            np.ones(lengths.sum(), np.int32), np.concatenate([[0], np.cumsum(lengths)])
        )

    ex = EvalExamples(
        users=np.arange(4, dtype=np.int32),
        history=np.ones((4, 5), np.int32),
        targets=ragged(t_len),
        known=ragged(k_len),
    )
    widths = [
        (b[types.TARGETS].shape[1], b[types.KNOWN_ITEMS].shape[1])
        for b in tfrs_metrics.eval_dataset(ex, batch_size=2)
    ]
    assert widths == [(2, 5), (1000, 900)]
