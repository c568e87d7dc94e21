"""Benchmark: the co-occurrence graph and its sampler at Amazon Books size.

Generates a synthetic interaction log with the size of the paper's Amazon
Books (Table 1: 603,668 users, 367,982 items, 8,898,041 interactions),
builds a SequenceDataset from it with an 80/10/10 user split, times
``build_cooccurrence`` on the train users and the positive sampler, and
prints the figures as text and, last, as one JSON line.

The log mimics a 5-core review data set:

* user lengths are ``min_length`` plus a Lomax (Pareto II) excess whose
  tail exponent defaults to 2.2, the Hill estimate on the top 1% of users
  of the Amazon Video Games 5-core in ../shared/data (Beauty gives 2.7); the
  excess is rescaled so that the lengths sum to ``--interactions`` exactly
  (mean 14.74 at full size).  The graph's size grows with sum_u n_u^2, so
  the tail, not the mean, is what this benchmark stresses;
* every item gets ``min_item_count`` interactions (the 5-core floor) and the
  rest follow a Zipf-Mandelbrot popularity ``(rank + shift)^-s``; s = 1 and
  shift = 35 give the top item about 0.24% of all interactions (Beauty
  0.22%, Video Games 0.30%);
* interactions are dealt to users at random, so a user may repeat an item.

Usage (full size, then a quick run):

  python bench/cooccurrence_books.py
  python bench/cooccurrence_books.py --users 20000 --items 12000 \
      --interactions 300000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Legacy Keras (tf-keras) before TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import dismir_tf  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS first)
from dismir_tf.cooccurrence import (  # noqa: E402
    DEFAULT_BLOCK_ENTRIES,
    PositiveSampler,
    build_positive_sampler,
    cooccurrence_nnz_bound,
)
from dismir_tf.data.dataset import SequenceDataset  # noqa: E402

# Table 1 of the paper, Amazon Books.
BOOKS_USERS = 603_668
BOOKS_ITEMS = 367_982
BOOKS_INTERACTIONS = 8_898_041
TRAIN_FRACTION = 0.8
VALID_FRACTION = 0.1
SAMPLER_BATCH_SIZES = (128, 4096)
SAMPLER_SECONDS = 3.0  # Timed per batch size, after one warm-up call.
SAMPLER_DISTINCT_BATCHES = 64
KIB = 1024
MIB = 1 << 20


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB / MIB


def user_lengths(
    rng: np.random.Generator, num_users: int, total: int, min_length: int, tail: float
) -> np.ndarray:
    """[num_users] int64 heavy-tailed lengths >= min_length summing to total.

    Args:
      rng: The random generator.
      num_users: M.
      total: The sum of the lengths; at least ``num_users * min_length``.
      min_length: The smallest length.
      tail: Tail exponent of the Lomax excess (> 1 for a finite mean).

    Returns:
      The lengths.
    """
    excess = (1.0 - rng.random(num_users)) ** (-1.0 / tail) - 1.0
    target = total - num_users * min_length
    scaled = excess * (target / excess.sum())
    lengths = np.floor(scaled).astype(np.int64)
    remainder = int(target - lengths.sum())
    lengths[rng.choice(num_users, size=remainder, replace=False)] += 1
    return lengths + min_length


def synthetic_books(
    num_users: int,
    num_items: int,
    num_interactions: int,
    *,
    min_length: int,
    length_tail: float,
    min_item_count: int,
    item_zipf: float,
    item_zipf_shift: float,
    seed: int,
) -> SequenceDataset:
    """A SequenceDataset shaped like a 5-core review log (module docstring).

    Args:
      num_users, num_items, num_interactions: M, N and the total length.
      min_length: The shortest user sequence.
      length_tail: Tail exponent of the user lengths.
      min_item_count: Interactions every item gets before the Zipf draw.
      item_zipf, item_zipf_shift: s and shift of the item popularity.
      seed: Seed of the generator.

    Returns:
      The data set, users split 80/10/10 at random.

    Raises:
      ValueError: The interactions cannot give every user ``min_length``
        and every item ``min_item_count`` interactions.
    """
    if num_interactions < max(num_users * min_length, num_items * min_item_count):
        raise ValueError(
            "too few interactions for the minimum user length and item count"
        )
    rng = np.random.default_rng(seed)
    lengths = user_lengths(rng, num_users, num_interactions, min_length, length_tail)
    floor = np.repeat(np.arange(1, num_items + 1, dtype=np.int32), min_item_count)
    weights = (np.arange(1, num_items + 1) + item_zipf_shift) ** -item_zipf
    cdf = np.cumsum(weights)
    draws = (
        np.searchsorted(
            cdf, rng.random(num_interactions - len(floor)) * cdf[-1], side="right"
        ).astype(np.int32)
        + 1
    )
    items = np.concatenate([floor, np.minimum(draws, num_items)])
    del floor, draws
    rng.shuffle(items)
    users = rng.permutation(num_users).astype(np.int32)
    num_train = int(TRAIN_FRACTION * num_users)
    num_valid = int((TRAIN_FRACTION + VALID_FRACTION) * num_users)
    return SequenceDataset(
        name="synthetic-books",
        item_ids=np.concatenate([[""], np.arange(1, num_items + 1).astype(str)]),
        user_ids=np.arange(num_users).astype(str),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        items=items,
        timestamps=None,
        train_users=users[:num_train],
        valid_users=users[num_train:num_valid],
        test_users=users[num_valid:],
    )


def sampler_throughput(
    sampler: PositiveSampler, ds: SequenceDataset, batch_size: int, seed: int
) -> float:
    """Positives per second of a tf.function-wrapped sampler.

    Anchors are drawn from the train users' interactions, so popular items
    (long rows) are anchors as often as they are in training.

    Args:
      sampler: The sampler.
      ds: The data set.
      batch_size: Anchors per call.
      seed: Seed of the anchors and of the sampler.

    Returns:
      Positives drawn per second.
    """
    rng = np.random.default_rng(seed)
    train_items = np.concatenate(
        [
            ds.sequence(u)
            for u in ds.train_users[: SAMPLER_DISTINCT_BATCHES * batch_size]
        ]
    )
    batches = tf.constant(
        rng.choice(train_items, size=(SAMPLER_DISTINCT_BATCHES, batch_size))
    )
    draw = tf.function(sampler.__call__)
    draw(batches[0], tf.constant([seed, 0], tf.int64))  # Trace and warm up.
    calls = 0
    start = time.perf_counter()
    while time.perf_counter() - start < SAMPLER_SECONDS:
        draw(
            batches[calls % SAMPLER_DISTINCT_BATCHES],
            tf.constant([seed, calls], tf.int64),
        )
        calls += 1
    return calls * batch_size / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=BOOKS_USERS)
    parser.add_argument("--items", type=int, default=BOOKS_ITEMS)
    parser.add_argument("--interactions", type=int, default=BOOKS_INTERACTIONS)
    parser.add_argument("--min_length", type=int, default=5)
    parser.add_argument("--length_tail", type=float, default=2.2)
    parser.add_argument("--min_item_count", type=int, default=5)
    parser.add_argument("--item_zipf", type=float, default=1.0)
    parser.add_argument("--item_zipf_shift", type=float, default=35.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block_entries", type=int, default=DEFAULT_BLOCK_ENTRIES)
    parser.add_argument(
        "--max_nnz",
        type=int,
        default=None,
        help="abort the build above this many entries",
    )
    parser.add_argument("--skip_sampler", action="store_true")
    args = parser.parse_args(argv)
    if args.length_tail <= 1.0:
        parser.error("--length_tail must be > 1 (finite mean length)")

    # Other processes share the cores: the load average qualifies the times.
    results: dict[str, float | int | str] = {"load_average_start": os.getloadavg()[0]}
    start = time.perf_counter()
    ds = synthetic_books(
        args.users,
        args.items,
        args.interactions,
        min_length=args.min_length,
        length_tail=args.length_tail,
        min_item_count=args.min_item_count,
        item_zipf=args.item_zipf,
        item_zipf_shift=args.item_zipf_shift,
        seed=args.seed,
    )
    results["generate_seconds"] = time.perf_counter() - start
    lengths = ds.lengths
    counts = ds.item_counts()[1:]
    results.update(
        users=ds.num_users,
        items=ds.num_items,
        interactions=ds.num_interactions,
        train_users=len(ds.train_users),
        mean_length=float(lengths.mean()),
        median_length=float(np.median(lengths)),
        max_length=int(lengths.max()),
        top_item_share=float(counts.max() / counts.sum()),
        train_pairs_bound=int(np.sum(lengths[ds.train_users].astype(np.int64) ** 2)),
        peak_rss_after_generate_mib=peak_rss_mib(),
    )
    print(
        f"generated {ds.stats()} in {results['generate_seconds']:.1f} s; "
        f"lengths mean {results['mean_length']:.2f} median "
        f"{results['median_length']:.0f} max {results['max_length']}; "
        f"top item {100 * results['top_item_share']:.2f}% of interactions",
        flush=True,
    )

    start = time.perf_counter()
    results["nnz_bound"] = cooccurrence_nnz_bound(ds)
    results["bound_seconds"] = time.perf_counter() - start
    print(
        f"nnz upper bound {results['nnz_bound']:,} "
        f"(sum of train n_u^2 {results['train_pairs_bound']:,}) in "
        f"{results['bound_seconds']:.1f} s",
        flush=True,
    )

    # As training builds it (training.make_positive_sampler): the graph,
    # turned into the sampler's tables in place.
    start, cpu_start = time.perf_counter(), time.process_time()
    sampler = build_positive_sampler(
        ds,
        log=lambda m: print(m, flush=True),
        block_entries=args.block_entries,
        max_nnz=args.max_nnz,
    )
    results["build_seconds"] = time.perf_counter() - start
    results["build_cpu_seconds"] = time.process_time() - cpu_start
    results["nnz"] = sampler.num_entries
    results["peak_rss_after_build_mib"] = peak_rss_mib()
    print(
        f"build_positive_sampler (graph and sampler tables): "
        f"{results['build_seconds']:.1f} s "
        f"({results['build_cpu_seconds']:.1f} s CPU), nnz "
        f"{sampler.num_entries:,}, peak RSS "
        f"{results['peak_rss_after_build_mib']:.0f} MiB",
        flush=True,
    )
    if not args.skip_sampler:
        for batch_size in SAMPLER_BATCH_SIZES:
            rate = sampler_throughput(sampler, ds, batch_size, args.seed)
            results[f"sampler_positives_per_s_b{batch_size}"] = rate
            print(f"sampler: batch {batch_size}: {rate:,.0f} positives/s", flush=True)
        results["peak_rss_final_mib"] = peak_rss_mib()
        print(f"peak RSS {results['peak_rss_final_mib']:.0f} MiB", flush=True)

    results["load_average_end"] = os.getloadavg()[0]
    print(
        json.dumps(
            {k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}
        )
    )


if __name__ == "__main__":
    main()
