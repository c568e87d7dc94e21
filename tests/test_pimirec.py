"""PIMIRec: the pipeline's history times, the interval matrix, the
periodicity and interactivity maths against NumPy, training, train.py."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import pipeline, training, types
from dismir_tf.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from dismir_tf.data.synthetic import generate
from dismir_tf.models import create_model, time_unit
from dismir_tf.models.pimirec import interval_buckets, position_times
from tests.helpers import TINY_SYNTHETIC, make_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = ModelConfig(
    name="pimirec",
    embedding_dim=8,
    num_interests=3,
    max_len=5,
    partition_weight=0.0,
    sampled_softmax_negatives=7,
    params=dict(time_span=6, time_unit=10.0, graph_layers=2),
)


def _timed_dataset():
    """Two users with hand timestamps (seconds) and their order-only twin."""
    ds = make_dataset(
        [[1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13, 1, 2, 3, 4]],
        num_items=13,
        train=[0, 1],
        valid=[1],
        test=[0],
    )
    times = np.array(
        [0, 10, 30, 30, 100, 1000, 1010, 5, 6, 8, 20, 40, 45, 47, 60, 64, 1000],
        np.float64,
    )
    return dataclasses.replace(ds, timestamps=times), ds


# ------------------------------------------------------------- pipeline
def test_window_times_by_hand_with_padding_and_order_only():
    timed, _ = _timed_dataset()
    ts = tf.constant(timed.timestamps)
    starts = tf.constant([0, 0, 7], tf.int64)
    ends = tf.constant([3, 7, 17], tf.int64)
    got = pipeline._gather_window_times(ts, starts, ends, 4, 10.0).numpy()
    # Row 0: items 0..2 (t 0, 10, 30), padded; row 1: the last 4 of user 0
    # (t 30, 100, 1000, 1010) from the window's first; row 2: user 1's last
    # 4 (t 47, 60, 64, 1000).
    np.testing.assert_allclose(
        got, [[0, 1, 3, 0], [0, 7, 97, 98], [0, 1.3, 1.7, 95.3]], rtol=1e-6
    )
    order = pipeline._gather_window_times(None, starts, ends, 4, 10.0)
    np.testing.assert_array_equal(
        order.numpy(), [[0, 1, 2, 0], [0, 1, 2, 3], [0, 1, 2, 3]]
    )


def test_eval_examples_times_by_hand():
    timed, order = _timed_dataset()
    assert pipeline.eval_examples(timed, "valid", 4).features == {}
    ex = pipeline.eval_examples(timed, "valid", 4, time_unit=10.0)
    # User 1: n = 10, k = 8, history = positions 4..7 (t 40, 45, 47, 60).
    np.testing.assert_array_equal(ex.history, [[12, 13, 1, 2]])
    np.testing.assert_allclose(
        ex.features[types.HISTORY_TIME], [[0, 0.5, 0.7, 2.0]], rtol=1e-6
    )
    ex = pipeline.eval_examples(timed, "test", 6, time_unit=10.0)
    # User 0: n = 7, k = 5: items 1..5, t 0, 10, 30, 30, 100; one pad.
    np.testing.assert_allclose(
        ex.features[types.HISTORY_TIME], [[0, 1, 3, 3, 10, 0]], rtol=1e-6
    )
    ex = pipeline.eval_examples(order, "test", 6, time_unit=10.0)
    np.testing.assert_array_equal(ex.features[types.HISTORY_TIME], [[0, 1, 2, 3, 4, 0]])


def test_sampler_adds_times_only_when_asked_and_keeps_the_rest():
    timed, order = _timed_dataset()
    plain = pipeline.TrainSampler(timed, 4, 6, seed=3)
    with_time = pipeline.TrainSampler(timed, 4, 6, seed=3, time_unit=10.0)
    for step in (0, 5):
        a = plain.sample(tf.constant(step, tf.int64))
        b = with_time.sample(tf.constant(step, tf.int64))
        assert types.HISTORY_TIME not in a
        assert set(b) == set(a) | {types.HISTORY_TIME}
        for key in a:
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
        t = b[types.HISTORY_TIME].numpy()
        mask = b[types.HISTORY_MASK].numpy()
        assert (t[mask == 0] == 0).all() and (t[:, 0] == 0).all()
        assert (
            np.diff(np.where(mask > 0, t, np.inf), axis=1)[mask[:, 1:] > 0] >= 0
        ).all()
        again = with_time.sample(tf.constant(step, tf.int64))
        np.testing.assert_array_equal(again[types.HISTORY_TIME].numpy(), t)
    # Order only: the positions in the window.
    b = pipeline.TrainSampler(order, 4, 6, seed=3, time_unit=10.0).sample(
        tf.constant(1, tf.int64)
    )
    mask = b[types.HISTORY_MASK].numpy()
    np.testing.assert_array_equal(
        b[types.HISTORY_TIME].numpy(), np.arange(4)[None] * mask
    )


def test_only_pimirec_asks_for_time():
    assert time_unit(CFG) == 10.0
    for name in ("comirec-sa", "dismir", "mind", "dnn"):
        assert time_unit(CFG.with_model(name)) is None


# ---------------------------------------------------------------- maths
def test_interval_buckets_by_hand():
    times = tf.constant([[0.0, 0.5, 3.2, 100.0, 0.0]])
    got = interval_buckets(times, 6).numpy()[0]
    np.testing.assert_array_equal(got[0], [0, 0, 3, 6, 0])
    np.testing.assert_array_equal(got[2], [3, 2, 0, 6, 3])
    np.testing.assert_array_equal(got, got.T)
    hist = tf.constant([[4, 5, 6, 0, 0]])
    np.testing.assert_array_equal(position_times(hist).numpy(), [[0, 1, 2, 0, 0]])


def _softmax(x):
    x = x - x.max()
    return np.exp(x) / np.exp(x).sum()


def _numpy_encode(model, hist, times):
    """PIMI's maths written with loops over explicit neighbour lists."""
    cfg = model.model_config
    emb = model.item_embedding.embeddings.numpy()
    pos = model.position_embedding.embeddings.numpy()
    table = model.periodicity.table.numpy()
    w = model.periodicity.w.numpy()
    graph = model.interactivity
    w1, w2 = model.extractor.w1.numpy(), model.extractor.w2.numpy()
    d = emb.shape[1]
    out = []
    for h_row, t_row in zip(hist, times):
        n = int((h_row > 0).sum())
        e = emb[h_row[:n]]
        x0 = e + pos[:n]
        m = np.minimum(
            np.floor(np.abs(t_row[:n, None] - t_row[None, :n])), cfg.own.time_span
        ).astype(int)
        h = (
            np.stack(
                [
                    sum(
                        a * table[m[i, j]]
                        for j, a in enumerate(_softmax(table[m[i]] @ w))
                    )
                    for i in range(n)
                ]
            )
            + x0
        )
        c = h.mean(0)

        def attend(q, keys, qkv):
            wq, wk, wv = (v.numpy() for v in qkv)
            a = _softmax((keys @ wk) @ (q @ wq) / np.sqrt(d))
            return np.maximum(q + a @ (keys @ wv), 0.0)

        for layer in range(cfg.own.graph_layers):
            new = []
            for i in range(n):
                nb = (
                    ([h[i - 1]] if i > 0 else [])
                    + ([h[i + 1]] if i + 1 < n else [])
                    + [c, x0[i]]
                )
                new.append(attend(h[i], np.stack(nb), graph.node_qkv[layer]))
            h = np.stack(new)
            if layer + 1 < cfg.own.graph_layers:
                c = attend(c, np.concatenate([c[None], h]), graph.centre_qkv[layer])
        logits = np.tanh(h @ w1) @ w2  # [n, F]
        att = np.stack([_softmax(logits[:, f]) for f in range(len(w2[0]))])
        out.append(att @ e)
    return np.stack(out)


