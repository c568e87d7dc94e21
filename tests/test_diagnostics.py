"""Collapse diagnostics on hand-made collapsed and non-collapsed models."""

import math
import types as pytypes

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import diagnostics, types
from dismir_tf.models.base import Encoded
from dismir_tf.pipeline import EvalExamples

F, D = 4, 8


class _FakeModel:
    """Returns fixed encodings: what a model of each kind would give."""

    def __init__(self, interests, weights, routing, item_emb, retrieval, queries=None):
        self.interests = interests
        self.weights = weights
        self.routing = routing
        self.item_embedding = pytypes.SimpleNamespace(embeddings=tf.constant(item_emb))
        self.retrieval = retrieval
        self.queries = queries

    def encode(self, features, training=False, seed=None):
        history = features[types.HISTORY]
        rows = tf.shape(history)[0]
        b = int(rows)
        idx = self._rows(history)
        items = tf.gather(self.item_embedding.embeddings, history)
        return (
            Encoded(
                interests=tf.constant(self.interests[idx]),
                weights=(
                    None if self.weights is None else tf.constant(self.weights[idx])
                ),
                routing=(
                    None if self.routing is None else tf.constant(self.routing[idx])
                ),
                items=items,
                mask=tf.cast(history > 0, tf.float32),
            )
            if b
            else None
        )

    def _rows(self, history):
        # Users are identified by their first history item (1-based row).
        return history.numpy()[:, 0] - 1

    def retrieval_queries(self, enc, retrieval=None):
        if (retrieval or self.retrieval) == "fused":
            return (
                tf.reduce_mean(enc.interests, 1)[:, None]
                if enc.weights is None
                else tf.einsum("bf,bfd->bd", enc.weights, enc.interests)[:, None]
            )
        return enc.interests


def _examples(num_users, length):
    history = np.zeros((num_users, length), np.int32)
    for u in range(num_users):
        history[u] = np.arange(length) + 1 + u * 0
        history[u, 0] = u + 1
    return EvalExamples(
        users=np.arange(num_users),
        history=history,
        targets=np.ones((num_users, 1), np.int32),
    )


def _items(n=40, seed=0):
    rng = np.random.RandomState(seed)
    emb = rng.randn(n + 1, D).astype(np.float32)
    emb[0] = 0
    return emb


def test_collapsed_model_reads_as_collapsed():
    users, length = 5, 6
    emb = _items()
    ex = _examples(users, length)
    mean = emb[ex.history].mean(1)  # [U, d]
    interests = np.repeat(mean[:, None], F, 1).astype(np.float32)
    weights = np.full((users, F), 1 / F, np.float32)
    routing = np.full((users, F, length), 1 / F, np.float32)
    model = _FakeModel(interests, weights, routing, emb, "fused")
    d = diagnostics.collapse_diagnostics(model, ex, batch_size=2)
    assert d.users == users
    assert d.routing_max == pytest.approx(1 / F)
    assert d.interest_cosine == pytest.approx(1.0, abs=1e-5)
    assert d.attention_max == pytest.approx(1 / F)
    assert d.attention_entropy == pytest.approx(math.log(F), abs=1e-5)
    assert d.query_history_cosine == pytest.approx(1.0, abs=1e-5)
    assert d.top_k_interests == 1.0
    # Merge retrieval with identical interests: one interest contributes
    # everything.
    merge = diagnostics.collapse_diagnostics(model, ex, retrieval="merge", top_k=10)
    assert merge.top_k_interests == 1.0
    assert merge.query_history_cosine == pytest.approx(1.0, abs=1e-5)


