"""Every weight starts from its own seed (``dismir_tf.initializers``).

Keras' seeded initialisers are stateless: two weights given the same seed
start from the same stream, so a kernel seeded like the item table *is* the
table's first rows (MIND's routing kernel, ComiRec-SA's and REMI's first
attention matrix, a scaled copy for ComiRec-DR's kernel). The checks below
compare the flattened starts of every pair of weights of every model.
"""

import itertools

import numpy as np
import pytest

from dismir_tf.config import ModelConfig
from dismir_tf.initializers import weight_seed
from dismir_tf.models import create_model, model_names

# Large enough that a copied prefix is thousands of values long.
CFG = ModelConfig(name="dismir", embedding_dim=64, num_interests=4, max_len=20)
NUM_ITEMS = 300


def _starts(name: str, seed: int) -> dict[str, np.ndarray]:
    model = create_model(NUM_ITEMS, CFG.with_model(name), seed=seed)
    model.build_for(CFG.max_len)
    # Variable names carry Keras' per-process layer suffixes; the order of
    # model.weights does not, so weights are keyed by position.
    return {
        f"{i}:{v.name.split('/', 1)[-1]}": v.numpy().ravel()
        for i, v in enumerate(model.weights)
    }


def _random(seed0: dict, seed1: dict) -> dict[str, np.ndarray]:
    """The weights whose start depends on the run seed (not zeros, ones or
    the identity)."""
    return {
        k: v for k, v in seed0.items() if v.size > 1 and not np.array_equal(v, seed1[k])
    }


def test_weight_seed_is_stable_and_separates_names_and_runs():
    assert weight_seed(0, "kernel") == weight_seed(0, "kernel")
    seeds = {
        weight_seed(s, n)
        for s in range(5)
        for n in ("item_embedding", "capsule", "kernel", "w1", "w2")
    }
    assert len(seeds) == 25
    assert all(0 <= s < 2**31 for s in seeds)


@pytest.mark.parametrize("name", model_names())
def test_no_two_weights_start_correlated(name):
    starts = _starts(name, seed=0)
    random = _random(starts, _starts(name, seed=1))
    assert any("item_embedding" in k for k in random), sorted(random)
    worst = []
    for (a, x), (b, y) in itertools.combinations(random.items(), 2):
        n = min(x.size, y.size)
        if n < 64:
            continue
        corr = abs(np.corrcoef(x[:n], y[:n])[0, 1])
        worst.append((corr, a, b, n))
    # Independent starts: |corr| ~ 1/sqrt(n) <= 0.125; a shared seed gives
    # 1.0 (a copy or a scaled copy of the other weight's first values).
    assert not worst or max(worst)[0] < 0.5, max(worst)


@pytest.mark.parametrize("name", ["dismir", "mind", "remi", "pimirec"])
def test_a_weights_start_does_not_depend_on_what_the_process_built(name):
    first = _starts(name, seed=3)
    for other in ("comirec-sa", "umi", name):  # bumps Keras' name counters
        _starts(other, seed=3)
    again = _starts(name, seed=3)
    assert first.keys() == again.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], again[key], err_msg=key)
