"""Benchmark: the exact evaluator against TFRS's BruteForce index.

For F = 4 interest queries per user and d = 64 (random vectors: retrieval
cost does not depend on the values), times the top-50 retrieval of

* ``exact``: the evaluator's retrieval.score_and_top_k_fn (one matmul over
  the catalogue, the max over interests, one ``tf.math.top_k``);
* ``tfrs``: a TFRS ``BruteForce`` index queried per interest, then the
  protocol's merge (retrieval.merge_top_k),

and reports the recall of each list against the exact one (both are exact
searches, so 1.0 up to ties).  Catalogues: beauty's 12,101 items (the
largest shared catalogue) and Amazon Books' 367,982 (synthetic).  ScaNN,
TFRS's approximate index, is not measured: scann 1.4.2 (the release for
this TensorFlow line) fails to load its TF ops with TensorFlow 2.21
("undefined symbol ... absl ... raw_log_internal"), see README.

Usage:  python bench/retrieval_backends.py [--users 2048] [--repeats 3]
The last line printed is one JSON object with every figure.
"""

import argparse
import json
import os
import sys
import time

# Run from a clone without `pip install .`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import dismir_tf  # noqa: E402,F401
from dismir_tf import retrieval  # noqa: E402

CATALOGUES = {"beauty": 12101, "books": 367982}


def _median_seconds(fn, repeats):
    fn()  # warm-up (tracing)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    out = {}
    for name, n in CATALOGUES.items():
        emb = tf.constant(rng.normal(size=(n + 1, 64)).astype(np.float32))
        queries = tf.constant(rng.normal(size=(args.users, 4, 64)).astype(np.float32))
        index = retrieval.brute_force_index(emb, k=50)
        batches = [
            queries[i : i + args.batch] for i in range(0, args.users, args.batch)
        ]

        def exact():
            return [retrieval.score_and_top_k_fn(q, emb, 50, None)[1] for q in batches]

        @tf.function
        def tfrs_batch(q):
            b = tf.shape(q)[0]
            scores, ids = index(tf.reshape(q, [-1, 64]), k=50)
            return retrieval.merge_top_k(
                tf.reshape(scores, [b, -1]),
                tf.reshape(tf.cast(ids, tf.int32), [b, -1]),
                50,
            )

        def with_tfrs():
            return [tfrs_batch(q) for q in batches]

        t_exact = _median_seconds(exact, args.repeats)
        t_tfrs = _median_seconds(with_tfrs, args.repeats)
        a = np.concatenate([x.numpy() for x in exact()])
        b = np.concatenate([x.numpy() for x in with_tfrs()])
        recall = float(np.mean([len(set(x) & set(y)) / 50 for x, y in zip(a, b)]))
        out[name] = {
            "items": n,
            "users": args.users,
            "exact_seconds": round(t_exact, 3),
            "tfrs_brute_force_seconds": round(t_tfrs, 3),
            "tfrs_vs_exact_time": round(t_tfrs / t_exact, 2),
            "tfrs_recall_vs_exact": round(recall, 4),
        }
        print(
            f"{name}: {n:,} items, {args.users} users x 4 interests: "
            f"exact {t_exact:.3f} s, TFRS BruteForce + merge "
            f"{t_tfrs:.3f} s ({t_tfrs / t_exact:.2f}x), recall of "
            f"BruteForce's top-50 against exact {recall:.4f}",
            flush=True,
        )
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