def test_distinct_interests_read_as_multi_interest():
    users, length = 3, F
    # Catalogue: F blocks of items, block f along axis f.
    n_per = 10
    emb = np.zeros((F * n_per + 1, D), np.float32)
    rng = np.random.RandomState(1)
    for f in range(F):
        emb[1 + f * n_per : 1 + (f + 1) * n_per, f] = 1 + rng.rand(n_per)
    ex = _examples(users, length)
    # Each user's history holds one item of each block.
    for u in range(users):
        ex.history[u] = [u + 1] + [1 + f * n_per + u for f in range(1, F)]
    interests = np.zeros((users, F, D), np.float32)
    for f in range(F):
        interests[:, f, f] = 1.0
    routing = np.zeros((users, F, length), np.float32)
    for f in range(F):
        routing[:, f, f] = 1.0  # one-hot routing
    weights = np.tile(np.array([0.7, 0.1, 0.1, 0.1], np.float32), (users, 1))
    model = _FakeModel(interests, weights, routing, emb, "merge")
    d = diagnostics.collapse_diagnostics(model, ex, top_k=4 * 3)
    assert d.routing_max == pytest.approx(1.0)
    assert d.interest_cosine == pytest.approx(0.0, abs=1e-6)
    assert d.attention_max == pytest.approx(0.7)
    want_ent = -(0.7 * math.log(0.7) + 3 * 0.1 * math.log(0.1))
    assert d.attention_entropy == pytest.approx(want_ent, rel=1e-5)
    assert d.top_k_interests == 4.0
    # Each interest is one axis, the history mean has all four: cos 1/2.
    assert d.query_history_cosine < 0.7
    assert d.interest_history_cosine == pytest.approx(d.query_history_cosine)


def test_empty_interests_do_not_pass_for_distinct_ones():
    """Nearly hard routing leaves an interest that collects no item as the
    zero vector: it must not count as a distinct interest or a query."""
    users, length = 4, 6
    emb = _items()
    ex = _examples(users, length)
    mean = emb[ex.history].mean(1)  # [U, d]
    interests = np.zeros((users, F, D), np.float32)
    # Two live interests, both the history mean (collapsed), two empty.
    interests[:, 0] = mean
    interests[:, 1] = 2 * mean
    interests[:, 2] = 1e-9 * mean
    model = _FakeModel(interests, None, None, emb, "merge")
    d = diagnostics.collapse_diagnostics(model, ex, top_k=5)
    # All six pairs: 1 for (0, 1); ~1 for the pairs with the tiny one;
    # 0 with the zero vector.
    assert d.interest_cosine == pytest.approx(3 / 6, abs=1e-5)
    assert d.live_interests == pytest.approx(2.0)
    assert d.live_interest_cosine == pytest.approx(1.0, abs=1e-5)
    # The live queries are the history mean; the empty ones are skipped.
    assert d.query_history_cosine == pytest.approx(1.0, abs=1e-5)
    # With every interest live the figures agree with the all-pairs ones.
    full = np.repeat(mean[:, None], F, 1).astype(np.float32)
    d2 = diagnostics.collapse_diagnostics(
        _FakeModel(full, None, None, emb, "merge"), ex, top_k=5
    )
    assert d2.live_interests == pytest.approx(F)
    assert d2.live_interest_cosine == pytest.approx(d2.interest_cosine)


def test_routing_share_over_positions_is_renormalised_per_item():
    # Softmax over positions: columns do not sum to 1; the share does.
    routing = np.array([[[0.5, 0.25, 0.0], [0.5, 0.75, 0.0]]])  # [1, 2, 3]
    mask = np.array([[1.0, 1.0, 0.0]])
    total, n = diagnostics.routing_max_share(routing, mask)
    assert n == 2
    assert total / n == pytest.approx((0.5 + 0.75) / 2)


def test_models_without_routing_or_attention_report_none():
    users, length = 4, 5
    emb = _items()
    ex = _examples(users, length)
    interests = np.random.RandomState(2).randn(users, F, D).astype(np.float32)
    model = _FakeModel(interests, None, None, emb, "merge")
    d = diagnostics.collapse_diagnostics(model, ex).to_dict()
    assert d["routing_max"] is None and d["attention_max"] is None
    assert d["interest_cosine"] is not None
    line = diagnostics.collapse_diagnostics(model, ex).summary()
    assert "routing max n/a" in line
