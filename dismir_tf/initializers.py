"""Per-weight initialiser seeds.

Keras' seeded initialisers draw from a stateless generator: two initialisers
given the same seed produce the same stream, so a [64, 64] kernel seeded
like a [N, 64] item table *is* the table's first 64 rows (and a Glorot or
kaiming kernel a scaled copy of them). Every weight therefore gets its own
seed, derived from the run seed and the weight's fixed name with
``weight_seed``; a layer that owns several weights is given a seed derived
for it and derives its weights' seeds from that one (``weight_seed(
weight_seed(run_seed, "capsule"), "kernel")``). Names are written in the
code, never taken from Keras' auto-uniquified layer names, so a weight's
start does not depend on what else the process built
(tests/test_initializers.py).
"""

from __future__ import annotations

import hashlib
import math

import tensorflow as tf


def weight_seed(seed: int, name: str) -> int:
    """A seed in [0, 2**31) for the weight ``name`` of a run (or layer)
    seeded with ``seed``: a stable hash (BLAKE2b, independent of
    PYTHONHASHSEED) of both, so different names give unrelated streams and
    the same name and seed always the same one."""
    digest = hashlib.blake2b(f"{int(seed)}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


def he_normal(fan_in: int, seed: int) -> tf.keras.initializers.Initializer:
    """N(0, 2 / fan_in): torch's ``kaiming_normal_``, used by the reference
    code's ``reset_parameters`` for every weight. ``seed`` should come from
    ``weight_seed``."""
    return tf.keras.initializers.RandomNormal(stddev=math.sqrt(2.0 / fan_in), seed=seed)
