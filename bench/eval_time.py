"""Benchmark: full-catalogue evaluation time and peak memory.

Times ``dismir_tf.evaluation.evaluate`` (exact inner product over every
item, docs/protocol.md "Retrieval", Recall/HR/NDCG at 20 and 50) for a
DisMIR model (random weights: the cost does not depend on them) with F = 4
interests and d = 64, on the test users of two synthetic logs:

* ``gowalla``: Gowalla size (Table 1: 165,506 users, 174,605 items; 10% of
  the users, 16.5k, are test users), max_len 40;
* ``books``: Amazon Books size (603,668 users, 367,982 items; 60k test
  users), max_len 20;

both made by ``synthetic_books`` of bench/cooccurrence_books.py, with both
readouts, ``merge`` (F queries per user, the max over interests) and
``fused`` (one query), and a range of evaluation batch sizes
(``--eval_batch_size``, users per batch).

Every (size, readout, batch) runs in a fresh child process, so that its
peak resident memory (``ru_maxrss``) is its own; a child that dies (out of
memory) is reported as such.  Each figure is the median of ``--repeats``
timed passes over all test users, after an untimed warm-up on two batches
(tracing).

Usage:

  python bench/eval_time.py                          # everything
  python bench/eval_time.py --sizes gowalla --batches 256,1024

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

_BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_BENCH))
sys.path.insert(0, _BENCH)

SIZES = {
    # name: (users, items, interactions, max_len)
    "gowalla": (165_506, 174_605, 2_061_264, 40),
    "books": (603_668, 367_982, 8_898_041, 20),
}
READOUTS = ("merge", "fused")
DEFAULT_BATCHES = "128,256,512,1024,2048"
CHILD_TIMEOUT_SECONDS = 3600


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(size: str, readout: str, batch: int, repeats: int, seed: int) -> dict:
    """One measurement, in this process (run by the parent as a child)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow
    import tensorflow as tf
    from cooccurrence_books import synthetic_books

    import dismir_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)
    from dismir_tf import evaluation, pipeline, training
    from dismir_tf.config import ModelConfig
    from dismir_tf.models import create_model

    users, items, interactions, max_len = SIZES[size]
    t0 = time.perf_counter()
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
    examples = pipeline.eval_examples(ds, "test", max_len)
    del ds
    data_seconds = time.perf_counter() - t0
    model = create_model(
        items,
        ModelConfig(
            name="dismir",
            embedding_dim=64,
            num_interests=4,
            max_len=max_len,
            retrieval=readout,
        ),
        seed=seed,
    )
    model.build_for(max_len)
    query = training.make_query_fn(model)
    rss_before = peak_rss_mib()
    # Warm-up (tracing) on the first two batches only.
    warm = pipeline.EvalExamples(
        users=examples.users[: 2 * batch],
        history=examples.history[: 2 * batch],
        targets=examples.targets[: 2 * batch],
    )
    evaluation.evaluate(query, model.item_embedding.embeddings, warm, batch_size=batch)
    seconds = []
    metrics = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        metrics = evaluation.evaluate(
            query, model.item_embedding.embeddings, examples, batch_size=batch
        ).metrics
        seconds.append(time.perf_counter() - t0)
    return {
        "size": size,
        "readout": readout,
        "batch": batch,
        "users": examples.num_users,
        "items": items,
        "queries_per_user": int(query(tf.constant(examples.history[:1])).shape[1]),
        "seconds_median": statistics.median(seconds),
        "seconds_min": min(seconds),
        "seconds_max": max(seconds),
        "data_seconds": data_seconds,
        "peak_rss_before_eval_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
        "recall@50": metrics.get("recall@50"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="gowalla,books")
    parser.add_argument("--readouts", default=",".join(READOUTS))
    parser.add_argument(
        "--batches",
        default=DEFAULT_BATCHES,
        help="evaluation batch sizes (users per batch)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--child", default="", help=argparse.SUPPRESS
    )  # size,readout,batch
    args = parser.parse_args(argv)

    if args.child:
        size, readout, batch = args.child.split(",")
        print(json.dumps(child(size, readout, int(batch), args.repeats, args.seed)))
        return

    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} "
        "(shared machine: figures are noisy)",
        flush=True,
    )
    print(
        f"{'size':8s} {'readout':7s} {'batch':>6s} {'users':>7s} "
        f"{'items':>8s} {'seconds (median, min-max)':>27s} "
        f"{'peak RSS MiB':>12s}",
        flush=True,
    )
    rows = []
    for size in args.sizes.split(","):
        for readout in args.readouts.split(","):
            for batch in [int(b) for b in args.batches.split(",")]:
                proc = subprocess.run(
                    [
                        sys.executable,
                        os.path.abspath(__file__),
                        "--child",
                        f"{size},{readout},{batch}",
                        "--repeats",
                        str(args.repeats),
                        "--seed",
                        str(args.seed),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=CHILD_TIMEOUT_SECONDS,
                )
                if proc.returncode != 0:
                    row = {
                        "size": size,
                        "readout": readout,
                        "batch": batch,
                        "error": f"exit {proc.returncode}: "
                        + proc.stderr.strip().splitlines()[-1][-200:]
                        if proc.stderr.strip()
                        else "",
                    }
                    print(
                        f"{size:8s} {readout:7s} {batch:>6d} failed: {row['error']}",
                        flush=True,
                    )
                else:
                    row = json.loads(proc.stdout.strip().splitlines()[-1])
                    print(
                        f"{size:8s} {readout:7s} {batch:>6d} "
                        f"{row['users']:>7,d} {row['items']:>8,d} "
                        f"{row['seconds_median']:>10.1f} "
                        f"({row['seconds_min']:.1f}-"
                        f"{row['seconds_max']:.1f}){'':>6s}"
                        f"{row['peak_rss_mib']:>12,.0f}",
                        flush=True,
                    )
                rows.append(row)
    print(json.dumps({"results": rows}))


if __name__ == "__main__":
    main()
