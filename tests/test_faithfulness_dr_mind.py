"""ComiRec-DR and MIND against REMI's PyTorch capsule (issue 5).

REMI's ``CapsuleNetwork.forward`` (src/BasicModel.py), which produced the
figures of both models in docs/reference-runs.md, zeroes the history
embeddings on padding, takes the routing softmax over all L positions
(padding included) and zeroes the padded weights after it without
renormalising.  The NumPy reference
below follows that loop step by step; the layer's option
``padding_in_softmax=True`` must reproduce it, and the default must not.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import types
from dismir_tf.config import ModelConfig
from dismir_tf.layers import CapsuleInterestExtractor
from dismir_tf.models import create_model
from dismir_tf.models.comirec import reference_kernel_stddev

B, L, D, F = 3, 5, 4, 3


def _inputs(seed):
    rng = np.random.RandomState(seed)
    items = rng.randn(B, L, D).astype(np.float32)
    mask = np.ones((B, L), np.float32)
    mask[0, 3:] = 0  # 3 real items
    mask[2, 1:] = 0  # 1 real item
    return items, mask


def _np_squash(s):
    n = (s**2).sum(-1, keepdims=True)
    return n / (1 + n) / np.sqrt(n + 1e-9) * s


def _np_remi_capsule(items, mask, transform, kernel, start_logits, routing_times=3):
    """REMI's CapsuleNetwork.forward in NumPy (weights and interests)."""
    item_eb = items * mask[:, :, None]  # as REMI's models
    if transform == "shared":  # bilinear_type 0
        hat = np.repeat((item_eb @ kernel)[:, None], start_logits.shape[1], axis=1)
    else:  # bilinear_type 2
        hat = np.einsum("bld,lfed->bfle", item_eb, kernel)
    b = start_logits.copy()  # [B, F, L]
    for i in range(routing_times):
        e = np.exp(b - b.max(-1, keepdims=True))
        c = e / e.sum(-1, keepdims=True)  # softmax over L
        c = np.where(mask[:, None, :] == 0, 0.0, c)  # then mask
        s = np.einsum("bfl,bfld->bfd", c, hat)
        v = _np_squash(s)
        if i < routing_times - 1:
            b = b + np.einsum("bfld,bfd->bfl", hat, v)
    return v, c


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "transform,init",
    [
        ("per_position_interest", "zeros"),  # ComiRec-DR
        ("shared", "random"),  # MIND
    ],
)
def test_padding_in_softmax_matches_remi_capsule(seed, transform, init):
    items, mask = _inputs(seed)
    layer = CapsuleInterestExtractor(
        F,
        L,
        transform=transform,
        routing_init=init,
        iterations=3,
        softmax_over="positions",
        padding_in_softmax=True,
        kernel_stddev=0.4,
        seed=seed,
    )
    # Padding content must not matter: REMI multiplies it away.
    garbage = items.copy()
    garbage[mask == 0] = 50.0
    interests, routing = layer(tf.constant(garbage), tf.constant(mask))
    if init == "random":
        start = np.repeat(layer.initial_logits.numpy().T[None], B, axis=0)
    else:
        start = np.zeros((B, F, L), np.float32)
    v, c = _np_remi_capsule(items, mask, transform, layer.kernel.numpy(), start)
    np.testing.assert_allclose(interests.numpy(), v, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(routing.numpy(), c, rtol=1e-4, atol=1e-6)
    # Padding keeps softmax mass: a short history's weights sum below 1.
    sums = routing.numpy().sum(-1)
    assert np.all(sums[2] < 0.99) and np.all(sums[1] > 0.999)


def test_default_renormalises_over_real_items_and_differs_from_remi():
    items, mask = _inputs(0)
    kw = dict(
        transform="per_position_interest",
        routing_init="zeros",
        iterations=1,
        softmax_over="positions",
        kernel_stddev=0.4,
    )
    old = CapsuleInterestExtractor(F, L, **kw)
    new = CapsuleInterestExtractor(F, L, padding_in_softmax=True, **kw)
    _, w_old = old(tf.constant(items), tf.constant(mask))
    _, w_new = new(tf.constant(items), tf.constant(mask))
    n = mask.sum(1)
    # One pass from zero logits: 1/n per real item (default) vs 1/L (REMI).
    np.testing.assert_allclose(w_old.numpy().sum(-1), np.ones((B, F)), rtol=1e-6)
    np.testing.assert_allclose(
        w_new.numpy(), np.repeat(mask[:, None] / L, F, axis=1), rtol=1e-6
    )
    np.testing.assert_allclose(
        w_old.numpy(), np.repeat((mask / n[:, None])[:, None], F, axis=1), rtol=1e-6
    )
    assert not CapsuleInterestExtractor(F, L).padding_in_softmax


def test_padding_in_softmax_needs_the_position_axis_and_round_trips():
    with pytest.raises(ValueError, match="padding_in_softmax"):
        CapsuleInterestExtractor(
            F, L, transform="shared", routing_init="random", padding_in_softmax=True
        )
    layer = CapsuleInterestExtractor(
        F,
        L,
        transform="shared",
        routing_init="random",
        softmax_over="positions",
        padding_in_softmax=True,
    )
    again = CapsuleInterestExtractor.from_config(layer.get_config())
    assert again.padding_in_softmax and again.softmax_over == "positions"


CFG = ModelConfig.from_settings(
    name="comirec-dr",
    embedding_dim=16,
    num_interests=4,
    max_len=20,
    partition_weight=0.0,
    sampled_softmax_negatives=7,
)


@pytest.mark.parametrize("name", ["comirec-dr", "mind"])
def test_dr_and_mind_use_remis_routing_and_kaiming_kernels(name):
    cfg = CFG.with_model(name)
    model = create_model(300, cfg, seed=3)
    model.build_for(cfg.max_len)
    cap = model.capsule
    assert (cap.softmax_over, cap.padding_in_softmax, cap.iterations) == (
        "positions",
        True,
        3,
    )
    kernel = cap.kernel.numpy()
    d, f, l = cfg.embedding_dim, cfg.num_interests, cfg.max_len
    if name == "comirec-dr":
        # torch kaiming_normal_ on [1, L, F*d, d]: fan_in = L * F * d * d.
        assert kernel.shape == (l, f, d, d)
        expected = math.sqrt(2.0 / (l * f * d * d))
        assert reference_kernel_stddev(l, f, d) == pytest.approx(expected)
        assert reference_kernel_stddev(20, 4, 64) == pytest.approx(0.002471, abs=1e-6)
    else:
        # torch kaiming_normal_ on a Linear(d, d) weight: fan_in = d.
        assert cap.transform == "shared" and kernel.shape == (d, d)
        expected = math.sqrt(2.0 / d)
    assert kernel.std() == pytest.approx(expected, rel=0.1)
    # The routing in the model is the REMI routing of the NumPy reference.
    rng = np.random.RandomState(0)
    hist = np.zeros([2, l], np.int32)
    hist[0, :3] = rng.randint(1, 300, 3)
    hist[1, :] = rng.randint(1, 300, l)
    enc = model.encode({types.HISTORY: tf.constant(hist)})
    items = model.item_embedding(tf.constant(hist)).numpy()
    mask = (hist > 0).astype(np.float32)
    if name == "mind":
        start = np.repeat(cap.initial_logits.numpy().T[None], 2, axis=0)
        transform = "shared"
    else:
        start = np.zeros((2, f, l), np.float32)
        transform = "per_position_interest"
    v, _ = _np_remi_capsule(items, mask, transform, kernel, start)
    np.testing.assert_allclose(enc.interests.numpy(), v, rtol=1e-3, atol=1e-7)
