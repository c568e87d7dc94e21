"""DisMIR's capsule design space (the collapse issue), each option against a
NumPy transcription, and the config / preset resolution around it."""

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import types
from dismir_tf.capsule_config import CAPSULE_PRESETS, DEFAULT_CAPSULE
from dismir_tf.config import ModelConfig, RunConfig
from dismir_tf.errors import ConfigError
from dismir_tf.layers import CapsuleInterestExtractor
from dismir_tf.models import create_model, resolve_config

B, L, D, F = 3, 6, 5, 3


def _inputs(seed):
    rng = np.random.RandomState(seed)
    items = rng.randn(B, L, D).astype(np.float32)
    mask = np.ones((B, L), np.float32)
    mask[0, 4:] = 0
    mask[2, 2:] = 0
    return items, mask


def _squash(s):
    n = (s**2).sum(-1, keepdims=True)
    return n / (1 + n) / np.sqrt(n + 1e-9) * s


def _softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _np_identity_capsule(
    items,
    mask,
    logits,
    iterations,
    axis,
    padding_in_softmax,
    temperature,
    squash_output,
):
    """The identity-transform capsule loop (paper 3.2 with W = I)."""
    u = np.repeat(items[:, None], logits.shape[1], axis=1)  # [B, F, L, d]
    if padding_in_softmax:
        u = u * mask[:, None, :, None]
    valid = mask[:, None, :]
    b = logits.copy()
    for it in range(iterations):
        z = b / temperature
        if axis == "interests":
            w = _softmax(z, 1) * valid
        elif padding_in_softmax:
            w = _softmax(z, 2) * valid
        else:
            w = _softmax(np.where(valid > 0, z, -1e9), 2) * valid
        m = np.einsum("bfl,bfld->bfd", w, u)
        v = _squash(m)
        if it < iterations - 1:
            b = b + np.einsum("bfld,bfd->bfl", u, v)
    return (v if squash_output else m), w


@pytest.mark.parametrize(
    "axis,padding", [("interests", False), ("positions", False), ("positions", True)]
)
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
@pytest.mark.parametrize("temperature", [1.0, 0.1])
@pytest.mark.parametrize("squash_output", [True, False])
@pytest.mark.parametrize("iterations", [1, 2])
def test_prototype_options_match_numpy(
    axis, padding, similarity, temperature, squash_output, iterations
):
    items, mask = _inputs(1)
    layer = CapsuleInterestExtractor(
        F,
        L,
        transform="identity",
        routing_init="prototype",
        softmax_over=axis,
        padding_in_softmax=padding,
        similarity=similarity,
        temperature=temperature,
        squash_output=squash_output,
        iterations=iterations,
        seed=3,
    )
    got_v, got_w = layer(tf.constant(items), tf.constant(mask))
    p = layer.prototypes.numpy()
    u = items * (mask[:, :, None] if padding else 1.0)
    if similarity == "dot":
        logits = np.einsum("bld,fd->bfl", u, _squash(p))
    else:
        un = u / np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), 1e-12)
        pn = p / np.linalg.norm(p, axis=-1, keepdims=True)
        logits = np.einsum("bld,fd->bfl", un, pn)
    want_v, want_w = _np_identity_capsule(
        items, mask, logits, iterations, axis, padding, temperature, squash_output
    )
    np.testing.assert_allclose(got_w.numpy(), want_w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_v.numpy(), want_v, rtol=1e-4, atol=1e-5)


def test_temperature_sharpens_the_routing():
    items, mask = _inputs(2)
    soft = CapsuleInterestExtractor(F, L, similarity="cosine", seed=0)
    sharp = CapsuleInterestExtractor(
        F, L, similarity="cosine", temperature=0.05, seed=0
    )
    _, w1 = soft(tf.constant(items), tf.constant(mask))
    _, w2 = sharp(tf.constant(items), tf.constant(mask))
    real = mask > 0
    max1 = w1.numpy().max(1)[real].mean()
    max2 = w2.numpy().max(1)[real].mean()
    assert max2 > max1 + 0.2, (max1, max2)


