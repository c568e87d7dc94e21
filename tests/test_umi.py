"""UMI: the user-guided routing and the interest refinement against NumPy,
the history-derived profile, REMI's hard-negative loss, a falling loss, and
``--model umi`` through train.py with --export_dir."""

import dataclasses
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import pipeline, retrieval, training, types
from dismir_tf.config import ModelConfig
from dismir_tf.data.synthetic import generate
from dismir_tf.layers import InterestRefinement, UserGuidedRouting
from dismir_tf.layers.ops import squash
from dismir_tf.models import UMI, create_model, resolve_config
from dismir_tf.models.umi import PROFILE_FIELD_DIM, PROFILE_FIELDS
from tests.helpers import TINY_SYNTHETIC, losses_before_after

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = ModelConfig.from_settings(
    name="umi",
    embedding_dim=8,
    num_interests=3,
    max_len=6,
    partition_weight=0.0,
    sampled_softmax_negatives=7,
    remi_beta=0.5,
)


def _model(**kw):
    model = create_model(40, CFG.with_model("umi", **kw), seed=1)
    model.build_for(CFG.max_len)
    return model


def _history(b=4, seed=0):
    rng = np.random.RandomState(seed)
    hist = np.zeros([b, CFG.max_len], np.int32)
    for i, n in enumerate(rng.randint(2, CFG.max_len + 1, size=b)):
        hist[i, :n] = rng.randint(1, 40, size=n)
    return hist


def _relu(x):
    return np.maximum(x, 0.0)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x, axis):
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _squash(s):
    sq = (s**2).sum(-1, keepdims=True)
    return s * sq / (1 + sq) / np.sqrt(sq + 1e-9)


def _dense(layer, x, act=None):
    y = x @ layer.kernel.numpy() + layer.bias.numpy()
    return act(y) if act else y


def _np_umi(model, hist):
    """UMI's encoder written from the paper / reference code."""
    emb = model.item_embedding.embeddings.numpy()
    e, mask = emb[hist], (hist > 0).astype(np.float32)
    b, length, d = e.shape
    # Profile stand-in: MLP on the masked mean of the history.
    mean = (e * mask[..., None]).sum(1) / np.maximum(mask.sum(1), 1)[:, None]
    p = _dense(model.profile_out, _dense(model.profile_hidden, mean, _relu))
    # User-guided attention a_l = sigmoid(w2 relu(W1 [e_l; p])).
    r = model.dual_routing
    ep = np.concatenate([e, np.repeat(p[:, None], length, 1)], -1)
    a = _dense(r.attention_out, _dense(r.attention_hidden, ep, _relu), _sigmoid)[
        ..., 0
    ]  # [B, L]
    # Dual-attentive capsule: u_{f|l} = W_f e_l, logits replaced each pass.
    u = np.einsum("bld,dfe->bfle", e, r.kernel.numpy())
    logits = np.repeat(r.initial_logits.numpy()[:length].T[None], b, 0)
    for it in range(3):
        c = _softmax(logits, axis=1) * mask[:, None]
        v = _squash(np.einsum("bfl,bl,bfld->bfd", c, a, u))
        if it < 2:
            logits = np.einsum("bfld,bfd->bfl", u, v)
    # Refinement: per-interest gates over the 3 profile fields.
    f = v.shape[1]
    rf = model.refinement
    pf = np.repeat(p[:, None], f, 1)  # [B,F,P]
    g = _dense(
        rf.gate_out,
        _dense(rf.gate_hidden, np.concatenate([pf, v], -1), _relu),
        _sigmoid,
    )  # [B,F,3]
    gated = (
        pf.reshape(b, f, PROFILE_FIELDS, PROFILE_FIELD_DIM) * g[..., None]
    ).reshape(b, f, -1)
    m = _dense(
        rf.user_out, _dense(rf.user_hidden, np.concatenate([gated, v], -1), _relu)
    )
    return dict(profile=p, attention=a, routing=c, capsules=v, gates=g, interests=m)


