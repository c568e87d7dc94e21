"""The baselines' and ablations' own maths against NumPy / hand values.

Shapes and a falling loss for every registered model are covered by
test_models' parametrisation; this file checks what each model adds: the
sampled softmax (and REMI's hard-negative weighting), the label-aware
readouts, ComiRec-SA's self-attention, GRU4Rec's masked last state, the
routing-variation regulariser (eq. 1), the backward flow (eq. 2), and the
partition task as a plugin of every multi-interest baseline.
"""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import model_specs, pipeline, types
from dismir_tf.config import ModelConfig
from dismir_tf.cooccurrence import PositiveSampler, build_cooccurrence
from dismir_tf.data.synthetic import generate
from dismir_tf.errors import ConfigError
from dismir_tf.layers import SelfAttentiveExtractor
from dismir_tf.models import (
    MIND,
    create_model,
    resolve_config,
    takes_partition_by_default,
)
from dismir_tf.models.regularizers import (
    backward_flow_loss,
    representative_items,
    routing_variation,
)
from dismir_tf.models.sampled_softmax import sampled_softmax_loss
from tests.helpers import TINY_SYNTHETIC

CFG = ModelConfig.from_settings(
    name="comirec-sa",
    embedding_dim=8,
    num_interests=3,
    max_len=6,
    partition_weight=0.0,
    partition_negatives=10,
    sampled_softmax_negatives=7,
)
BASELINES = ("mind", "comirec-dr", "comirec-sa", "remi")


def _np_log_softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def _np_remi_loss(pos, neg, beta):
    """REMI's NCELoss.sampled_softmax_loss, written as in its code."""
    x = np.concatenate([pos[:, None], neg], axis=1)
    x = x - x.max(axis=-1, keepdims=True)
    p, n = np.exp(x[:, 0]), np.exp(x[:, 1:])
    imp = np.exp(beta * x[:, 1:] - (beta * x[:, 1:]).max(-1, keepdims=True))
    ng = (imp * n).sum(-1) / imp.mean(-1)
    return -(x[:, 0] - np.log(p + ng))


def _history(b=4, seed=0):
    rng = np.random.RandomState(seed)
    lengths = rng.randint(2, CFG.max_len + 1, size=b)
    hist = np.zeros([b, CFG.max_len], np.int32)
    for i, n in enumerate(lengths):
        hist[i, :n] = rng.randint(1, 30, size=n)
    return tf.constant(hist)


def _batch(b=4, seed=0):
    hist = _history(b, seed)
    return {
        types.HISTORY: hist,
        types.HISTORY_MASK: tf.cast(hist > 0, tf.float32),
        types.TARGET: tf.constant(np.arange(1, b + 1), tf.int32),
        types.SEED: tf.zeros([b, 2], tf.int64),
    }


def _model(name, **kw):
    if name == "mind-soft":
        model = MIND(40, CFG.with_model("mind", **kw), seed=1, hard_readout=False)
    else:
        model = create_model(40, CFG.with_model(name, **kw), seed=1)
    model.build_for(CFG.max_len)
    return model


# ------------------------------------------------------- sampled softmax
@pytest.mark.parametrize("beta", [0.0, 0.1, 1.0, 10.0])
def test_sampled_softmax_loss_matches_remi_formula(beta):
    rng = np.random.RandomState(int(beta * 10))
    pos = rng.normal(size=5).astype(np.float32) * 3
    neg = rng.normal(size=(5, 9)).astype(np.float32) * 3
    loss = sampled_softmax_loss(tf.constant(pos), tf.constant(neg), beta)
    np.testing.assert_allclose(
        loss.numpy(), _np_remi_loss(pos, neg, beta), rtol=1e-5, atol=1e-5
    )
    if beta == 0.0:
        # The plain sampled softmax: cross-entropy with the target first.
        plain = -_np_log_softmax(np.concatenate([pos[:, None], neg], 1))[:, 0]
        np.testing.assert_allclose(loss.numpy(), plain, rtol=1e-5)


def test_hard_negative_weighting_hand_case():
    # s+ = 0, negatives s = (0, log 2), S = 2, beta = 1:
    # w = softmax(0, log 2) = (1/3, 2/3);
    # S * sum_j w_j e^{s_j} = 2 * (1/3 * 1 + 2/3 * 2) = 10/3;
    # loss = log(1 + 10/3) = log(13/3).  Unweighted: log(1 + 1 + 2) = log 4.
    pos = tf.constant([0.0])
    neg = tf.constant([[0.0, math.log(2.0)]])
    assert float(sampled_softmax_loss(pos, neg, 1.0)[0]) == pytest.approx(
        math.log(13 / 3), rel=1e-6
    )
    assert float(sampled_softmax_loss(pos, neg, 0.0)[0]) == pytest.approx(
        math.log(4.0), rel=1e-6
    )


