"""Re4: shapes, its three backward flows against NumPy, training, CLIs,
export.

The NumPy references are written the way Re4's code computes the terms
(sums of exponentials, masked cells counted in the means), so they also
pin the reductions.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import export, pipeline, retrieval, training, types
from dismir_tf.config import ModelConfig
from dismir_tf.errors import ConfigError
from dismir_tf.layers import InterestReconstructor
from dismir_tf.models import (
    create_model,
    model_names,
    resolve_config,
    takes_partition_by_default,
)
from dismir_tf.models.re4 import (
    positive_items,
    re_attend_loss,
    re_construct_loss,
    re_contrast_loss,
)
from tests.helpers import losses_before_after, tiny_run_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = ModelConfig.from_settings(
    name="re4",
    embedding_dim=8,
    num_interests=3,
    max_len=6,
    partition_weight=0.0,
    sampled_softmax_negatives=7,
)
SMALL = [
    "--dataset",
    "synthetic",
    "--synthetic_users",
    "300",
    "--synthetic_items",
    "120",
    "--synthetic_groups",
    "6",
    "--embedding_dim",
    "8",
    "--num_interests",
    "3",
    "--max_len",
    "8",
    "--batch_size",
    "32",
    "--max_steps",
    "20",
    "--eval_every",
    "20",
    "--nojit_compile",
]


def _popen(*args):
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)  # the scripts must set it
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """train.py and compare.py with --model(s) re4, started first so that
    they run beside the in-process tests."""
    base = tmp_path_factory.mktemp("re4cli")
    procs = {
        "train": _popen(
            "train.py", *SMALL, "--model", "re4", "--output_dir", str(base / "train")
        ),
        "compare": _popen(
            "compare.py",
            *SMALL,
            "--mode",
            "table2",
            "--models",
            "re4",
            "--seeds",
            "1",
            "--out_dir",
            str(base / "compare"),
            "--table_name",
            "re4-test",
        ),
    }
    yield base, procs
    for p in procs.values():
        if p.poll() is None:
            p.kill()


def _finish(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return out


def test_start_cli_runs(cli_runs):
    base, procs = cli_runs
    assert set(procs) == {"train", "compare"}


def _np_log_softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def _history(b=5, seed=0):
    rng = np.random.RandomState(seed)
    lengths = [2, 6, 3, 1, 4][:b]
    hist = np.zeros([b, CFG.max_len], np.int32)
    for i, n in enumerate(lengths):
        hist[i, :n] = rng.randint(1, 30, size=n)
    return hist


def _random_inputs(seed):
    """mask [5, 6], interests m [5, 3, 4], items e [5, 6, 4] and an
    attention [5, 3, 6] summing to 1 over each user's real items."""
    rng = np.random.RandomState(seed)
    mask = (_history() > 0).astype(np.float32)
    m = rng.normal(size=(5, 3, 4)).astype(np.float32)
    e = rng.normal(size=(5, 6, 4)).astype(np.float32)
    att = rng.dirichlet(np.ones(6), size=(5, 3)) * mask[:, None]
    return mask, m, e, (att / att.sum(-1, keepdims=True)).astype(np.float32)


def _batch(b=5, seed=0):
    hist = tf.constant(_history(b, seed))
    return {
        types.HISTORY: hist,
        types.HISTORY_MASK: tf.cast(hist > 0, tf.float32),
        types.TARGET: tf.constant(np.arange(1, b + 1), tf.int32),
        types.SEED: tf.zeros([b, 2], tf.int64),
    }


def _re4_params(kw):
    """re4_temperature=0.1 -> params {'temperature': 0.1} (the flags)."""
    return {k[len("re4_") :]: kw.pop(k) for k in list(kw) if k.startswith("re4_")}


def _model(**kw):
    name = kw.pop("name", "re4")
    params = _re4_params(kw)
    if params:
        kw["params"] = params
    model = create_model(40, CFG.with_model(name, **kw), seed=1)
    model.build_for(CFG.max_len)
    return model


def _np_positives(att, mask, threshold=0.0):
    gate = np.full(len(mask), threshold) if threshold > 0 else 1.0 / mask.sum(1)
    return (att > gate[:, None, None]) & (mask[:, None, :] > 0)