@pytest.fixture(scope="module")
def model():
    m = create_model(20, CFG, seed=4)
    m.build_for(CFG.max_len)
    return m


def test_encode_matches_numpy_periodicity_and_interactivity(model):
    hist = np.array([[3, 7, 1, 9, 2], [5, 6, 11, 0, 0], [8, 0, 0, 0, 0]], np.int32)
    times = np.array(
        [[0, 0.4, 2.5, 2.6, 30], [0, 1, 7, 0, 0], [0, 0, 0, 0, 0]], np.float32
    )
    enc = model.encode(
        {types.HISTORY: tf.constant(hist), types.HISTORY_TIME: tf.constant(times)}
    )
    assert enc.interests.shape == (3, CFG.num_interests, CFG.embedding_dim)
    assert enc.routing.shape == (3, CFG.num_interests, CFG.max_len)
    np.testing.assert_allclose(
        enc.interests.numpy(), _numpy_encode(model, hist, times), rtol=1e-4, atol=1e-5
    )
    # Padding gets no attention; each interest's attention sums to 1.
    np.testing.assert_array_equal(enc.routing.numpy()[1, :, 3:], 0)
    np.testing.assert_allclose(enc.routing.numpy().sum(-1), 1, rtol=1e-5)


def test_times_matter_and_order_only_is_the_fallback(model):
    hist = tf.constant([[3, 7, 1, 9, 2], [5, 6, 11, 0, 0]])
    pos = position_times(hist)
    default = model.query_vectors(hist).numpy()
    np.testing.assert_allclose(
        default,
        model.query_vectors({types.HISTORY: hist, types.HISTORY_TIME: pos}).numpy(),
        rtol=1e-6,
    )
    np.testing.assert_allclose(  # the Keras call too
        default,
        model({types.HISTORY: hist, types.HISTORY_TIME: pos}).numpy(),
        rtol=1e-6,
    )
    spread = model.query_vectors(
        {types.HISTORY: hist, types.HISTORY_TIME: pos * 3.0}
    ).numpy()
    assert np.abs(spread - default).max() > 1e-4
    # Only the interval matters, not the origin.
    np.testing.assert_allclose(
        model.query_vectors(
            {types.HISTORY: hist, types.HISTORY_TIME: pos * 3.0 + 5.0}
        ).numpy()[0],
        spread[0],
        rtol=1e-5,
        atol=1e-6,
    )