@pytest.mark.parametrize(
    "name", ["gru4rec", "mind", "mind-soft", "comirec-dr", "comirec-sa", "remi"]
)
def test_model_rec_loss_matches_numpy(name):
    """Readout against the target, S shared uniform negatives from the
    step seed, (weighted) sampled softmax."""
    # beta is REMI's own setting (the others take none: refused).
    model = _model(name, **({"remi_beta": 0.5} if name == "remi" else {}))
    batch = _batch()
    seed = tf.constant([5, 6], tf.int64)
    enc = model.encode({types.HISTORY: batch[types.HISTORY]})
    loss = model.rec_loss_per_example(batch, enc, seed).numpy()

    emb = model.item_embedding.embeddings.numpy()
    m = enc.interests.numpy()  # [B, F, d]
    t = emb[batch[types.TARGET].numpy()]  # [B, d]
    logits = np.einsum("bfd,bd->bf", m, t)
    if name == "gru4rec":
        user = m[:, 0]
    elif name == "mind-soft":  # soft, p = 1
        a = np.exp(_np_log_softmax(logits))
        user = np.einsum("bf,bfd->bd", a, m)
    else:  # hard argmax (MIND's default)
        user = m[np.arange(len(m)), logits.argmax(1)]
    negatives = model.sample_items([CFG.sampled_softmax_negatives], seed).numpy()
    assert negatives.shape == (CFG.sampled_softmax_negatives,)
    assert negatives.min() >= 1 and negatives.max() <= 40
    pos = (user * t).sum(-1)
    neg = user @ emb[negatives].T
    beta = 0.5 if name == "remi" else 0.0
    np.testing.assert_allclose(
        loss, _np_remi_loss(pos, neg, beta), rtol=1e-4, atol=1e-5
    )


