"""Models take a features dict (``encode(features, training, seed)``), as
TFRS models take ``inputs``: the evaluator, the TFRS metric and the
diagnostics hand a model the keys it lists in ``input_features``."""

import numpy as np
import tensorflow as tf

from dismir_tf import diagnostics, evaluation, pipeline, tfrs_metrics, types
from dismir_tf.config import ModelConfig
from dismir_tf.models import create_model
from dismir_tf.models.base import Encoded, RetrievalModel

L, N = 5, 30


class TimeWeighted(RetrievalModel):
    """A model that reads a second input: the history embeddings averaged
    with weights 1 + time (so the times move the query's direction)."""

    multi_interest = False
    input_features = (types.HISTORY, types.HISTORY_TIME)

    def encode(self, features, training=False, seed=None):
        history = features[types.HISTORY]
        mask = tf.cast(history > 0, tf.float32)
        items = self.item_embedding(history)
        weight = mask * (1.0 + features[types.HISTORY_TIME])
        user = tf.einsum("bl,bld->bd", weight, items)
        return Encoded(
            interests=user[:, None], weights=None, routing=None, items=items, mask=mask
        )


def _examples(with_times: bool):
    rng = np.random.default_rng(0)
    history = rng.integers(1, N + 1, size=(6, L)).astype(np.int32)
    times = rng.uniform(0, 3, size=(6, L)).astype(np.float32)
    targets = rng.integers(1, N + 1, size=(6, 2)).astype(np.int32)
    return pipeline.EvalExamples(
        users=np.arange(6, dtype=np.int32),
        history=history,
        targets=targets,
        features={types.HISTORY_TIME: times} if with_times else {},
    )


def test_a_history_model_takes_a_dict_a_tensor_and_ignores_other_keys():
    model = create_model(N, ModelConfig(name="dnn", embedding_dim=8, max_len=L), seed=0)
    ex = _examples(with_times=True)
    hist = tf.constant(ex.history)
    want = model.query_vectors(hist).numpy()
    np.testing.assert_array_equal(
        model.query_vectors({types.HISTORY: hist}).numpy(), want
    )
    query = evaluation.make_query_fn(model)
    got = query({k: tf.constant(v) for k, v in ex.inputs(slice(None)).items()})
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)


def test_the_evaluator_gives_a_model_the_new_key_it_lists():
    model = TimeWeighted(N, ModelConfig(name="dnn", embedding_dim=8, max_len=L), seed=0)
    model.build_for(L)
    timed = _examples(True)
    emb = model.item_embedding.embeddings
    query = evaluation.make_query_fn(model)
    with_times = evaluation.evaluate(query, emb, timed, ks=(3,), keep_topk=True)
    # The evaluator passed the times: its lists are the model's own.
    feats = {k: tf.constant(v) for k, v in timed.inputs(slice(None)).items()}
    _, want = tf.math.top_k(
        tf.matmul(model.query_vectors(feats)[:, 0], emb[1:], transpose_b=True), k=3
    )
    np.testing.assert_array_equal(with_times.topk, want.numpy() + 1)
    # And the times matter: other times, other lists.
    zero = pipeline.EvalExamples(
        users=timed.users,
        history=timed.history,
        targets=timed.targets,
        features={types.HISTORY_TIME: np.zeros((6, L), np.float32)},
    )
    assert not np.array_equal(
        evaluation.evaluate(query, emb, zero, ks=(3,), keep_topk=True).topk,
        with_times.topk,
    )


def test_eval_batches_and_diagnostics_carry_every_feature():
    timed = _examples(True)
    batch = next(iter(tfrs_metrics.eval_dataset(timed, batch_size=4)))
    assert set(batch) == {
        types.HISTORY,
        types.HISTORY_TIME,
        types.TARGETS,
        types.KNOWN_ITEMS,
    }
    np.testing.assert_array_equal(
        batch[types.HISTORY_TIME].numpy(), timed.features[types.HISTORY_TIME][:4]
    )
    model = TimeWeighted(N, ModelConfig(name="dnn", embedding_dim=8, max_len=L), seed=0)
    model.build_for(L)
    # The diagnostics encode with the examples' features (the model reads
    # the times unconditionally: without them this would raise KeyError).
    diag = diagnostics.collapse_diagnostics(model, timed, batch_size=4)
    assert diag.of_users == 6