def test_random_per_call_draws_from_the_seed_in_training_only():
    items, mask = _inputs(3)
    layer = CapsuleInterestExtractor(
        F,
        L,
        routing_init="random_per_call",
        softmax_over="positions",
        padding_in_softmax=True,
        seed=5,
    )
    x, m = tf.constant(items), tf.constant(mask)
    seed_a = tf.constant([1, 2], tf.int32)
    seed_b = tf.constant([1, 3], tf.int32)
    va, wa = layer(x, m, seed=seed_a)
    va2, _ = layer(x, m, seed=seed_a)
    vb, _ = layer(x, m, seed=seed_b)
    np.testing.assert_array_equal(va.numpy(), va2.numpy())
    assert np.abs(va.numpy() - vb.numpy()).max() > 1e-3
    # The training draw is torch.randn-like: N(0, 1) per (user, f, l).
    logits = tf.random.stateless_normal([B, F, L], seed_a, alg="philox")
    want_v, want_w = _np_identity_capsule(
        items, mask, logits.numpy(), 1, "positions", True, 1.0, True
    )
    np.testing.assert_allclose(wa.numpy(), want_w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(va.numpy(), want_v, rtol=1e-4, atol=1e-6)
    # Without a seed (evaluation, serving): one fixed [F, L] draw, so a
    # user's interests do not depend on the batch around it.
    v_eval, _ = layer(x, m)
    v_one, _ = layer(x[1:2], m[1:2])
    np.testing.assert_allclose(v_eval.numpy()[1:2], v_one.numpy(), rtol=1e-5, atol=1e-6)
    fixed = layer.initial_logits.numpy().T[None].repeat(B, 0)
    want_eval, _ = _np_identity_capsule(
        items, mask, fixed, 1, "positions", True, 1.0, True
    )
    np.testing.assert_allclose(v_eval.numpy(), want_eval, rtol=1e-4, atol=1e-6)


def test_detached_routed_items_pass_no_gradient():
    items, mask = _inputs(4)
    x = tf.constant(items)
    for detach, expect_grad in ((False, True), (True, False)):
        layer = CapsuleInterestExtractor(
            F,
            L,
            routing_init="random",
            softmax_over="positions",
            padding_in_softmax=True,
            detach_routed_items=detach,
            seed=0,
        )
        with tf.GradientTape() as tape:
            tape.watch(x)
            v, _ = layer(x, tf.constant(mask))
            loss = tf.reduce_sum(v)
        grad = tape.gradient(loss, x)
        has = grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0
        assert has == expect_grad, detach


@pytest.mark.parametrize("recency", ["learned", "learned_per_interest"])
@pytest.mark.parametrize("iterations", [1, 2])
def test_learned_recency_weights_match_numpy(iterations, recency):
    """m_f = sum_i b_if w_{r(i)(,f)} u_i, r(i) = n - 1 - i on right-padded
    histories; b_if itself is untouched."""
    items, mask = _inputs(2)
    layer = CapsuleInterestExtractor(
        F,
        L,
        transform="identity",
        routing_init="prototype",
        similarity="cosine",
        temperature=0.1,
        iterations=iterations,
        recency=recency,
        seed=3,
    )
    layer(tf.constant(items), tf.constant(mask))  # builds
    shape = (L,) if recency == "learned" else (L, F)
    a = np.random.RandomState(4).randn(*shape).astype(np.float32)
    if recency == "learned":
        a = np.repeat(a[:, None], F, axis=1)  # [L, F]
    else:
        layer.recency_logits.assign(a)
    if recency == "learned":
        layer.recency_logits.assign(a[:, 0])
    got_v, got_w = layer(tf.constant(items), tf.constant(mask))
    plain = CapsuleInterestExtractor(
        F,
        L,
        transform="identity",
        routing_init="prototype",
        similarity="cosine",
        temperature=0.1,
        iterations=iterations,
        seed=3,
    )
    _, plain_w = plain(tf.constant(items), tf.constant(mask))
    p = layer.prototypes.numpy()
    un = items / np.linalg.norm(items, axis=-1, keepdims=True)
    pn = p / np.linalg.norm(p, axis=-1, keepdims=True)
    b = np.einsum("bld,fd->bfl", un, pn)
    n = mask.sum(1).astype(int)
    w_pos = np.zeros((B, F, L), np.float32)
    for u_ in range(B):
        for i in range(n[u_]):
            r = n[u_] - 1 - i
            w_pos[u_, :, i] = np.log1p(np.exp(a[r])) / np.log(2.0)
    u = np.repeat(items[:, None], F, axis=1)
    for it in range(iterations):
        w = _softmax(b / 0.1, 1) * mask[:, None]
        m = np.einsum("bfl,bfld->bfd", w * w_pos, u)
        v = _squash(m)
        if it < iterations - 1:
            b = b + np.einsum("bfld,bfd->bfl", u, v)
    np.testing.assert_allclose(got_w.numpy(), w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_v.numpy(), v, rtol=1e-4, atol=1e-5)
    if iterations == 1:  # the routing weights do not see the recency
        np.testing.assert_allclose(got_w.numpy(), plain_w.numpy(), rtol=1e-5, atol=1e-6)
    # And the recency weights change what the interests collect.
    plain_v, _ = plain(tf.constant(items), tf.constant(mask))
    assert np.abs(got_v.numpy() - plain_v.numpy()).max() > 1e-3


@pytest.mark.parametrize("recency", ["learned", "learned_per_interest"])
def test_recency_weights_start_at_one_and_learn(recency):
    items, mask = _inputs(5)
    kw = dict(
        transform="identity",
        routing_init="prototype",
        similarity="cosine",
        temperature=0.1,
        seed=3,
    )
    with_r = CapsuleInterestExtractor(F, L, recency=recency, **kw)
    without = CapsuleInterestExtractor(F, L, **kw)
    v1, _ = with_r(tf.constant(items), tf.constant(mask))
    v0, _ = without(tf.constant(items), tf.constant(mask))
    np.testing.assert_allclose(v1.numpy(), v0.numpy(), rtol=1e-5, atol=1e-6)
    with tf.GradientTape() as tape:
        v, _ = with_r(tf.constant(items), tf.constant(mask))
        loss = tf.reduce_sum(v[:, 0] * tf.constant(items[:, 0]))
    grad = tf.convert_to_tensor(tape.gradient(loss, with_r.recency_logits)).numpy()
    assert np.abs(grad).max() > 1e-4
    assert with_r.recency_logits.shape == ((L,) if recency == "learned" else (L, F))


@pytest.mark.parametrize("recency", ["", "none", "learned", "learned_per_interest"])
def test_models_build_the_capsule_with_the_configured_recency(recency):
    cfg = resolve_config(
        ModelConfig.from_settings(
            name="dismir",
            embedding_dim=D,
            num_interests=F,
            max_len=L,
            capsule_recency=recency,
        )
    )
    model = create_model(30, cfg, seed=0)
    model.encode({types.HISTORY: tf.constant(np.ones((2, L), np.int32))})
    want = recency or DEFAULT_CAPSULE["capsule_recency"]
    assert model.capsule.recency == want
    assert hasattr(model.capsule, "recency_logits") == (want != "none")


def test_layer_rejects_bad_options():
    with pytest.raises(ValueError, match="temperature"):
        CapsuleInterestExtractor(F, L, temperature=0.0)
    with pytest.raises(ValueError, match="similarity"):
        CapsuleInterestExtractor(F, L, similarity="euclid")
    with pytest.raises(ValueError, match="recency"):
        CapsuleInterestExtractor(F, L, recency="decay")


def test_round_trip_keeps_the_new_options():
    layer = CapsuleInterestExtractor(
        F,
        L,
        routing_init="random_per_call",
        softmax_over="positions",
        temperature=0.3,
        similarity="cosine",
        detach_routed_items=True,
        squash_output=False,
        recency="learned",
    )
    again = CapsuleInterestExtractor.from_config(layer.get_config())
    for key in (
        "routing_init",
        "softmax_over",
        "temperature",
        "similarity",
        "detach_routed_items",
        "squash_output",
        "recency",
    ):
        assert getattr(again, key) == getattr(layer, key)


# ------------------------------------------------------------ config, presets
def test_default_capsule_is_filled_in_and_preset_applies():
    cfg = resolve_config(ModelConfig.from_settings(name="dismir"))
    for k, v in DEFAULT_CAPSULE.items():
        assert cfg.params[k] == v
    remi = resolve_config(
        ModelConfig.from_settings(name="mir", capsule_preset="paper-remi")
    )
    for k, v in CAPSULE_PRESETS["paper-remi"].items():
        assert (remi.retrieval if k == "retrieval" else remi.params[k]) == v
    assert remi.params["capsule_preset"] == "paper-remi"
    assert remi.partition_weight == 0.0
    # Resolving is idempotent (a recorded config resolves to itself).
    assert resolve_config(remi) == remi


def test_preset_conflict_and_options_on_other_models_are_errors():
    with pytest.raises(ConfigError, match="routing_softmax"):
        resolve_config(
            ModelConfig.from_settings(
                name="dismir", capsule_preset="paper-remi", routing_softmax="interests"
            )
        )
    with pytest.raises(
        ConfigError, match="readout: neither a model setting nor a parameter of 'remi'"
    ):
        ModelConfig.from_settings(name="remi", readout="max")
    with pytest.raises(ConfigError, match="'remi' has no parameter readout"):
        ModelConfig(name="remi", params={"readout": "max"})
    with pytest.raises(ConfigError, match="readout"):
        ModelConfig.from_settings(readout="mean")


def test_old_run_configs_read_as_the_capsule_they_were_trained_with():
    # config.json as written before the capsule options existed: flat
    # model fields, no capsule, no params.
    old = RunConfig().to_dict()
    old["model"] = {k: v for k, v in old["model"].items() if k != "params"}
    cfg = RunConfig.from_dict(old).model
    assert (
        cfg.params["routing_init"],
        cfg.params["routing_softmax"],
        cfg.params["readout"],
        cfg.params["interest_norm"],
        cfg.params["routing_temperature"],
    ) == ("prototype", "interests", "fused", "squash", 1.0)
    assert cfg.params["capsule_recency"] == "none"
    # Written after the capsule options (flat fields) but before the
    # recency option: the capsule it was trained with, no recency weights.
    flat = dict(
        old["model"],
        **{
            k: v
            for k, v in resolve_config(ModelConfig()).params.items()
            if k != "capsule_recency"
        },
        params={},
    )
    back = RunConfig.from_dict(dict(old, model=flat)).model
    assert back.params["capsule_recency"] == "none"
    assert back.params["routing_temperature"] == 0.02
    # Written with params (this version): read as written.
    now = RunConfig(model=resolve_config(ModelConfig())).to_dict()
    assert RunConfig.from_dict(now).to_dict() == now


# ------------------------------------------------------------------ readouts
def _model(readout, **kw):
    cfg = resolve_config(
        ModelConfig.from_settings(
            name="dismir",
            embedding_dim=D,
            num_interests=F,
            max_len=L,
            readout=readout,
            **kw,
        )
    )
    model = create_model(30, cfg, seed=0)
    model.build_for(L)
    return model


@pytest.mark.parametrize("readout", ["fused", "max", "weighted_max"])
def test_readout_scores_match_numpy(readout):
    model = _model(readout)
    rng = np.random.RandomState(0)
    history = rng.randint(1, 31, size=(4, L)).astype(np.int32)
    history[1, 3:] = 0
    target = rng.randint(1, 31, size=4).astype(np.int32)
    enc = model.encode({types.HISTORY: tf.constant(history)})
    m, a = enc.interests.numpy(), enc.weights.numpy()
    emb = model.item_embedding.embeddings.numpy()
    per_f = np.einsum("bfd,nd->bfn", m, emb)  # [B, F, N+1]
    if readout == "fused":
        want = np.einsum("bf,bfn->bn", a, per_f)
    elif readout == "max":
        want = per_f.max(1)
    else:
        want = (F * a[:, :, None] * per_f).max(1)
    queries = model.query_vectors(tf.constant(history)).numpy()
    got = np.einsum("bqd,nd->bqn", queries, emb).max(1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert model.retrieval == (types.FUSED if readout == "fused" else types.MERGE)
    # The training loss scores the target with the same readout.
    batch = {types.TARGET: tf.constant(target)}
    seed = tf.constant([3, 4], tf.int32)
    loss = model.rec_loss_per_example(batch, enc, seed).numpy()
    cand = model.sample_items(
        [4, model.model_config.hard_negative_candidates], seed
    ).numpy()
    pos = want[np.arange(4), target]
    neg = np.where(
        cand == target[:, None], -1e9, np.take_along_axis(want, cand, 1)
    ).max(1)
    np.testing.assert_allclose(loss, np.log1p(np.exp(neg - pos)), rtol=1e-4, atol=1e-5)


def test_paper_remi_preset_trains_with_fresh_draws_and_evaluates_fixed():
    cfg = resolve_config(
        ModelConfig.from_settings(
            name="dismir",
            embedding_dim=D,
            num_interests=F,
            max_len=L,
            capsule_preset="paper-remi",
            partition_weight=0.0,
        )
    )
    model = create_model(30, cfg, seed=0)
    model.build_for(L)
    history = tf.constant(
        np.random.RandomState(1).randint(1, 31, size=(4, L)).astype(np.int32)
    )
    q1 = model.query_vectors(history).numpy()
    q2 = model.query_vectors(history).numpy()
    np.testing.assert_array_equal(q1, q2)  # evaluation: fixed draw
    assert q1.shape == (4, F, D)  # merge retrieval
    e1 = model.encode({types.HISTORY: history}, True, seed=tf.constant([0, 1]))
    e2 = model.encode({types.HISTORY: history}, True, seed=tf.constant([0, 2]))
    assert np.abs(e1.interests.numpy() - e2.interests.numpy()).max() > 1e-4
    # No gradient reaches the history embeddings through the interests.
    with tf.GradientTape() as tape:
        enc = model.encode({types.HISTORY: history}, True, seed=tf.constant([0, 1]))
        loss = tf.reduce_sum(enc.interests)
    grad = tape.gradient(loss, model.item_embedding.embeddings)
    assert (
        grad is None or float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(grad)))) == 0.0
    )


