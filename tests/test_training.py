"""Training runs end to end: artifacts, evaluate.py, dumps, determinism."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dismir_tf import reports, training
from tests.helpers import tiny_run_config
from tests.reference_metrics import metrics_from_topk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRIC_KEYS = {f"{m}@{k}" for m in ("recall", "ndcg", "hr") for k in (20, 50)}
SMALL = [
    "--synthetic_users",
    "400",
    "--synthetic_items",
    "150",
    "--synthetic_groups",
    "6",
    "--embedding_dim",
    "16",
]


def _python(*args, check=True):
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)  # the scripts must set it
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-3000:])
    return proc


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run") / "dismir")
    metrics = training.run(tiny_run_config(out), log=lambda m: None)
    return out, metrics


def test_run_writes_config_checkpoint_and_metrics(finished_run):
    out, metrics = finished_run
    for name in ("config.json", "state.json", "metrics.json"):
        assert os.path.exists(os.path.join(out, name)), name
    assert os.listdir(os.path.join(out, "best"))
    assert os.listdir(os.path.join(out, "logs"))
    on_disk = json.load(open(os.path.join(out, "metrics.json")))
    assert set(on_disk["test"]) == METRIC_KEYS
    assert set(on_disk["valid"]) == METRIC_KEYS
    assert on_disk["test"] == metrics["test"]
    assert 0.0 < on_disk["test"]["recall@50"] <= 1.0
    assert on_disk["test"]["hr@50"] >= on_disk["test"]["hr@20"]
    state = json.load(open(os.path.join(out, "state.json")))
    assert state["finished"] and state["steps_done"] == 40
    assert [e["step"] for e in state["evals"]] == [20, 40]


def test_rerunning_a_finished_run_does_not_train_again(finished_run):
    out, metrics = finished_run
    lines = []
    again = training.run(tiny_run_config(out), log=lines.append)
    assert again["test"] == metrics["test"]
    assert any("already finished" in line for line in lines)


def test_a_different_config_in_the_same_directory_is_refused(finished_run):
    out, _ = finished_run
    from dismir_tf.errors import ConfigError

    with pytest.raises(ConfigError, match="model.num_interests"):
        training.run(tiny_run_config(out, num_interests=2), log=lambda m: None)


def test_same_seed_same_metrics(finished_run, tmp_path):
    _, metrics = finished_run
    again = training.run(tiny_run_config(str(tmp_path / "again")), log=lambda m: None)
    assert again["test"] == metrics["test"]
    assert again["valid"] == metrics["valid"]


def test_evaluate_py_agrees_with_metrics_json_and_its_dump(tmp_path):
    out = str(tmp_path / "run")
    _python(
        "train.py",
        *SMALL,
        "--max_steps",
        "60",
        "--eval_every",
        "30",
        "--output_dir",
        out,
    )
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    dump = str(tmp_path / "top.jsonl")
    part = str(tmp_path / "partition.tsv")
    proc = _python(
        "evaluate.py", "--run_dir", out, "--dump_topk", dump, "--dump_partition", part
    )
    printed = json.loads(proc.stdout.strip().splitlines()[-1])["test"]
    for k in METRIC_KEYS:
        assert printed[k] == pytest.approx(metrics["test"][k], abs=1e-9)
    # Recompute the metrics from the dump (raw ids) alone.
    rows = reports.read_topk_dump(dump)
    ids = {}

    def code(x):
        return ids.setdefault(x, len(ids) + 1)

    tops = np.array([[code(x) for x in r["top50"]] for r in rows])
    tmax = max(len(r["targets"]) for r in rows)
    targets = np.array(
        [
            [code(x) for x in r["targets"]] + [0] * (tmax - len(r["targets"]))
            for r in rows
        ]
    )
    assert tops.shape[1] == 50
    recomputed = metrics_from_topk(tops, targets)
    for k in METRIC_KEYS:
        assert recomputed[k].mean() == pytest.approx(printed[k], abs=1e-9)
    # Partition dump: one line per item, argmax (0-based) matches the
    # weights.
    lines = reports.read_partition_dump(part)
    num_items = len({x for r in rows for x in r["top50"] + r["targets"]})
    assert len(lines) >= num_items and len(lines) <= 150
    assert len({item for item, _, _ in lines}) == len(lines)
    item, group, w = lines[0]
    assert len(w) == 16 and group == int(np.argmax(w))


def test_evaluate_py_on_a_missing_run_is_a_clean_error(tmp_path):
    proc = _python("evaluate.py", "--run_dir", str(tmp_path / "nope"), check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "not a run directory" in proc.stderr


def test_mirrored_strategy_run_end_to_end(tmp_path):
    # conftest split the CPU into two logical devices: two replicas.
    metrics = training.run(
        tiny_run_config(str(tmp_path / "mirrored"), strategy="mirrored"),
        log=lambda m: None,
    )
    assert set(metrics["test"]) == METRIC_KEYS
    assert 0.0 < metrics["test"]["recall@50"] <= 1.0
    assert os.path.exists(tmp_path / "mirrored" / "metrics.json")