def test_registered_as_a_multi_interest_baseline():
    model = _model()
    assert isinstance(model, UMI) and model.multi_interest
    assert model.retrieval == types.MERGE
    # The partition task is a plugin: off unless asked for.
    assert (
        resolve_config(
            ModelConfig.from_settings(name="umi", partition_weight=1.0)
        ).partition_weight
        == 1.0
    )
    assert model.negative_beta == CFG.own.remi_beta
    assert model.dual_routing.iterations == 3
    assert _model(routing_iterations=2).dual_routing.iterations == 2


def test_shapes():
    model = _model()
    hist = tf.constant(_history())
    enc = model.encode({types.HISTORY: hist})
    assert enc.interests.shape == (4, 3, 8)
    assert enc.routing.shape == (4, 3, 6)
    assert model.query_vectors(hist).shape == (4, 3, 8)


def test_initialisation_is_the_reference_tf1_defaults():
    # The UMI reference is TF1: a bare tf.get_variable for the item
    # embeddings and fully_connected kernels, both Glorot uniform -- not
    # the kaiming N(0, 2/d) of the torch reference baselines.
    num_items, d, f = 3000, 16, 4
    model = create_model(
        num_items, dataclasses.replace(CFG, embedding_dim=d, num_interests=f), seed=0
    )
    model.build_for(CFG.max_len)

    def check(values, limit):
        values = np.asarray(values).ravel()
        assert np.abs(values).max() <= limit
        # Uniform on [-limit, limit]: std limit / sqrt(3), not the
        # std sqrt(2/fan_in) of kaiming.
        np.testing.assert_allclose(values.std(), limit / np.sqrt(3), rtol=0.1)

    emb = model.item_embedding.embeddings.numpy()
    check(emb, np.sqrt(6.0 / (num_items + 1 + d)))
    assert emb.std() < 0.05 < np.sqrt(2.0 / d)
    check(model.dual_routing.kernel.numpy(), np.sqrt(6.0 / (d + f * d)))
    hidden = model.refinement.user_hidden.kernel.numpy()
    check(hidden, np.sqrt(6.0 / sum(hidden.shape)))
    np.testing.assert_array_equal(model.refinement.user_hidden.bias.numpy(), 0.0)