def _np_contrast(m, e, att, mask, tau, threshold=0.0):
    """Re4's code: cosine / tau; the negatives' sum runs over the user's
    items, its other interests and the previous user's items; the mean is
    over every (interest, position) cell."""
    b, f, _ = m.shape
    length = e.shape[1]
    mn = m / np.linalg.norm(m, axis=-1, keepdims=True)
    en = e / np.linalg.norm(e, axis=-1, keepdims=True)
    pos = _np_positives(att, mask, threshold)
    total = 0.0
    for u in range(b):
        prev = (u - 1) % b
        for k in range(f):
            denom = sum(
                np.exp(mn[u, k] @ en[u, j] / tau) for j in range(length) if mask[u, j]
            )
            denom += sum(np.exp(mn[u, k] @ mn[u, g] / tau) for g in range(f) if g != k)
            denom += sum(
                np.exp(mn[u, k] @ en[prev, j] / tau)
                for j in range(length)
                if mask[prev, j]
            )
            for j in range(length):
                if pos[u, k, j]:
                    total -= np.log(np.exp(mn[u, k] @ en[u, j] / tau) / denom)
    return total / (b * f * length)


def _np_attend(m, e, att, mask):
    """-(re_att * log att).sum() / re_att.sum()."""
    scores = np.einsum("bfd,bld->bfl", m, e)
    scores = np.where(mask[:, None] > 0, scores, -np.inf)
    target = np.exp(_np_log_softmax(scores))
    log_att = np.where(
        mask[:, None] > 0, np.log(np.where(mask[:, None] > 0, att, 1.0)), 0.0
    )
    return -(target * log_att).sum() / target.sum()


def _np_reconstruct(layer, m, mask):
    w, bias = layer.dense.kernel.numpy(), layer.dense.bias.numpy()
    w3, q, w5 = layer.w3.numpy(), layer.query.numpy(), layer.w5.numpy()
    b, f, d = m.shape
    length = mask.shape[1]
    out = np.zeros([b, f, length, d])
    for u in range(b):
        for k in range(f):
            r = (m[u, k] @ w + bias).reshape(layer.max_len, d)[:length]
            logits = q[:length] @ np.tanh(r @ w3).T  # [l, p]
            logits = np.where(mask[u][None] > 0, logits, -np.inf)
            a = np.exp(_np_log_softmax(logits))
            out[u, k] = a @ (r @ w5)
    return out


# ------------------------------------------------------------- the model
def test_registered_as_a_multi_interest_baseline():
    assert "re4" in model_names()
    assert not takes_partition_by_default("re4")
    # The partition task is a plugin: off by default, on when asked.
    assert (
        resolve_config(
            ModelConfig.from_settings(name="re4", partition_weight=0.5)
        ).partition_weight
        == 0.5
    )
    for bad in (
        dict(re4_contrast_weight=-1.0),
        dict(re4_temperature=0.0),
        dict(re4_threshold=1.0),
        dict(re4_attend_weight=np.nan),
    ):
        with pytest.raises(ConfigError, match="re4_"):
            ModelConfig(name="re4", params=_re4_params(dict(bad)))


def test_encode_shapes_and_attention():
    model = _model()
    hist = _history()
    enc = model.encode({types.HISTORY: tf.constant(hist)})
    assert enc.interests.shape == (5, 3, 8)
    assert enc.routing.shape == (5, 3, 6)
    assert enc.items.shape == (5, 6, 8)
    np.testing.assert_allclose(enc.routing.numpy().sum(-1), 1.0, rtol=1e-5)
    assert (
        enc.routing.numpy()[np.broadcast_to(hist[:, None] == 0, (5, 3, 6))] == 0
    ).all()
    assert model.query_vectors(tf.constant(hist)).shape == (5, 3, 8)
    rec = model.reconstructor(enc.interests, enc.mask)
    assert rec.shape == (5, 3, 6, 8)


def test_with_zero_weights_re4_is_comirec_sa():
    re4 = _model(
        re4_contrast_weight=0.0, re4_attend_weight=0.0, re4_construct_weight=0.0
    )
    sa = _model(name="comirec-sa")
    decoder = {id(v) for v in re4.reconstructor.trainable_variables}
    backbone = [v for v in re4.trainable_variables if id(v) not in decoder]
    assert len(backbone) == len(sa.trainable_variables)
    for a, b in zip(backbone, sa.trainable_variables):  # same initial draw
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    batch = _batch()
    la = {k: float(v) for k, v in re4.compute_losses(batch).items()}
    lb = {k: float(v) for k, v in sa.compute_losses(batch).items()}
    assert la == pytest.approx(lb, rel=1e-6)
    assert la["reg_loss"] == 0.0


