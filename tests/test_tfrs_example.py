"""TFRS at the centre, item 3: the README's TFRS two-tower example with the
PartitionTask runs as printed, and the task is the models' own partition
loss."""

import pytest
import tensorflow as tf

from dismir_tf import pipeline, types
from dismir_tf.config import ModelConfig
from dismir_tf.cooccurrence import PositiveSampler, build_cooccurrence
from dismir_tf.data.synthetic import generate
from dismir_tf.models import create_model
from dismir_tf.partition_task import PartitionTask
from tests.helpers import TINY_SYNTHETIC, readme_block


def test_readme_tfrs_example_runs(capsys):
    namespace: dict = {}
    exec(compile(readme_block("tfrs-example"), "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    losses = namespace["fit"].history["loss"]
    assert losses[-1] < losses[0]
    assert "recall@50" in out
    model = namespace["model"]
    # The partition task trains the candidate tower's table itself.
    assert model.partition.item_embedding is model.items
    assert 0.0 < float(namespace["metric"].means[1].result()) <= 1.0


def test_partition_task_is_the_models_partition_loss():
    ds, _ = generate(TINY_SYNTHETIC)
    config = ModelConfig(
        name="dismir",
        embedding_dim=16,
        num_interests=3,
        max_len=10,
        partition_weight=0.5,
        partition_negatives=20,
    )
    model = create_model(ds.num_items, config, seed=0)
    model.build_for(config.max_len)
    sampler = pipeline.TrainSampler(
        ds,
        config.max_len,
        32,
        seed=0,
        positive_sampler=PositiveSampler(build_cooccurrence(ds)),
    )
    batch = sampler.sample(tf.constant(0, tf.int64))
    seed = tf.constant([3, 4], tf.int32)
    task = PartitionTask(model.item_embedding, num_negatives=config.partition_negatives)
    want = float(tf.reduce_mean(model.partition_loss(batch, seed)))
    got = float(
        task(
            batch[types.PARTITION_ANCHOR],
            batch[types.PARTITION_POSITIVE],
            batch[types.PARTITION_MASK],
            seed=seed,
        )
    )
    assert got == pytest.approx(want, rel=1e-6)
    # Its gradient reaches the shared item table.
    with tf.GradientTape() as tape:
        loss = task(
            batch[types.PARTITION_ANCHOR],
            batch[types.PARTITION_POSITIVE],
            batch[types.PARTITION_MASK],
            seed=seed,
        )
    grad = tape.gradient(loss, model.item_embedding.embeddings)
    assert float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(grad)))) > 0
