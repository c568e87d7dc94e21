"""SASRec (dismir_tf/models/sasrec.py): causal, positions as the
reference's left-padded window, the paper's every-position loss, seeded
dropout; docs/sasrec.md compares it with the authors' code."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import types
from dismir_tf.config import ModelConfig
from dismir_tf.models import create_model
from dismir_tf.models.sasrec import next_items

L = 6


def _params(kw):
    """sasrec_blocks=2 -> params {'blocks': 2} (the --sasrec_* flags)."""
    return {k[len("sasrec_") :]: kw.pop(k) for k in list(kw) if k.startswith("sasrec_")}


def _model(**kw):
    params = {"dropout": kw.pop("dropout", 0.0), **_params(kw)}
    cfg = ModelConfig(name="sasrec", embedding_dim=16, max_len=L, params=params, **kw)
    model = create_model(40, cfg, seed=3)
    model.build_for(L)
    return model


def _seq(model, history):
    features = {types.HISTORY: tf.constant(history, tf.int32)}
    return model.encode(features).sequence.numpy()


def test_outputs_never_see_later_items():
    model = _model(sasrec_blocks=2, sasrec_heads=2)
    a = [[5, 9, 2, 7, 3, 0]]
    b = [[5, 9, 2, 11, 3, 0]]  # position 3 changed, n the same
    sa, sb = _seq(model, a), _seq(model, b)
    np.testing.assert_allclose(sa[:, :3], sb[:, :3], atol=1e-6)
    assert not np.allclose(sa[:, 3:5], sb[:, 3:5], atol=1e-4)


def test_the_newest_item_sits_at_the_last_position():
    # As in the reference's left-padded window, a history of n items uses
    # position rows L - n .. L - 1 whatever the padding.
    model = _model()
    hist = tf.constant([[4, 8, 15, 0, 0, 0]], tf.int32)  # n = 3
    user = model.encode({types.HISTORY: hist}).interests.numpy()
    table = model.position_embedding.embeddings
    saved = table.numpy()
    table.assign(np.concatenate([np.zeros((L - 3, 16), np.float32), saved[L - 3 :]]))
    np.testing.assert_allclose(
        model.encode({types.HISTORY: hist}).interests.numpy(), user, atol=1e-6
    )
    changed = saved.copy()
    changed[L - 1] += 1.0
    table.assign(changed)
    assert not np.allclose(
        model.encode({types.HISTORY: hist}).interests.numpy(), user, atol=1e-4
    )


def test_next_items_are_the_shifted_history_then_the_target():
    hist = tf.constant([[1, 2, 3, 0], [7, 8, 9, 10], [4, 0, 0, 0]])
    target = tf.constant([4, 11, 5])
    np.testing.assert_array_equal(
        next_items(hist, target).numpy(), [[2, 3, 4, 0], [8, 9, 10, 11], [5, 0, 0, 0]]
    )


def test_loss_is_the_papers_mean_over_every_real_position():
    # Two windows of 3 and 5 items: the batch mean is the mean over all 8
    # positions (the reference's sum(loss * istarget) / sum(istarget)).
    model = _model()
    hist = tf.constant([[3, 6, 9, 0, 0, 0], [2, 4, 8, 16, 32, 0]], tf.int32)
    target = tf.constant([12, 33])
    batch = {
        types.HISTORY: hist,
        types.TARGET: target,
        types.HISTORY_MASK: tf.cast(hist > 0, tf.float32),
    }
    seed = tf.constant([1, 2], tf.int64)
    enc = model.encode({types.HISTORY: hist})
    got = model.rec_loss_per_example(batch, enc, seed).numpy()
    seq = enc.sequence.numpy()
    emb = model.item_embedding.embeddings.numpy()
    neg = model.negatives(hist, target, seed).numpy()

    def log_sigmoid(x):
        return -np.log1p(np.exp(-x))

    terms = [
        -log_sigmoid(seq[b, t] @ emb[nxt]) - log_sigmoid(-(seq[b, t] @ emb[neg[b, t]]))
        for b, nexts in enumerate([[6, 9, 12], [4, 8, 16, 32, 33]])
        for t, nxt in enumerate(nexts)
    ]
    np.testing.assert_allclose(got.mean(), np.mean(terms), rtol=1e-5)


def test_negatives_avoid_the_window_and_the_target():
    cfg = ModelConfig(name="sasrec", embedding_dim=16, max_len=L)
    model = create_model(400, cfg, seed=3)
    model.build_for(L)
    rng = np.random.default_rng(0)
    hist = tf.constant(rng.integers(1, 401, (100, L)), tf.int32)
    target = tf.constant(rng.integers(1, 401, 100), tf.int32)
    neg = model.negatives(hist, target, tf.constant([5, 6], tf.int64))
    seen = np.concatenate([hist.numpy(), target.numpy()[:, None]], 1)
    inside = (neg.numpy()[:, :, None] == seen[:, None, :]).any(-1)
    assert inside.sum() == 0
    assert neg.numpy().min() >= 1 and neg.numpy().max() <= 400


def test_dropout_follows_the_step_seed_and_is_off_in_evaluation():
    model = _model(dropout=0.5)
    hist = tf.constant([[3, 6, 9, 2, 0, 0]], tf.int32)
    s1, s2 = tf.constant([1, 1], tf.int64), tf.constant([1, 2], tf.int64)

    def user(training, seed):
        return model.encode(
            {types.HISTORY: hist}, training=training, seed=seed
        ).interests.numpy()

    np.testing.assert_array_equal(user(True, s1), user(True, s1))
    assert not np.allclose(user(True, s1), user(True, s2))
    np.testing.assert_array_equal(user(False, s1), user(False, s2))


@pytest.mark.parametrize(
    "bad", [dict(sasrec_heads=3), dict(sasrec_dropout=1.0), dict(sasrec_blocks=0)]
)
def test_bad_settings_are_refused(bad):
    from dismir_tf.errors import ConfigError

    with pytest.raises(ConfigError):
        ModelConfig(name="sasrec", embedding_dim=16, params=_params(bad))


def test_an_older_config_json_with_flat_sasrec_fields_still_loads():
    from dismir_tf.config import RunConfig

    old = {
        "model": {
            "name": "sasrec",
            "sasrec_blocks": 3,
            "sasrec_heads": 2,
            "sasrec_dropout": 0.2,
        }
    }
    assert RunConfig.from_dict(old).model.params == {
        "blocks": 3,
        "heads": 2,
        "dropout": 0.2,
    }
    # Another model's config.json carried them as unused defaults.
    other = {"model": {"name": "dnn", "sasrec_blocks": 2}}
    assert RunConfig.from_dict(other).model.params == {}