# -------------------------------------------------------- the three terms
def test_positive_items_hand_case():
    att = tf.constant([[[0.5, 0.3, 0.2, 0.0], [0.1, 0.1, 0.8, 0.0]]])
    mask = tf.constant([[1.0, 1.0, 1.0, 0.0]])
    # 1/|history| = 1/3: strictly above it.
    assert positive_items(att, mask).numpy().tolist() == [
        [[True, False, False, False], [False, False, True, False]]
    ]
    assert positive_items(att, mask, 0.25).numpy().tolist() == [
        [[True, True, False, False], [False, False, True, False]]
    ]
    # A user with one item: its weight 1 is not above 1/1.
    one = positive_items(tf.constant([[[1.0, 0.0]]]), tf.constant([[1.0, 0]]))
    assert not one.numpy().any()


@pytest.mark.parametrize("threshold", [0.0, 0.2])
def test_re_contrast_matches_numpy(threshold):
    mask, m, e, att = _random_inputs(2)
    pos = positive_items(tf.constant(att), tf.constant(mask), threshold)
    np.testing.assert_array_equal(pos.numpy(), _np_positives(att, mask, threshold))
    assert pos.numpy().any()
    tau = 0.5
    cells = re_contrast_loss(
        tf.constant(m), tf.constant(e), pos, tf.constant(mask), tau
    ).numpy()
    assert cells.shape == (5, 3, 6)
    assert (cells[~pos.numpy()] == 0).all() and (cells[pos.numpy()] > 0).all()
    assert cells.mean() == pytest.approx(
        _np_contrast(m, e, att, mask, tau, threshold), rel=1e-5
    )


def test_re_contrast_hand_case():
    # Two users, one interest each, 2-d unit vectors, tau = 1.
    # User 0: m = (1, 0); items (1, 0) [positive], (0, 1); no other
    # interests; the previous user (user 1) has the item (-1, 0).
    # D = e^1 + e^0 + e^-1; loss = -log(e / D) = log(e + 1 + 1/e) - 1.
    m = tf.constant([[[1.0, 0.0]], [[0.0, 1.0]]])
    e = tf.constant([[[2.0, 0.0], [0.0, 3.0]], [[-1.0, 0.0], [5.0, 5.0]]])
    mask = tf.constant([[1.0, 1.0], [1.0, 0.0]])
    pos = tf.constant([[[True, False]], [[False, False]]])
    cells = re_contrast_loss(m, e, pos, mask, 1.0).numpy()
    expected = np.log(np.e + 1 + 1 / np.e) - 1
    assert cells[0, 0, 0] == pytest.approx(expected, rel=1e-6)
    assert cells.sum() == pytest.approx(expected, rel=1e-6)


def test_re_attend_matches_numpy_and_is_zero_when_they_agree():
    mask, m, e, att = _random_inputs(4)
    got = re_attend_loss(
        tf.constant(m), tf.constant(e), tf.constant(att), tf.constant(mask)
    ).numpy()
    assert got.shape == (5, 3)
    assert got.mean() == pytest.approx(_np_attend(m, e, att, mask), rel=1e-5)
    # Attention equal to softmax(m . e): the cross-entropy is the entropy.
    scores = np.where(mask[:, None] > 0, np.einsum("bfd,bld->bfl", m, e), -np.inf)
    same = np.exp(_np_log_softmax(scores)).astype(np.float32)
    got = re_attend_loss(
        tf.constant(m), tf.constant(e), tf.constant(same), tf.constant(mask)
    ).numpy()
    entropy = -np.where(same > 0, same * np.log(np.maximum(same, 1e-30)), 0).sum(-1)
    np.testing.assert_allclose(got, entropy, rtol=1e-4, atol=1e-5)


def test_reconstructor_and_re_construct_match_numpy():
    layer = InterestReconstructor(7, seed=3)
    mask, m, e, att = _random_inputs(5)  # L = 6 < 7
    out = layer(tf.constant(m), tf.constant(mask)).numpy()
    assert out.shape == (5, 3, 6, 4)
    np.testing.assert_allclose(
        out, _np_reconstruct(layer, m, mask), rtol=1e-4, atol=1e-5
    )
    pos = _np_positives(att, mask)
    got = re_construct_loss(tf.constant(out), tf.constant(e), tf.constant(pos)).numpy()
    # The code: MSE cells zeroed off the positives, mean over B*F*L*d.
    expected = np.where(pos[..., None], (out - e[:, None]) ** 2, 0).mean()
    assert got.mean() == pytest.approx(expected, rel=1e-5)
    assert got.shape == (5, 3, 6, 4)