def test_encoder_matches_numpy_reference():
    model = _model()
    hist = _history(5, seed=2)
    want = _np_umi(model, hist)
    enc = model.encode({types.HISTORY: tf.constant(hist)})
    np.testing.assert_allclose(
        enc.interests.numpy(), want["interests"], rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        enc.routing.numpy(), want["routing"], rtol=1e-4, atol=1e-6
    )
    # Routing weights: a distribution over interests on real items only.
    mask = hist > 0
    np.testing.assert_allclose(enc.routing.numpy().sum(1)[mask], 1.0, rtol=1e-5)
    assert (enc.routing.numpy().transpose(0, 2, 1)[~mask] == 0).all()
    # The pieces, through the layers' own outputs.
    items = model.item_embedding(tf.constant(hist))
    fmask = tf.cast(hist > 0, tf.float32)
    profile = model.profile(items, fmask)
    np.testing.assert_allclose(profile.numpy(), want["profile"], rtol=1e-4, atol=1e-6)
    caps, _, attention = model.dual_routing(items, fmask, profile)
    np.testing.assert_allclose(
        attention.numpy(), want["attention"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(caps.numpy(), want["capsules"], rtol=1e-4, atol=1e-6)
    _, gates = model.refinement(caps, profile)
    np.testing.assert_allclose(gates.numpy(), want["gates"], rtol=1e-5, atol=1e-6)


def test_the_profile_conditions_attention_and_refinement():
    model = _model()
    hist = tf.constant(_history(2, seed=3))
    items = model.item_embedding(hist)
    mask = tf.cast(hist > 0, tf.float32)
    p = model.profile(items, mask)
    other = p + 3.0
    caps, _, a = model.dual_routing(items, mask, p)
    caps2, _, a2 = model.dual_routing(items, mask, other)
    assert np.abs(a.numpy() - a2.numpy()).max() > 1e-3
    assert np.abs(caps.numpy() - caps2.numpy()).max() > 1e-4
    m, g = model.refinement(caps, p)
    m2, g2 = model.refinement(caps, other)
    assert np.abs(g.numpy() - g2.numpy()).max() > 1e-3
    assert np.abs(m.numpy() - m2.numpy()).max() > 1e-4
    # The profile comes from the history alone: the same history gives
    # the same interests (no user id, no re-drawn routing logits).
    np.testing.assert_array_equal(
        model.encode({types.HISTORY: hist}).interests.numpy(),
        model.encode({types.HISTORY: hist}).interests.numpy(),
    )


def test_routing_gradient_only_through_the_final_pass():
    # The non-final passes see u and a through a stop-gradient (as the
    # reference), so the gradient of the interests is that of the final
    # pass with its routing weights c held fixed.
    layer = UserGuidedRouting(2, 4, profile_dim=3, iterations=3, seed=5)
    rng = np.random.RandomState(1)
    items = tf.constant(rng.normal(size=(2, 4, 5)).astype(np.float32))
    mask = tf.constant([[1, 1, 1, 0], [1, 1, 1, 1]], tf.float32)
    prof = tf.constant(rng.normal(size=(2, 3)).astype(np.float32))
    probe = tf.constant(rng.normal(size=(2, 2, 5)).astype(np.float32))
    layer(items, mask, prof)
    with tf.GradientTape() as tape:
        caps, routing, _ = layer(items, mask, prof)
        loss = tf.reduce_sum(caps * probe)
    grads = tape.gradient(loss, layer.trainable_variables)
    with tf.GradientTape() as tape:
        a = layer.user_attention(items, prof)
        u = tf.einsum("bld,dfe->bfle", items, layer.kernel)
        caps2 = squash(tf.einsum("bfl,bl,bfld->bfd", tf.stop_gradient(routing), a, u))
        loss2 = tf.reduce_sum(caps2 * probe)
    grads2 = tape.gradient(loss2, layer.trainable_variables)
    np.testing.assert_allclose(caps.numpy(), caps2.numpy(), rtol=1e-5, atol=1e-6)
    assert len(grads) == 5  # W_f, and the attention net's W1 b1 w2 b2
    for g, g2 in zip(grads, grads2):
        assert np.abs(g.numpy()).max() > 0
        np.testing.assert_allclose(g.numpy(), g2.numpy(), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="num_interests"):
        UserGuidedRouting(0, 4, profile_dim=3)
    with pytest.raises(ValueError, match="multiple"):
        InterestRefinement(3, 10, 8)


def test_layer_configs_round_trip():
    r = UserGuidedRouting(2, 4, profile_dim=6, iterations=2, seed=3)
    assert UserGuidedRouting.from_config(r.get_config()).get_config() == r.get_config()
    g = InterestRefinement(3, 6, 8, seed=2)
    assert InterestRefinement.from_config(g.get_config()).get_config() == g.get_config()
    model = _model()
    again = UMI.from_config(model.get_config())
    again.build_for(CFG.max_len)
    assert [v.shape for v in again.trainable_variables] == [
        v.shape for v in model.trainable_variables
    ]


def _np_remi_loss(pos, neg, beta):
    x = np.concatenate([pos[:, None], neg], axis=1)
    x = x - x.max(axis=-1, keepdims=True)
    p, n = np.exp(x[:, 0]), np.exp(x[:, 1:])
    imp = np.exp(beta * x[:, 1:] - (beta * x[:, 1:]).max(-1, keepdims=True))
    return -(x[:, 0] - np.log(p + (imp * n).sum(-1) / imp.mean(-1)))


def test_rec_loss_is_remi_hard_negative_sampled_softmax():
    model = _model()
    hist = _history()
    batch = {
        types.HISTORY: tf.constant(hist),
        types.TARGET: tf.constant([1, 2, 3, 4], tf.int32),
        types.SEED: tf.zeros([4, 2], tf.int64),
    }
    seed = tf.constant([5, 6], tf.int64)
    plain_model = _model(remi_beta=0.0)
    # Scores of order 1 (the Glorot start gives ~0.01), so that the
    # hard-negative weighting visibly changes the loss.
    for m_ in (model, plain_model):
        m_.item_embedding.embeddings.assign(m_.item_embedding.embeddings * 30.0)
    enc = model.encode({types.HISTORY: batch[types.HISTORY]})
    loss = model.rec_loss_per_example(batch, enc, seed).numpy()
    emb = model.item_embedding.embeddings.numpy()
    m = enc.interests.numpy()
    t = emb[[1, 2, 3, 4]]
    user = m[np.arange(4), np.einsum("bfd,bd->bf", m, t).argmax(1)]
    neg_ids = model.sample_items([CFG.sampled_softmax_negatives], seed).numpy()
    want = _np_remi_loss((user * t).sum(-1), user @ emb[neg_ids].T, 0.5)
    np.testing.assert_allclose(loss, want, rtol=1e-4, atol=1e-5)
    # beta = 0 is the plain sampled softmax: a different value.
    plain = plain_model.rec_loss_per_example(batch, enc, seed).numpy()
    np.testing.assert_allclose(
        plain,
        _np_remi_loss((user * t).sum(-1), user @ emb[neg_ids].T, 0.0),
        rtol=1e-4,
        atol=1e-5,
    )
    assert np.abs(plain - loss).max() > 1e-3
    # No regulariser (REMI's routing regulariser is not part of UMI).
    assert float(model.regularization(batch, enc, seed)) == 0.0


def test_loss_falls_on_tiny_data():
    ds, _ = generate(TINY_SYNTHETIC)
    cfg = dataclasses.replace(
        CFG, embedding_dim=16, max_len=10, sampled_softmax_negatives=50
    )
    sampler = pipeline.TrainSampler(ds, cfg.max_len, 32, seed=0)
    tf.keras.utils.set_random_seed(0)
    model = create_model(ds.num_items, cfg, seed=0)
    model.build_for(cfg.max_len)
    first, after = losses_before_after(model, sampler, 5, 8)
    assert after["rec_loss"] < 0.9 * first["rec_loss"]
    assert np.isfinite(after["loss"])


def test_train_py_and_export(tmp_path):
    out, exp = str(tmp_path / "run"), str(tmp_path / "serving")
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "--model",
            "umi",
            "--synthetic_users",
            "320",
            "--synthetic_items",
            "120",
            "--synthetic_groups",
            "6",
            "--embedding_dim",
            "16",
            "--num_interests",
            "3",
            "--max_len",
            "10",
            "--max_steps",
            "20",
            "--eval_every",
            "10",
            "--output_dir",
            out,
            "--export_dir",
            exp,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["model"] == "umi"
    assert 0.0 <= metrics["test"]["recall@50"] <= 1.0
    meta = json.load(
        open(glob.glob(os.path.join(exp, "*", "assets.extra", "*.json"))[0])
    )
    assert meta["model"] == "umi" and meta["num_interests"] == 3
    # The SavedModel serves what the evaluator ranks for the same users.
    config, ds, model = training.load_run(out, log=lambda m: None)
    hist = pipeline.eval_examples(ds, "test", 10).history[:8]
    served = tf.saved_model.load(glob.glob(os.path.join(exp, "*"))[0])
    got = served.signatures["serving_default"](
        history=tf.constant(ds.item_ids[hist].astype(str))
    )
    k = got["scores"].shape[1]
    scores, items = retrieval.score_and_top_k_fn(
        training.make_query_fn(model)(tf.constant(hist)),
        model.item_embedding.embeddings,
        k,
        None,
    )
    np.testing.assert_allclose(
        got["scores"].numpy(), scores.numpy(), rtol=1e-5, atol=1e-6
    )
    assert (
        got["item_ids"].numpy().astype(str) == ds.item_ids[items.numpy()]
    ).mean() > 0.99