def test_training_uses_the_batch_times_and_the_loss_falls():
    ds, _ = generate(TINY_SYNTHETIC)
    rng = np.random.RandomState(0)
    stamps = np.empty(ds.num_interactions)
    for u in range(ds.num_users):
        lo, hi = ds.offsets[u], ds.offsets[u + 1]
        stamps[lo:hi] = np.cumsum(rng.exponential(20.0, hi - lo))
    ds = dataclasses.replace(ds, timestamps=stamps)
    cfg = dataclasses.replace(
        CFG, max_len=8, embedding_dim=16, sampled_softmax_negatives=20
    )
    sampler = pipeline.TrainSampler(
        ds, cfg.max_len, 32, seed=0, time_unit=time_unit(cfg)
    )
    tf.keras.utils.set_random_seed(0)
    m = create_model(ds.num_items, cfg, seed=1)
    m.build_for(cfg.max_len)
    batch = sampler.sample(tf.constant(2, tf.int64))
    without = dict(batch)
    del without[types.HISTORY_TIME]
    assert (
        m.compute_losses(batch)["rec_loss"].numpy()
        != m.compute_losses(without)["rec_loss"].numpy()
    )
    m.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    data = sampler.dataset_from(0, 3)
    first = m.evaluate(data, verbose=0, return_dict=True)["rec_loss"]
    m.fit(data.repeat(5), verbose=0)
    after = m.evaluate(data, verbose=0, return_dict=True)["rec_loss"]
    assert np.isfinite(after) and after < first - 0.3


# ------------------------------------------------------------ end to end
def _write_files(tmp_path):
    ds, _ = generate(dataclasses.replace(TINY_SYNTHETIC, num_users=150))
    rng = np.random.RandomState(1)
    tsv, lines = [], []
    for u in range(ds.num_users):
        seq = ds.sequence(u)
        t = 1.3e9 + np.cumsum(rng.exponential(3 * 86400.0, len(seq)))
        tsv += [f"u{u}\ti{i}\t{x:.1f}" for i, x in zip(seq, t)]
        lines.append(" ".join([f"u{u}"] + [f"i{i}" for i in seq]))
    timed, order = tmp_path / "checkins.tsv", tmp_path / "seq.txt"
    timed.write_text("\n".join(tsv) + "\n")
    order.write_text("\n".join(lines) + "\n")
    return str(timed), str(order)


