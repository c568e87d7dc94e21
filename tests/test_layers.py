"""Contract tests of the Keras layers: numerics, masking, config, saving."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf.layers import (
    CapsuleInterestExtractor,
    InterestAttention,
    LabelAwareAttention,
)
from dismir_tf.layers.ops import masked_mean, squash


def _np_squash(m):
    sq = (m**2).sum(-1, keepdims=True)
    return m * sq / (1 + sq) / np.sqrt(sq + 1e-9)


def _np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_routing(items, mask, u, logits, iterations, axis="interests"):
    """Dynamic routing in NumPy. u: [B, F, L, d]; logits: [B, F, L]."""
    for it in range(iterations):
        if axis == "interests":
            w = _np_softmax(logits, 1) * mask[:, None, :]
        else:
            masked = np.where(mask[:, None, :] > 0, logits, -1e9)
            w = _np_softmax(masked, 2) * mask[:, None, :]
        caps = np.einsum("bfl,bfld->bfd", w, u)
        v = _np_squash(caps)
        if it < iterations - 1:
            logits = logits + np.einsum("bfld,bfd->bfl", u, v)
    return v, w


def _inputs(seed, b=3, l=5, d=4):
    rng = np.random.RandomState(seed)
    items = rng.randn(b, l, d).astype(np.float32)
    mask = np.ones((b, l), np.float32)
    mask[0, 3:] = 0
    mask[2, 1:] = 0
    return items, mask


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "transform,init,iterations,axis",
    [
        ("identity", "prototype", 1, "interests"),
        ("identity", "prototype", 3, "interests"),
        ("shared", "random", 3, "interests"),
        ("per_position_interest", "zeros", 3, "interests"),
        ("per_position_interest", "zeros", 3, "positions"),
    ],
)
def test_capsule_matches_numpy(seed, transform, init, iterations, axis):
    items, mask = _inputs(seed)
    layer = CapsuleInterestExtractor(
        3,
        5,
        transform=transform,
        routing_init=init,
        iterations=iterations,
        seed=seed,
        softmax_over=axis,
        kernel_stddev=0.3,
    )
    interests, routing = layer(tf.constant(items), tf.constant(mask))
    if transform == "identity":
        u = np.repeat(items[:, None], 3, axis=1)
    elif transform == "shared":
        u = np.repeat(
            np.einsum("bld,de->ble", items, layer.kernel.numpy())[:, None], 3, axis=1
        )
    else:
        u = np.einsum("bld,lfed->bfle", items, layer.kernel.numpy())
    if init == "prototype":
        logits = np.einsum("bfld,fd->bfl", u, _np_squash(layer.prototypes.numpy()))
    elif init == "random":
        logits = np.repeat(layer.initial_logits.numpy().T[None], 3, axis=0)
    else:
        logits = np.zeros((3, 3, 5), np.float32)
    v, w = _np_routing(items, mask, u, logits, iterations, axis)
    np.testing.assert_allclose(interests.numpy(), v, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(routing.numpy(), w, rtol=1e-4, atol=1e-6)


def test_capsule_masking_ignores_padding_content():
    items, mask = _inputs(0)
    layer = CapsuleInterestExtractor(3, 5, iterations=2)
    a, ra = layer(tf.constant(items), tf.constant(mask))
    garbage = items.copy()
    garbage[mask == 0] = 1000.0
    b, rb = layer(tf.constant(garbage), tf.constant(mask))
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(rb.numpy()[:, :, 3:][0] == 0)
    # Routing weights are a distribution over interests on real items.
    np.testing.assert_allclose(ra.numpy().sum(1), mask, atol=1e-6)


def test_identity_transform_needs_non_zero_routing_start():
    with pytest.raises(ValueError, match="identical"):
        CapsuleInterestExtractor(4, 5, transform="identity", routing_init="zeros")
    with pytest.raises(ValueError, match="transform"):
        CapsuleInterestExtractor(4, 5, transform="bilinear")
    with pytest.raises(ValueError, match="num_interests"):
        CapsuleInterestExtractor(0, 5)


def test_prototype_start_gives_distinct_interests_at_initialisation():
    items, mask = _inputs(3)
    interests, _ = CapsuleInterestExtractor(4, 5, seed=0)(
        tf.constant(items), tf.constant(mask)
    )
    m = interests.numpy()[1]  # a user with 5 real items
    for f in range(4):
        for g in range(f + 1, 4):
            assert np.abs(m[f] - m[g]).max() > 1e-3


def test_squash_norm():
    v = squash(tf.constant([[3.0, 4.0]])).numpy()
    # |m| = 5 -> |v| = 25/26.
    assert np.linalg.norm(v) == pytest.approx(25 / 26, rel=1e-5)


def test_interest_attention_hand_computed():
    # Two interests, history mean = (1, 0) over the two real items.
    interests = tf.constant([[[2.0, 0.0], [0.0, 5.0]]])
    items = tf.constant([[[1.0, 1.0], [1.0, -1.0], [9.0, 9.0]]])
    mask = tf.constant([[1.0, 1.0, 0.0]])
    np.testing.assert_allclose(masked_mean(items, mask).numpy(), [[1.0, 0.0]])
    a = InterestAttention()(interests, items, mask).numpy()
    # logits m_f . mean = [2, 0] -> softmax.
    np.testing.assert_allclose(
        a, [[np.exp(2) / (np.exp(2) + 1), 1 / (np.exp(2) + 1)]], rtol=1e-6
    )


def test_label_aware_attention_hard_and_soft():
    interests = tf.constant([[[1.0, 0.0], [0.0, 2.0]]])
    target = tf.constant([[0.0, 1.0]])
    hard = LabelAwareAttention(hard=True)(interests, target).numpy()
    np.testing.assert_allclose(hard, [[0.0, 2.0]])
    soft = LabelAwareAttention()(interests, target).numpy()
    w = np.exp([0.0, 2.0]) / np.exp([0.0, 2.0]).sum()
    np.testing.assert_allclose(soft, [[w[0], 2 * w[1]]], rtol=1e-6)


@pytest.mark.parametrize(
    "layer",
    [
        CapsuleInterestExtractor(
            3, 5, transform="shared", routing_init="random", iterations=2, seed=4
        ),
        CapsuleInterestExtractor(3, 5, seed=2),
        LabelAwareAttention(hard=True, power=2.0),
        InterestAttention(),
    ],
    ids=["capsule-shared", "capsule-identity", "label-aware", "attention"],
)
def test_config_json_round_trip(layer):
    config = json.loads(json.dumps(layer.get_config()))
    clone = type(layer).from_config(config)
    assert clone.get_config() == layer.get_config()


def test_capsule_save_and_reload(tmp_path):
    items_in = tf.keras.Input((5, 4))
    mask_in = tf.keras.Input((5,))
    layer = CapsuleInterestExtractor(
        3, 5, transform="shared", routing_init="random", iterations=2, seed=1
    )
    out, _ = layer(items_in, mask_in)
    model = tf.keras.Model([items_in, mask_in], out)
    items, mask = _inputs(5)
    before = model([items, mask]).numpy()
    path = os.path.join(tmp_path, "capsule.keras")
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    np.testing.assert_allclose(loaded([items, mask]).numpy(), before, rtol=1e-6)