def test_regularization_is_the_weighted_sum_of_the_numpy_terms():
    model = _model(
        re4_contrast_weight=0.3,
        re4_attend_weight=0.05,
        re4_construct_weight=2.0,
        re4_temperature=0.1,
    )
    batch = _batch()
    enc = model.encode({types.HISTORY: batch[types.HISTORY]})
    m, e = enc.interests.numpy(), enc.items.numpy()
    att, mask = enc.routing.numpy(), enc.mask.numpy()
    pos = _np_positives(att, mask)
    rec = _np_reconstruct(model.reconstructor, m, mask)
    construct = np.where(pos[..., None], (rec - e[:, None]) ** 2, 0).mean()
    terms = {k: float(v) for k, v in model.backward_flows(enc).items()}
    assert terms["contrast"] == pytest.approx(
        _np_contrast(m, e, att, mask, 0.1), rel=1e-4
    )
    assert terms["attend"] == pytest.approx(_np_attend(m, e, att, mask), rel=1e-4)
    assert terms["construct"] == pytest.approx(construct, rel=1e-4)
    expected = (
        0.3 * terms["contrast"] + 0.05 * terms["attend"] + 2.0 * terms["construct"]
    )
    got = float(model.regularization(batch, enc, None))
    assert got == pytest.approx(expected, rel=1e-5)
    losses = model.compute_losses(batch)
    assert float(losses["reg_loss"]) == pytest.approx(expected, rel=1e-5)
    # Every weight of the model gets a gradient from the total loss.
    with tf.GradientTape() as tape:
        loss = model.compute_losses(batch)["loss"]
    grads = tape.gradient(loss, model.trainable_variables)
    missing = [v.name for v, g in zip(model.trainable_variables, grads) if g is None]
    assert not missing


def test_loss_falls_on_tiny_data():
    run_cfg = tiny_run_config("unused", model="re4", partition_weight=0.0)
    from dismir_tf.data.synthetic import generate

    ds, _ = generate(run_cfg.data.synthetic)
    sampler = pipeline.TrainSampler(ds, run_cfg.model.max_len, 32, seed=0)
    tf.keras.utils.set_random_seed(0)
    model = create_model(ds.num_items, run_cfg.model, seed=0)
    model.build_for(run_cfg.model.max_len)
    first, after = losses_before_after(model, sampler, 3, 5)
    assert first["reg_loss"] > 0
    assert after["loss"] < first["loss"]
    assert after["rec_loss"] < first["rec_loss"]


# ------------------------------------------------------ CLIs and export
def test_train_py_runs_re4_and_its_run_exports(cli_runs, tmp_path):
    base, procs = cli_runs
    _finish(procs["train"])
    run_dir = str(base / "train")
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert metrics["model"] == "re4"
    assert 0.0 <= metrics["test"]["recall@50"] <= 1.0
    config, ds, model = training.load_run(run_dir, log=lambda m: None)
    assert config.model.name == "re4"
    assert (
        config.model.params["temperature"]
        == ModelConfig.from_settings(name="re4").params["temperature"]
    )
    path = export.export_model(model, ds, config, str(tmp_path / "serving"))
    served = tf.saved_model.load(path).signatures["serving_default"]
    hist = pipeline.eval_examples(ds, "test", config.model.max_len).history
    out = served(history=tf.constant(ds.item_ids[hist]))
    _, want = retrieval.score_and_top_k_fn(
        training.make_query_fn(model)(tf.constant(hist)),
        model.item_embedding.embeddings,
        export.DEFAULT_K,
        None,
    )
    assert (out["item_ids"].numpy().astype(str) == ds.item_ids[want.numpy()]).all()


def test_compare_py_runs_re4(cli_runs):
    base, procs = cli_runs
    _finish(procs["compare"])
    table = (base / "compare" / "re4-test.md").read_text()
    assert "Re4" in table or "re4" in table
    metrics = json.load(open(base / "compare" / "runs" / "re4-seed0" / "metrics.json"))
    assert metrics["model"] == "re4"