def test_pimirec_through_train_py_and_on_order_only_data(tmp_path):
    timed, order = _write_files(tmp_path)
    out = str(tmp_path / "timed")
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "--model",
            "pimirec",
            "--dataset_file",
            timed,
            "--dataset_format",
            "user_item_time_tsv",
            "--data_dir",
            str(tmp_path / "data"),
            "--embedding_dim",
            "16",
            "--max_len",
            "10",
            "--max_steps",
            "20",
            "--eval_every",
            "20",
            "--batch_size",
            "32",
            "--nojit_compile",
            "--output_dir",
            out,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["model"]["name"] == "pimirec"
    assert config["model"]["partition_weight"] == 0.0
    assert 0.0 < metrics["test"]["recall@50"] <= 1.0
    # Order-only file (seq_lines), in process.
    run = RunConfig(
        data=DataConfig(
            dataset="",
            dataset_file=order,
            dataset_format="seq_lines",
            data_dir=str(tmp_path / "data"),
        ),
        model=ModelConfig(
            name="pimirec",
            embedding_dim=16,
            num_interests=3,
            max_len=10,
            partition_weight=0.0,
        ),
        train=TrainConfig(
            output_dir=str(tmp_path / "order"),
            batch_size=32,
            max_steps=20,
            eval_every=20,
            seed=1,
            eval_batch_size=64,
            jit_compile=False,
        ),
    )
    metrics = training.run(run, log=lambda m: None)
    assert 0.0 < metrics["test"]["recall@50"] <= 1.0


def test_export_serves_the_order_only_fallback(tmp_path):
    """Without times (history_times with no columns) PIMIRec is served
    with the order-only times (positions), exactly as
    query_vectors(history); with times see tests/test_export_every_model."""
    from dismir_tf import export, retrieval

    timed, _ = _timed_dataset()
    m = create_model(timed.num_items, CFG, seed=2)
    m.build_for(CFG.max_len)
    config = RunConfig(
        data=DataConfig(dataset="synthetic"),
        model=CFG,
        train=TrainConfig(output_dir=str(tmp_path / "run")),
    )
    path = export.export_model(m, timed, config, str(tmp_path / "export"), k=5)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    got = serve(
        history=tf.constant([["item3", "item7", "item1", "item9"]]),
        history_times=tf.zeros([1, 0], tf.float64),
    )
    hist = tf.constant([[3, 7, 1, 9, 0]])
    _, top = retrieval.score_and_top_k(
        m.query_vectors(hist), m.item_embedding.embeddings, 5, None
    )
    assert [x.decode() for x in got["item_ids"].numpy()[0]] == [
        timed.item_ids[i] for i in top.numpy()[0]
    ]


def test_the_collapse_analysis_encodes_with_the_history_times(model):
    """analysis.collapse.encode_numpy passes every feature it is given, so
    the collapse analysis of a PIMIRec run sees the times evaluation uses."""
    from dismir_tf.analysis import collapse

    hist = np.array([[3, 7, 1, 9, 2], [5, 6, 11, 0, 0]], np.int32)
    times = np.array([[0, 0.4, 2.5, 2.6, 30], [0, 1, 7, 0, 0]], np.float32)
    timed = collapse.encode_numpy(
        model, {types.HISTORY: hist, types.HISTORY_TIME: times}
    )
    want = model.encode(
        {types.HISTORY: tf.constant(hist), types.HISTORY_TIME: tf.constant(times)}
    )
    np.testing.assert_allclose(timed["interests"], want.interests.numpy(), rtol=1e-6)
    plain = collapse.encode_numpy(model, hist)  # positions instead
    assert np.abs(plain["interests"] - timed["interests"]).max() > 1e-4
