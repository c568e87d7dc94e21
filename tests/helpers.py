"""Small, deterministic data sets and configs for tests."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dismir_tf.config import (
    DataConfig,
    ModelConfig,
    RunConfig,
    SyntheticConfig,
    TrainConfig,
)
from dismir_tf.data.dataset import SequenceDataset

TINY_SYNTHETIC = SyntheticConfig(
    num_users=300, num_items=120, num_groups=6, min_length=8, max_length=20, seed=3
)


def make_dataset(
    sequences: list[list[int]],
    num_items: int,
    train: list[int],
    valid: list[int],
    test: list[int],
    name: str = "tiny",
) -> SequenceDataset:
    """A SequenceDataset from explicit item sequences (items 1..N)."""
    lengths = [len(s) for s in sequences]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return SequenceDataset(
        name=name,
        item_ids=np.array([""] + [f"item{i}" for i in range(1, num_items + 1)]),
        user_ids=np.array([f"user{u}" for u in range(len(sequences))]),
        offsets=offsets,
        items=np.concatenate([np.asarray(s, np.int32) for s in sequences]),
        timestamps=None,
        train_users=np.asarray(train, np.int32),
        valid_users=np.asarray(valid, np.int32),
        test_users=np.asarray(test, np.int32),
    )


def tiny_run_config(output_dir: str, model: str = "dismir", **overrides) -> RunConfig:
    """A run on the tiny synthetic set that trains in a few seconds."""
    from dismir_tf import model_specs

    # lambda 0.1 where the model takes the partition task at all.
    lam = 0.0 if model_specs.get(model).partition == "never" else 0.1
    model_kw = dict(
        name=model,
        embedding_dim=16,
        num_interests=3,
        max_len=10,
        partition_weight=lam,
        partition_negatives=20,
    )
    train_kw = dict(
        output_dir=output_dir,
        batch_size=32,
        max_steps=40,
        eval_every=20,
        patience=5,
        seed=1,
        eval_batch_size=64,
    )
    model_keys = {f.name for f in dataclasses.fields(ModelConfig)} | set(
        model_specs.get(model).param_flags()
    )  # its params, by flag
    for k, v in overrides.items():
        if k in model_keys:
            model_kw[k] = v
        else:
            train_kw[k] = v
    return RunConfig(
        data=DataConfig(dataset="synthetic", synthetic=TINY_SYNTHETIC),
        model=ModelConfig.from_settings(**model_kw),
        train=TrainConfig(**train_kw),
    )


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    """A file of ../shared/data; skipped when absent, failed under CI."""
    path = SHARED / relative
    if not path.is_file():
        message = f"shared data file {path} is absent"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true requires the shared data)")
        pytest.skip(message)
    return path


def losses_before_after(
    model, sampler, batches: int, repeats: int, learning_rate: float = 0.01
) -> tuple[dict, dict]:
    """Compiles ``model``, fits it ``repeats`` times on the sampler's first
    ``batches`` batches and returns its evaluated losses before and after."""
    import tensorflow as tf

    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate))
    first = model.evaluate(
        sampler.dataset_from(0, batches), verbose=0, return_dict=True
    )
    model.fit(sampler.dataset_from(0, batches).repeat(repeats), epochs=1, verbose=0)
    after = model.evaluate(
        sampler.dataset_from(0, batches), verbose=0, return_dict=True
    )
    return first, after


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(marker: str) -> str:
    """The python block between ``<!-- MARKER:start -->`` and its end in the
    README (the examples the tests run as printed)."""
    text = README.read_text(encoding="utf-8")
    block = re.search(rf"<!-- {marker}:start -->\s*```python\n(.*?)```", text, re.S)
    assert block, f"the README lost its {marker} markers"
    return block.group(1)


def malformed_seq_file(tmp_path) -> str:
    """A seq_lines file whose line 2 has no items: reading it fails with
    'bad.txt:2: expected a user id ...' (a check that comes before the
    data must report its error instead)."""
    bad = tmp_path / "bad.txt"
    bad.write_text("1 5 6 7\n2\n")
    return str(bad)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(
    *args: str, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``python ARGS`` in the project's root (an entry point as a user runs
    it), stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def train_it_command(tune_stdout: str) -> str:
    """The ``train it: ...`` command tune.py printed for its best trial."""
    line = next(l for l in tune_stdout.splitlines() if l.startswith("train it: "))
    return line[len("train it: ") :]
