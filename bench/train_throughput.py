"""Benchmark: training throughput (sequences/s) of every registered model.

Trains each model of ``dismir_tf.models.model_names()`` (whatever is
registered when it runs) at the paper's defaults (batch 128, d = 64,
max_len 40, F = 4, C = 10, N_o = 100; the partition task on for the models
that take it by default, DisMIR and its w/o-DPI ablation, at their own
lambda, as train.py) on

* a synthetic log of Gowalla size (Table 1: 165,506 users, 174,605 items,
  2,061,264 interactions; heavy-tailed user lengths and Zipf item
  popularity, made by ``synthetic_books`` of bench/cooccurrence_books.py),
  or
* a real file, to compare with docs/reference-runs.md:
  ``--dataset_file ../shared/data/beauty/Beauty.txt.gz --dataset_format
  seq_lines --max_len 20`` or ``--dataset_file
  ../shared/data/gowalla-lbsn/gowalla_lbsn1000_checkins.tsv.gz
  --dataset_format user_item_time_tsv``.

Each figure is ``batch * steps / seconds`` of ``model.fit`` over
``--steps`` steps (one fit epoch), timed ``--repeats`` times after one
warm-up epoch (tracing, XLA compilation); the median is reported with the
min and max.  Training is compiled exactly as train.py compiles it
(``training.compile_model``).

``--breakdown`` (default: dismir) also splits a step into its parts, each
timed on its own:

* ``pipeline``: the input pipeline alone (``TrainSampler.dataset_from``
  iterated inside TensorFlow), with and without the partition positives;
* ``cached``: train steps on one batch held in memory (no sampling), with
  the partition task on and off, which splits the compute into the
  recommendation loss and the partition loss;
* ``live``: train steps on the live pipeline, as in ``train.py``;
* ``optimizer``: one Adam update of the [N + 1, d] item table alone.

Usage:

  python bench/train_throughput.py                       # Gowalla size
  python bench/train_throughput.py --models dismir,mir --repeats 5
  python bench/train_throughput.py --dataset_file \\
      ../shared/data/beauty/Beauty.txt.gz --dataset_format seq_lines \\
      --max_len 20

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import sys
import time

_BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_BENCH))
sys.path.insert(0, _BENCH)

# Legacy Keras (tf-keras) before TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
from cooccurrence_books import synthetic_books  # noqa: E402

import dismir_tf  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS first)
from dismir_tf import (  # noqa: E402
    model_specs,  # noqa: E402
    pipeline,
    training,
)
from dismir_tf.config import DataConfig, ModelConfig, TrainConfig  # noqa: E402
from dismir_tf.cooccurrence import PositiveSampler, build_cooccurrence  # noqa: E402
from dismir_tf.data.dataset import SequenceDataset  # noqa: E402
from dismir_tf.models import create_model, model_names, resolve_config  # noqa: E402

# Table 1 of the paper, Gowalla.
GOWALLA_USERS = 165_506
GOWALLA_ITEMS = 174_605
GOWALLA_INTERACTIONS = 2_061_264
# docs/reference-runs.md, "Training speed": the reference PyTorch code's
# one-at-a-time training sequences/s.
REFERENCE_BEAUTY = {"remi": 3784, "mind": 4131, "comirec-sa": 4255, "comirec-dr": 417}
REFERENCE_GOWALLA_LBSN = {"remi": 2732, "comirec-sa": 2757}
MIB = 1 << 20


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gowalla_like(
    users: int, items: int, interactions: int, seed: int
) -> SequenceDataset:
    """A Gowalla-sized log: heavy-tailed lengths (>= 5), Zipf items."""
    ds = synthetic_books(
        users,
        items,
        interactions,
        min_length=5,
        length_tail=2.2,
        min_item_count=5,
        item_zipf=1.0,
        item_zipf_shift=35.0,
        seed=seed,
    )
    return dataclasses.replace(ds, name="synthetic-gowalla")


def model_config(
    name: str, args: argparse.Namespace, partition: bool | None = None
) -> ModelConfig:
    """The paper's defaults for ``name``, resolved as train.py does.

    As train.py, only the models that take the partition task by default
    (DisMIR and its ablation; their spec's lambda unless --partition_weight
    is given) have it unless ``partition`` asks for it; the models that
    never take it (MIR, DNN, ...) never do.
    """
    spec = model_specs.get(name)
    # --partition_weight, else the model's own, else (the task asked for on
    # a plugin model) DisMIR's.
    weight = (
        args.partition_weight
        if args.partition_weight is not None
        else spec.default_partition_weight or model_specs.DISMIR_PARTITION_WEIGHT
    )
    if spec.partition == "never" or (partition is None and spec.partition != "default"):
        weight = 0.0
    cfg = resolve_config(
        ModelConfig(
            name=name,
            embedding_dim=args.embedding_dim,
            num_interests=args.num_interests,
            max_len=args.max_len,
            partition_weight=weight,
            partition_negatives=args.partition_negatives,
            hard_negative_candidates=args.hard_negative_candidates,
        )
    )
    if partition is False:
        cfg = dataclasses.replace(cfg, partition_weight=0.0)
    return cfg


def train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        batch_size=args.batch_size,
        eval_every=args.steps,
        max_steps=args.steps,
        jit_compile=args.jit_compile,
    )


class _EpochTimer(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        self._t0 = self._c0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()
        self._c0 = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._t0)
        self.cpu_seconds.append(time.process_time() - self._c0)


def _summary(rates: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "n": len(rates),
    }


def time_fit(
    cfg: ModelConfig, num_items: int, data: tf.data.Dataset, args: argparse.Namespace
) -> dict[str, float]:
    """Sequences/s of fit on ``data`` (median over ``--repeats`` epochs)."""
    tf.keras.backend.clear_session()
    model = create_model(num_items, cfg, seed=0)
    model.build_for(cfg.max_len)
    training.compile_model(
        model, train_config(args), steps_per_execution=args.steps_per_execution
    )
    timer = _EpochTimer()
    model.fit(
        data,
        steps_per_epoch=args.steps,
        epochs=1 + args.repeats,
        callbacks=[timer],
        verbose=0,
    )
    rates = [args.batch_size * args.steps / s for s in timer.seconds[1:]]
    out = _summary(rates)
    # CPU seconds per step (all threads): less sensitive to other
    # processes on a shared machine than the wall clock.
    out["cpu_ms_per_step"] = 1e3 * statistics.median(timer.cpu_seconds[1:]) / args.steps
    return out


def _count(n, _):
    return n + 1


def time_pipeline(
    sampler: pipeline.TrainSampler, args: argparse.Namespace
) -> dict[str, float]:
    """Sequences/s of the input pipeline alone, iterated in-graph."""
    steps = args.steps
    rates, cpu = [], []
    for r in range(1 + args.repeats):
        data = sampler.dataset_from(r * steps, steps)
        t0, c0 = time.perf_counter(), time.process_time()
        data.reduce(tf.constant(0, tf.int64), _count).numpy()
        if r:
            rates.append(args.batch_size * steps / (time.perf_counter() - t0))
            cpu.append(1e3 * (time.process_time() - c0) / steps)
    out = _summary(rates)
    out["cpu_ms_per_step"] = statistics.median(cpu)
    return out


def time_optimizer(num_items: int, args: argparse.Namespace) -> dict[str, float]:
    """ms of one Adam update of the item table with a sparse gradient."""
    tf.keras.backend.clear_session()
    table = tf.Variable(tf.random.normal([num_items + 1, args.embedding_dim]))
    optimizer = training.make_optimizer(train_config(args), num_items)
    rows = args.batch_size * (args.max_len + 1 + args.hard_negative_candidates)
    idx = tf.random.uniform([rows], 0, num_items + 1, dtype=tf.int32)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(tf.gather(table, idx)))
        optimizer.apply_gradients([(tape.gradient(loss, table), table)])

    step()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(20):
            step()
        times.append((time.perf_counter() - t0) / 20 * 1e3)
    return _summary(times)


def breakdown(
    name: str, ds: SequenceDataset, positives: PositiveSampler, args: argparse.Namespace
) -> dict:
    """Pipeline alone, cached vs live, partition on vs off, optimizer."""
    out: dict[str, dict] = {}
    with_pos = pipeline.TrainSampler(
        ds, args.max_len, args.batch_size, seed=0, positive_sampler=positives
    )
    without = pipeline.TrainSampler(ds, args.max_len, args.batch_size, seed=0)
    out["pipeline_with_positives"] = time_pipeline(with_pos, args)
    out["pipeline_without_positives"] = time_pipeline(without, args)
    on = model_config(name, args, partition=True)
    off = model_config(name, args, partition=False)
    batch = with_pos.sample(tf.constant(0, tf.int64))
    cached = tf.data.Dataset.from_tensors(batch).repeat()
    cached_off = tf.data.Dataset.from_tensors(
        without.sample(tf.constant(0, tf.int64))
    ).repeat()
    out["cached_partition_on"] = time_fit(on, ds.num_items, cached, args)
    out["cached_partition_off"] = time_fit(off, ds.num_items, cached_off, args)
    out["live_partition_on"] = time_fit(
        on, ds.num_items, with_pos.dataset_from(0), args
    )
    out["live_partition_off"] = time_fit(
        off, ds.num_items, without.dataset_from(0), args
    )
    out["optimizer_update_ms"] = time_optimizer(ds.num_items, args)
    return out


def _ms(rate: float, batch: int) -> float:
    return 1e3 * batch / rate


def print_breakdown(name: str, parts: dict, batch: int) -> None:
    med = {k: v["median"] for k, v in parts.items() if k != "optimizer_update_ms"}
    ms = {k: _ms(v, batch) for k, v in med.items()}
    print(f"\n{name}: per-step split (batch {batch}; medians)")
    for key in (
        "pipeline_with_positives",
        "pipeline_without_positives",
        "cached_partition_off",
        "cached_partition_on",
        "live_partition_off",
        "live_partition_on",
    ):
        cpu = parts[key].get("cpu_ms_per_step")
        print(
            f"  {key:28s} {med[key]:>10,.0f} seq/s  {ms[key]:7.2f} "
            "ms/step" + (f"  ({cpu:.2f} CPU ms/step)" if cpu else "")
        )
    opt = parts["optimizer_update_ms"]["median"]
    print(f"  {'optimizer update alone':28s} {'':>16s}  {opt:7.2f} ms/step")
    rec = ms["cached_partition_off"]
    part = ms["cached_partition_on"] - rec
    pipe = ms["live_partition_on"] - ms["cached_partition_on"]
    print(
        f"  => recommendation loss + update {rec:.2f} ms, partition loss "
        f"{part:+.2f} ms, live input pipeline {pipe:+.2f} ms per step (the "
        f"item-table update alone, as its own call outside the compiled "
        f"step: {opt:.2f} ms)"
    )
    ratio = med["pipeline_with_positives"] / med["live_partition_on"]
    print(f"  => the pipeline alone runs {ratio:.1f}x the training rate")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models", default="", help="comma-separated; default every registered one"
    )
    parser.add_argument("--dataset_file", default="")
    parser.add_argument("--dataset_format", default="")
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--users", type=int, default=GOWALLA_USERS)
    parser.add_argument("--items", type=int, default=GOWALLA_ITEMS)
    parser.add_argument("--interactions", type=int, default=GOWALLA_INTERACTIONS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--embedding_dim", type=int, default=64)
    parser.add_argument("--num_interests", type=int, default=4)
    parser.add_argument("--max_len", type=int, default=40)
    parser.add_argument(
        "--partition_weight",
        type=float,
        default=None,
        help="lambda (default: the model's, dismir_tf/model_specs.py)",
    )
    parser.add_argument("--partition_negatives", type=int, default=100)
    parser.add_argument("--hard_negative_candidates", type=int, default=10)
    parser.add_argument(
        "--steps", type=int, default=200, help="train steps per timed epoch"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed epochs per figure (after one warm-up)",
    )
    parser.add_argument(
        "--jit_compile",
        default="on",
        choices=("on", "off"),
        help="TrainConfig.jit_compile (XLA); off is the plain Keras step and Adam",
    )
    parser.add_argument(
        "--steps_per_execution",
        type=int,
        default=None,
        help="default: as train.py (50 here)",
    )
    parser.add_argument(
        "--breakdown",
        default="dismir",
        help="models whose step is split into its parts ('' for none)",
    )
    args = parser.parse_args(argv)
    args.jit_compile = args.jit_compile == "on"
    names = (
        [n for n in args.models.split(",") if n] if args.models else list(model_names())
    )

    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; TensorFlow {tf.__version__}; load "
        f"average {os.getloadavg()[0]:.1f} (shared machine: figures are "
        "noisy)",
        flush=True,
    )
    t0 = time.perf_counter()
    if args.dataset_file:
        from dismir_tf.data import load_dataset

        ds = load_dataset(
            DataConfig(
                dataset="",
                dataset_file=args.dataset_file,
                dataset_format=args.dataset_format,
                data_dir=args.data_dir,
            )
        )
    else:
        ds = gowalla_like(args.users, args.items, args.interactions, args.seed)
    print(
        f"data {ds.name}: {ds.stats()} in {time.perf_counter() - t0:.1f} s", flush=True
    )
    t0 = time.perf_counter()
    positives = PositiveSampler(build_cooccurrence(ds))
    print(
        f"co-occurrence graph and sampler in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )

    results: dict = {
        "dataset": ds.name,
        "stats": ds.stats(),
        "batch_size": args.batch_size,
        "max_len": args.max_len,
        "jit_compile": args.jit_compile,
        "steps_per_execution": args.steps_per_execution,
        "models": {},
        "breakdown": {},
    }
    # The reference figures are for those two files only
    # (docs/reference-runs.md).
    name = ds.name.lower()
    reference = (
        REFERENCE_BEAUTY
        if "beauty" in name
        else REFERENCE_GOWALLA_LBSN
        if "lbsn" in name
        else {}
    )
    print(
        f"\n{'model':16s} {'partition':>9s} {'seq/s median':>13s} "
        f"{'(min-max)':>17s} {'CPU ms/step':>11s} {'reference':>9s} "
        f"{'x ref':>6s}",
        flush=True,
    )
    for name in names:
        cfg = model_config(name, args)
        part = cfg.partition_weight > 0
        sampler = pipeline.TrainSampler(
            ds,
            args.max_len,
            args.batch_size,
            seed=0,
            positive_sampler=positives if part else None,
        )
        rate = time_fit(cfg, ds.num_items, sampler.dataset_from(0), args)
        ref = reference.get(name)
        rate["reference"] = ref
        rate["partition"] = part
        results["models"][name] = rate
        print(
            f"{name:16s} {'on' if part else 'off':>9s} "
            f"{rate['median']:>13,.0f} "
            f"({rate['min']:>7,.0f}-{rate['max']:>7,.0f}) "
            f"{rate['cpu_ms_per_step']:>11.1f} {ref or '-':>9} "
            f"{(rate['median'] / ref if ref else float('nan')):>6.2f}",
            flush=True,
        )
    for name in [n for n in args.breakdown.split(",") if n in names]:
        parts = breakdown(name, ds, positives, args)
        results["breakdown"][name] = parts
        print_breakdown(name, parts, args.batch_size)
    results["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(results, default=float))


if __name__ == "__main__":
    main()