def test_remi_differs_from_comirec_sa_only_by_beta_and_regulariser():
    remi, sa = _model("remi"), _model("comirec-sa")
    assert remi.negative_beta == CFG.with_model("remi").own.remi_beta
    assert sa.negative_beta == 0.0
    for a, b in zip(remi.trainable_variables, sa.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    zero = _model("remi", remi_beta=0.0, routing_variance_weight=0.0)
    batch = _batch()
    la = {k: float(v) for k, v in zero.compute_losses(batch).items()}
    lb = {k: float(v) for k, v in sa.compute_losses(batch).items()}
    assert la == pytest.approx(lb, rel=1e-6)


# --------------------------------------------------------------- readouts
def test_hard_readout_picks_the_interest_closest_to_the_target():
    model = _model("comirec-sa")
    interests = tf.constant(
        [[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]]
    )
    target = tf.constant([[0.2, 0.9], [-0.5, 0.1]])
    # m . t = (0.2, 0.9, -0.2) -> interest 1; (-0.5, 0.1, 0.5) -> interest 2
    out = model.label_attention(interests, target).numpy()
    np.testing.assert_allclose(out, [[0.0, 1.0], [-1.0, 0.0]])


def test_mind_soft_readout_hand_case():
    assert _model("mind").hard_readout  # the reference's default
    model = _model("mind-soft")
    again = MIND.from_config(model.get_config())
    assert not again.hard_readout and not again.label_attention.hard
    interests = tf.constant([[[1.0, 0.0], [0.0, 2.0]]])
    target = tf.constant([[math.log(3.0), 0.5 * math.log(2.0)]])
    # logits (log 3, log 2) -> weights (3/5, 2/5) -> (3/5, 4/5).
    out = model.label_attention(interests, target).numpy()
    np.testing.assert_allclose(out, [[0.6, 0.8]], rtol=1e-6)


# ------------------------------------------------------------- extractors
def test_comirec_sa_attention_matches_numpy():
    layer = SelfAttentiveExtractor(3, 5, seed=4)
    rng = np.random.RandomState(0)
    items = rng.normal(size=(2, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.float32)
    interests, attention = layer(tf.constant(items), tf.constant(mask))
    w1, w2, pos = (layer.w1.numpy(), layer.w2.numpy(), layer.positions.numpy())
    assert w1.shape == (4, 16) and w2.shape == (16, 3)  # d_a = 4d
    # A = softmax_l(W2^T tanh(W1^T (h_l + p_l))), padding excluded.
    logits = np.einsum("blh,hf->bfl", np.tanh((items + pos) @ w1), w2)
    logits = np.where(mask[:, None] > 0, logits, -np.inf)
    a = np.exp(_np_log_softmax(logits))
    np.testing.assert_allclose(attention.numpy(), a, rtol=1e-5, atol=1e-6)
    # Interests pool the plain embeddings (positions only steer A).
    np.testing.assert_allclose(
        interests.numpy(), np.einsum("bfl,bld->bfd", a, items), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(attention.numpy().sum(-1), 1.0, rtol=1e-6)


def test_comirec_sa_without_positions_and_config_round_trip():
    layer = SelfAttentiveExtractor(2, 4, add_positions=False, seed=1)
    again = SelfAttentiveExtractor.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    x = tf.ones([1, 4, 3])
    _, attention = layer(x, tf.ones([1, 4]))
    # Identical items and no positions: uniform attention.
    np.testing.assert_allclose(attention.numpy(), 0.25, rtol=1e-6)
    with pytest.raises(ValueError, match="num_interests"):
        SelfAttentiveExtractor(0, 4)


def test_gru4rec_user_is_the_state_after_the_last_real_item():
    model = _model("gru4rec")
    hist = tf.constant([[3, 7, 9, 0, 0, 0]], tf.int32)
    user = model.encode({types.HISTORY: hist}).interests[:, 0].numpy()
    items = model.item_embedding(hist[:, :3])
    expected = model.dense(model.gru(items)).numpy()  # no padding at all
    np.testing.assert_allclose(user, expected, rtol=1e-5, atol=1e-6)


def test_mind_routing_start_is_fixed_and_capsule_is_shared_bilinear():
    model = _model("mind")
    hist = _history()
    a = model.encode({types.HISTORY: hist}).interests.numpy()
    b = model.encode({types.HISTORY: hist}).interests.numpy()
    np.testing.assert_array_equal(a, b)  # no re-drawn logits
    assert model.capsule.transform == "shared"
    assert model.capsule.iterations == 3
    dr = _model("comirec-dr")
    assert (dr.capsule.transform, dr.capsule.routing_init, dr.capsule.iterations) == (
        "per_position_interest",
        "zeros",
        3,
    )


# ------------------------------------------------ eq. 1: routing variation
def test_routing_variation_hand_matrix():
    # One user, F = 2 interests over L = 4 positions.
    # Interest 0: (1, 0, 0, 0): mean 1/4, centred (3/4, -1/4, -1/4, -1/4),
    #   sum of squares 9/16 + 3/16 = 3/4.  Interest 1: uniform -> 0.
    # diag(D) = (3/4, 0); ||diag(D)||^2 = 9/16; REMI divides D by d = 2:
    # (3/8, 0) -> 9/64.
    routing = tf.constant([[[1.0, 0.0, 0.0, 0.0], [0.25] * 4]])
    assert float(routing_variation(routing, 1.0)[0]) == pytest.approx(9 / 16)
    assert float(routing_variation(routing, 2.0)[0]) == pytest.approx(9 / 64)


def test_routing_variation_matches_eq1_and_remi_code():
    rng = np.random.RandomState(3)
    a = rng.dirichlet(np.ones(6), size=(4, 3)).astype(np.float32)  # [B,F,L]
    # Eq. 1 per user with B = a_u^T [L, F]: D = (B - B_bar)^T (B - B_bar).
    expected = []
    for u in range(4):
        bmat = a[u].T
        centred = bmat - bmat.mean(axis=0, keepdims=True)
        d = centred.T @ centred / 8.0
        expected.append((np.diag(d) ** 2).sum())
    got = routing_variation(tf.constant(a), 8.0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_remi_regulariser_is_weight_times_batch_sum():
    model = _model("remi", routing_variance_weight=100.0)
    batch = _batch()
    enc = model.encode({types.HISTORY: batch[types.HISTORY]})
    att = enc.routing.numpy()
    np.testing.assert_allclose(att.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(
        att[batch[types.HISTORY].numpy()[:, None].repeat(3, 1) == 0], 0.0
    )
    expected = 100.0 * routing_variation(enc.routing, 8.0).numpy().sum()
    got = float(model.regularization(batch, enc, tf.constant([0, 0])))
    assert got == pytest.approx(expected, rel=1e-5)
    mir_rv = _model("mir-rv", routing_variance_weight=100.0)
    enc = mir_rv.encode({types.HISTORY: batch[types.HISTORY]})
    expected = 100.0 * routing_variation(enc.routing, 8.0).numpy().sum()
    assert float(mir_rv.regularization(batch, enc, None)) == pytest.approx(
        expected, rel=1e-5
    )


# --------------------------------------------------- eq. 2: backward flow
def test_backward_flow_hand_case():
    interests = tf.constant([[[1.0, 0.0], [0.0, 1.0]]])  # m1, m2
    items = tf.constant([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [9.0, 9.0]]])  # last: pad
    mask = tf.constant([[1.0, 1.0, 1.0, 0.0]])
    # The padding position has the largest weight and must be ignored.
    routing = tf.constant([[[0.9, 0.1, 0.5, 5.0], [0.2, 0.3, 0.8, 5.0]]])
    assert representative_items(routing, mask).numpy().tolist() == [[0, 2]]
    # m1 . e = (1, 0, 1), label 0: -log(e / (e + 1 + e)) = log(2e + 1) - 1;
    # m2 . e = (0, 1, 1), label 2: the same value.
    expected = 2 * (math.log(2 * math.e + 1) - 1)
    got = backward_flow_loss(interests, items, routing, mask)
    assert float(got[0]) == pytest.approx(expected, rel=1e-6)


def test_mir_bf_regulariser_uses_capsule_routing():
    model = _model("mir-bf", backward_flow_weight=0.3)
    assert model.model_config.partition_weight == 0.0
    batch = _batch()
    enc = model.encode({types.HISTORY: batch[types.HISTORY]})
    emb = model.item_embedding.embeddings.numpy()
    hist = batch[types.HISTORY].numpy()
    m, routing = enc.interests.numpy(), enc.routing.numpy()
    total = 0.0
    for u in range(len(hist)):
        real = np.flatnonzero(hist[u])
        for f in range(m.shape[1]):
            scores = emb[hist[u, real]] @ m[u, f]
            rep = real[np.argmax(routing[u, f, real])]
            total -= _np_log_softmax(scores)[list(real).index(rep)]
    expected = 0.3 * total / len(hist)
    got = float(model.regularization(batch, enc, None))
    assert got == pytest.approx(expected, rel=1e-4)


# ----------------------------------------------------------------- plugin
@pytest.fixture(scope="module")
def partition_batch():
    ds, _ = generate(TINY_SYNTHETIC)
    sampler = pipeline.TrainSampler(
        ds,
        CFG.max_len,
        16,
        seed=0,
        positive_sampler=PositiveSampler(build_cooccurrence(ds)),
    )
    return ds, sampler.sample(tf.constant(0, tf.int64))


@pytest.mark.parametrize("name", BASELINES)
def test_partition_task_plugs_into_every_multi_interest_baseline(partition_batch, name):
    ds, batch = partition_batch
    model = create_model(
        ds.num_items, dataclasses.replace(CFG, name=name, partition_weight=0.5), seed=0
    )
    model.build_for(CFG.max_len)
    assert model.model_config.partition_weight == 0.5
    losses = {k: float(v) for k, v in model.compute_losses(batch).items()}
    assert losses["partition_loss"] > 0
    assert losses["loss"] == pytest.approx(
        losses["rec_loss"] + losses["reg_loss"] + 0.5 * losses["partition_loss"],
        rel=1e-5,
    )
    if name == "remi":
        assert losses["reg_loss"] > 0


def test_which_models_take_the_partition_task_by_default():
    for name in ("dismir", "dismir-wo-dpi"):
        assert takes_partition_by_default(name)
    for name in BASELINES + ("dnn", "gru4rec", "mir", "mir-rv", "mir-bf"):
        assert not takes_partition_by_default(name)
    # Single-interest models and the ablations never take it: a weight is
    # refused, not silently zeroed ...
    for name in ("dnn", "gru4rec", "mir", "mir-rv", "mir-bf"):
        assert ModelConfig.from_settings(name=name).partition_weight == 0.0
        with pytest.raises(ConfigError, match="does not act on"):
            ModelConfig.from_settings(name=name, partition_weight=1.0)
    # ... the multi-interest baselines are off by default and take it when
    # asked (the plugin) ...
    for name in BASELINES:
        assert ModelConfig.from_settings(name=name).partition_weight == 0.0
    for name in BASELINES:
        assert (
            resolve_config(
                ModelConfig.from_settings(name=name, partition_weight=1.0)
            ).partition_weight
            == 1.0
        )
    # ... and DisMIR takes its spec's lambda unless told otherwise.
    for name in ("dismir", "dismir-wo-dpi"):
        assert ModelConfig.from_settings(name=name).partition_weight == (
            model_specs.DISMIR_PARTITION_WEIGHT
        )


@pytest.mark.parametrize("name", ("gru4rec",) + BASELINES)
def test_baselines_initialise_item_embeddings_as_the_reference(name):
    # torch kaiming_normal_ on [N, d]: N(0, 2 / d); the base class (DisMIR)
    # uses N(0, 1 / d).
    model = create_model(2000, CFG.with_model(name, embedding_dim=32), seed=0)
    model.build_for(CFG.max_len)
    std = model.item_embedding.embeddings.numpy().std()
    assert std == pytest.approx(math.sqrt(2 / 32), rel=0.03)
    dismir = create_model(2000, CFG.with_model("dismir", embedding_dim=32))
    dismir.build_for(CFG.max_len)
    assert dismir.item_embedding.embeddings.numpy().std() == pytest.approx(
        math.sqrt(1 / 32), rel=0.03
    )
