"""TrainConfig.jit_compile: XLA for the train step and the Adam update.

XLA is a speed switch only: the same batches give the same losses and
weights with and without it (up to float rounding), and a run directory
made before the field existed still resumes.
"""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import pipeline, training
from dismir_tf.config import ModelConfig, RunConfig, TrainConfig
from dismir_tf.cooccurrence import PositiveSampler, build_cooccurrence
from dismir_tf.data.synthetic import generate
from dismir_tf.errors import ConfigError
from dismir_tf.models import create_model
from tests.helpers import TINY_SYNTHETIC

CFG = ModelConfig(
    name="dismir",
    embedding_dim=16,
    num_interests=3,
    max_len=10,
    partition_weight=0.5,
    partition_negatives=20,
)
STEPS = 20


@pytest.fixture(scope="module")
def sampler():
    ds, _ = generate(TINY_SYNTHETIC)
    return ds, pipeline.TrainSampler(
        ds,
        CFG.max_len,
        32,
        seed=0,
        positive_sampler=PositiveSampler(build_cooccurrence(ds)),
    )


def _train(ds, sampler, jit: bool):
    tf.keras.backend.clear_session()
    model = create_model(ds.num_items, CFG, seed=0)
    model.build_for(CFG.max_len)
    training.compile_model(
        model,
        TrainConfig(learning_rate=0.01, eval_every=5, max_steps=STEPS, jit_compile=jit),
    )
    history = model.fit(
        sampler.dataset_from(0), steps_per_epoch=5, epochs=STEPS // 5, verbose=0
    )
    return model, history.history


@pytest.mark.parametrize("jit", [True, False])
def test_compile_model_sets_xla_on_the_step_and_the_optimizer(sampler, jit):
    ds, _ = sampler
    model = create_model(ds.num_items, CFG, seed=0)
    model.build_for(CFG.max_len)
    training.compile_model(
        model, TrainConfig(eval_every=10, max_steps=10, jit_compile=jit)
    )
    assert model.jit_compile is jit
    # Keras itself only XLA-compiles the optimizer on GPUs.
    assert model.optimizer.jit_compile is jit


def _model(ds):
    model = create_model(ds.num_items, CFG, seed=0)
    model.build_for(CFG.max_len)
    return model


def test_xla_computes_the_same_losses_gradients_and_update(sampler):
    ds, data = sampler
    model = _model(ds)
    batch = data.sample(tf.constant(3, tf.int64))

    def losses_and_grads(b):
        with tf.GradientTape() as tape:
            losses = model.compute_losses(b)
        grads = tape.gradient(losses["loss"], model.trainable_variables)
        return losses, [tf.convert_to_tensor(g) for g in grads]

    plain_losses, plain_grads = losses_and_grads(batch)
    xla_losses, xla_grads = tf.function(losses_and_grads, jit_compile=True)(batch)
    for k in plain_losses:
        np.testing.assert_allclose(xla_losses[k], plain_losses[k], rtol=1e-5, err_msg=k)
    for g, h in zip(plain_grads, xla_grads):
        np.testing.assert_allclose(h, g, rtol=1e-4, atol=1e-7)

    # Two Adam steps with the same gradients, plain and XLA-compiled.
    results = []
    for jit in (False, True):
        table = tf.Variable(model.item_embedding.embeddings)
        optimizer = training.make_optimizer(
            TrainConfig(learning_rate=0.01, jit_compile=jit)
        )
        sparse = tf.IndexedSlices(
            tf.ones([4, CFG.embedding_dim]),
            tf.constant([1, 5, 5, 9]),
            tf.shape(table, out_type=tf.int32),
        )
        for _ in range(2):
            optimizer.apply_gradients([(sparse, table)])
        results.append(table.numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6, atol=1e-7)
    assert not np.allclose(results[0], model.item_embedding.embeddings.numpy())


def test_xla_and_plain_training_both_learn(sampler):
    # Adam's first steps are sign-like, so float rounding moves individual
    # weights by ~lr; the trajectories agree only statistically.
    ds, data = sampler
    _, plain = _train(ds, data, jit=False)
    _, xla = _train(ds, data, jit=True)
    for hist in (plain, xla):
        assert hist["rec_loss"][-1] < hist["rec_loss"][0]
    assert xla["loss"][-1] == pytest.approx(plain["loss"][-1], rel=0.05)


def test_a_run_made_before_a_config_field_existed_still_resumes(tmp_path):
    run_dir = training.RunDirectory(str(tmp_path))
    config = RunConfig(train=TrainConfig(output_dir=str(tmp_path)))
    old = config.to_dict()
    del old["train"]["jit_compile"]  # written by an older version
    with open(run_dir.config_path, "w") as f:
        json.dump(old, f)
    training.check_same_run(run_dir, config)  # no error
    # Leaving the new field at its default is the same run; a real change
    # of any field is still refused.
    with pytest.raises(ConfigError, match="train.jit_compile"):
        training.check_same_run(
            run_dir,
            dataclasses.replace(
                config, train=dataclasses.replace(config.train, jit_compile=False)
            ),
        )
    with pytest.raises(ConfigError, match="train.batch_size"):
        training.check_same_run(
            run_dir,
            dataclasses.replace(
                config, train=dataclasses.replace(config.train, batch_size=64)
            ),
        )
    assert os.path.exists(run_dir.config_path)


def test_under_a_strategy_only_the_optimizer_update_is_compiled(sampler):
    # XLA cannot reach the variables of another logical CPU device, nor
    # compile collective ops: the step stays plain, the update is XLA.
    ds, data = sampler
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    strategy = tf.distribute.MirroredStrategy(
        devices=devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    with strategy.scope():
        model = _model(ds)
        training.compile_model(
            model, TrainConfig(eval_every=2, max_steps=4, jit_compile=True)
        )
    assert model.jit_compile is False
    assert model.optimizer.jit_compile is True
    history = model.fit(
        data.dataset_from(0), steps_per_epoch=2, epochs=2, verbose=0
    ).history
    assert np.all(np.isfinite(history["loss"]))
