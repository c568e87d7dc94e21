"""Models: shapes, the eq. 5 loss against NumPy, the partition plugin, and
training under MirroredStrategy on two logical CPU devices."""

import numpy as np
import pytest
import tensorflow as tf

from dismir_tf import pipeline, types
from dismir_tf.config import ModelConfig
from dismir_tf.cooccurrence import PositiveSampler, build_cooccurrence
from dismir_tf.data.synthetic import generate
from dismir_tf.models import create_model, model_names
from tests.helpers import TINY_SYNTHETIC, losses_before_after

CFG = ModelConfig.from_settings(
    name="dismir",
    embedding_dim=16,
    num_interests=3,
    max_len=10,
    partition_weight=0.5,
    partition_negatives=20,
)


@pytest.fixture(scope="module")
def tiny():
    ds, groups = generate(TINY_SYNTHETIC)
    sampler = pipeline.TrainSampler(
        ds,
        CFG.max_len,
        32,
        seed=0,
        positive_sampler=PositiveSampler(build_cooccurrence(ds)),
    )
    return ds, sampler


def _batch(sampler, step=0):
    return sampler.sample(tf.constant(step, tf.int64))


@pytest.mark.parametrize("name", model_names())
def test_every_model_gives_queries_and_its_loss_falls(tiny, name):
    ds, sampler = tiny
    tf.keras.utils.set_random_seed(0)
    model = create_model(ds.num_items, CFG.with_model(name))
    model.build_for(CFG.max_len)
    q = model.query_vectors(tf.zeros([2, CFG.max_len], tf.int32) + 1)
    expected_q = (
        1
        if (model.retrieval == types.FUSED or not model.multi_interest)
        else CFG.num_interests
    )
    assert q.shape == (2, expected_q, CFG.embedding_dim)
    # The same 5 batches, repeatedly: the training loss must fall.
    first, after = losses_before_after(model, sampler, 5, 8)
    assert after["loss"] < first["loss"]
    if first["reg_loss"] == 0:
        # (A regulariser, MIR-RV's weight-100 routing variance, may trade
        # some of the recommendation loss in these 40 steps.)
        assert after["rec_loss"] < first["rec_loss"]
    assert np.isfinite(after["loss"])


def test_pairwise_hard_negative_loss_matches_numpy(tiny):
    """Eq. 5 with the fused readout (the other readouts:
    tests/test_capsule_options.py)."""
    ds, sampler = tiny
    model = create_model(
        ds.num_items, CFG.with_model(CFG.name, readout="fused"), seed=3
    )
    model.build_for(CFG.max_len)
    batch = _batch(sampler, 7)
    seed = tf.constant([11, 12], tf.int64)
    enc = model.encode({types.HISTORY: batch[types.HISTORY]})
    loss = model.rec_loss_per_example(batch, enc, seed).numpy()

    emb = model.item_embedding.embeddings.numpy()
    m = enc.interests.numpy()  # [B, F, d]
    a = enc.weights.numpy()  # [B, F]
    user = np.einsum("bf,bfd->bd", a, m)  # eq. 5's fused vector
    target = batch[types.TARGET].numpy()
    cand = model.sample_items([len(target), CFG.hard_negative_candidates], seed).numpy()
    pos = (user * emb[target]).sum(-1)
    cand_scores = np.einsum("bd,bcd->bc", user, emb[cand])
    cand_scores[cand == target[:, None]] = -np.inf
    hard = cand_scores.max(1)
    expected = -np.log(1 / (1 + np.exp(-(pos - hard))))
    np.testing.assert_allclose(loss, expected, rtol=1e-4, atol=1e-5)
    # Attention weights are a distribution over the F interests.
    np.testing.assert_allclose(a.sum(1), 1.0, rtol=1e-5)


def test_total_loss_is_rec_plus_lambda_partition(tiny):
    ds, sampler = tiny
    model = create_model(ds.num_items, CFG, seed=0)
    model.build_for(CFG.max_len)
    losses = {k: float(v) for k, v in model.compute_losses(_batch(sampler)).items()}
    assert losses["partition_loss"] > 0
    assert losses["loss"] == pytest.approx(
        losses["rec_loss"] + CFG.partition_weight * losses["partition_loss"], rel=1e-5
    )
    mir = create_model(ds.num_items, CFG.with_model("mir"))
    mir.build_for(CFG.max_len)
    assert mir.model_config.partition_weight == 0.0
    assert float(mir.compute_losses(_batch(sampler))["partition_loss"]) == 0


def test_without_dpi_uses_equal_interest_weights(tiny):
    ds, sampler = tiny
    model = create_model(ds.num_items, CFG.with_model("dismir-wo-dpi"))
    model.build_for(CFG.max_len)
    enc = model.encode({types.HISTORY: _batch(sampler)[types.HISTORY]})
    assert enc.weights is None
    np.testing.assert_allclose(
        enc.fused().numpy(), enc.interests.numpy().mean(1), rtol=1e-6
    )


@pytest.mark.parametrize("readout", ["max", "fused"])
def test_without_dpi_is_dismir_exactly_under_the_max_readout(tiny, readout):
    """The README's claim that with the max readout (the default) the
    interest attention changes no score, so "w/o DPI" trains and retrieves
    exactly as DisMIR; with eq. 5's fused readout they differ."""
    ds, sampler = tiny
    queries = {}
    for name in ("dismir", "dismir-wo-dpi"):
        tf.keras.utils.set_random_seed(0)
        model = create_model(
            ds.num_items, CFG.with_model(name, readout=readout), seed=0
        )
        model.build_for(CFG.max_len)
        model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
        model.fit(sampler.dataset_from(0, 6), epochs=1, verbose=0)
        queries[name] = model.query_vectors(_batch(sampler, 99)[types.HISTORY]).numpy()
    if readout == "max":
        np.testing.assert_array_equal(queries["dismir"], queries["dismir-wo-dpi"])
    else:
        assert np.abs(queries["dismir"] - queries["dismir-wo-dpi"]).max() > 1e-3


def test_mirrored_strategy_keeps_replicas_in_sync_and_scales_loss(tiny):
    ds, sampler = tiny
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, "conftest splits the CPU into two devices"
    strategy = tf.distribute.MirroredStrategy(
        devices=devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    with strategy.scope():
        model = create_model(ds.num_items, CFG, seed=0)
        model.build_for(CFG.max_len)
        model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    model.fit(sampler.dataset_from(0, 4), epochs=1, verbose=0)
    for var in model.trainable_variables:
        values = [v.numpy() for v in strategy.experimental_local_results(var)]
        assert len(values) == 2
        np.testing.assert_array_equal(values[0], values[1])

    # Loss scaling: each replica's rec_loss is its per-example sum divided
    # by the global batch, so the replicas' sum is the global-batch mean.
    dist = iter(strategy.experimental_distribute_dataset(sampler.dataset_from(10, 1)))
    batch = next(dist)

    def step(b):
        seeds = model._step_seeds(b)
        enc = model.encode({types.HISTORY: b[types.HISTORY]})
        per_example = model.rec_loss_per_example(b, enc, seeds[0])
        return tf.nn.compute_average_loss(per_example), per_example

    scaled, per_example = strategy.run(step, args=(batch,))
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, scaled, axis=None)
    all_examples = np.concatenate(
        [p.numpy() for p in strategy.experimental_local_results(per_example)]
    )
    assert len(all_examples) == 32
    assert float(total) == pytest.approx(all_examples.mean(), rel=1e-5)