def test_legacy_default_is_unchanged_by_the_refactor():
    """The fused readout's loss equals the base class's eq. 5 loss."""
    from dismir_tf.models.base import RetrievalModel

    model = _model("fused")
    history = tf.constant(
        np.random.RandomState(2).randint(1, 31, size=(4, L)).astype(np.int32)
    )
    target = tf.constant([1, 5, 7, 30], tf.int32)
    enc = model.encode({types.HISTORY: history})
    seed = tf.constant([5, 6], tf.int32)
    got = model.rec_loss_per_example({types.TARGET: target}, enc, seed)
    want = RetrievalModel.rec_loss_per_example(model, {types.TARGET: target}, enc, seed)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5)
    assert model.model_config.params["readout"] == "fused"


@pytest.mark.parametrize("readout", ["fused", "max", "weighted_max"])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_sampled_softmax_objective_matches_numpy(readout, beta):
    """rec_loss='sampled_softmax': REMI's IHN loss on the readout scores,
    -log(e^{s+} / (e^{s+} + S sum_j w_j e^{s_j})), w = softmax(beta s)."""
    s_neg = 7
    model = _model(
        readout,
        rec_loss="sampled_softmax",
        sampled_softmax_negatives=s_neg,
        remi_beta=beta,
    )
    rng = np.random.RandomState(5)
    history = rng.randint(1, 31, size=(4, L)).astype(np.int32)
    target = rng.randint(1, 31, size=4).astype(np.int32)
    enc = model.encode({types.HISTORY: tf.constant(history)})
    seed = tf.constant([8, 9], tf.int32)
    got = model.rec_loss_per_example(
        {types.TARGET: tf.constant(target)}, enc, seed
    ).numpy()
    emb = model.item_embedding.embeddings.numpy()
    queries = model.readout_queries(enc).numpy()
    scores = np.einsum("bqd,nd->bqn", queries, emb).max(1)  # [B, N+1]
    negs = model.sample_items([s_neg], seed).numpy()
    pos = scores[np.arange(4), target]
    neg = scores[:, negs]  # [B, S]
    w = np.exp(beta * neg - (beta * neg).max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    denom = np.exp(pos) + s_neg * (w * np.exp(neg)).sum(1)
    np.testing.assert_allclose(got, -np.log(np.exp(pos) / denom), rtol=1e-4, atol=1e-5)


def test_learned_transform_starts_at_identity_or_normal():
    history = tf.constant(
        np.random.RandomState(3).randint(1, 31, size=(4, L)).astype(np.int32)
    )
    ident = _model(
        "max",
        routing_similarity="cosine",
        routing_temperature=0.1,
        capsule_transform="identity",
    )
    from_i = _model(
        "max",
        routing_similarity="cosine",
        routing_temperature=0.1,
        capsule_transform="shared_from_identity",
    )
    normal = _model(
        "max",
        routing_similarity="cosine",
        routing_temperature=0.1,
        capsule_transform="shared",
    )
    np.testing.assert_array_equal(from_i.capsule.kernel.numpy(), np.eye(D))
    assert from_i.capsule.kernel.trainable
    q_ident = ident.query_vectors(history).numpy()
    np.testing.assert_allclose(
        from_i.query_vectors(history).numpy(), q_ident, rtol=1e-5, atol=1e-6
    )
    # A learned W: the routed items are W e_i, which the diagnostics see.
    enc = normal.encode({types.HISTORY: history})
    w = normal.capsule.kernel.numpy()
    np.testing.assert_allclose(
        enc.routed_items.numpy(), enc.items.numpy() @ w, rtol=1e-5, atol=1e-6
    )
    assert ident.encode({types.HISTORY: history}).routed_items is None
